// `ringfetch put FILE S3_URL`: uploads a file with S3Client::upload — one PUT below the multipart threshold,
// a multipart upload with parallel parts from it on (aborted on failure, so no orphan parts). The file is mapped,
// not read (mapped_file.hpp). A progress bar follows the parts as the server acknowledges them, and a summary
// line (size, parts, time, speed) is printed when it is done. Sizes S3 refuses (parts under 5 MiB or over 5 GiB,
// more than 10,000 parts, a single PUT over 5 GiB) are refused before anything is sent. Ctrl-C or SIGTERM aborts
// the multipart upload (AbortMultipartUpload) so that no parts are left on the server; a second one quits at once.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>

#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "interrupts.hpp"
#include "mapped_file.hpp"
#include "object_url.hpp"
#include "progress_bar.hpp"
#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kPutHelp[] =
    "usage: ringfetch put FILE S3_URL [--part-size BYTES] [--multipart-threshold BYTES] [--parallel N]\n"
    "                     [connection options]\n"
    "\n"
    "Uploads FILE to S3_URL (s3://bucket/key; a URL ending in '/' gets FILE's name appended). Files from the\n"
    "multipart threshold on go up as a multipart upload with parts sent in parallel; a failed upload is aborted.\n"
    "\n"
    "options:\n"
    "  --part-size BYTES            size of multipart parts: 5M to 5G (default 8M, larger when the file needs more\n"
    "                               than 10,000 parts)\n"
    "  --multipart-threshold BYTES  smallest file sent as a multipart upload (default 16M)\n"
    "  --parallel N                 parts in flight (default 8)\n"
    "  (BYTES take K, M, G suffixes)\n"
    "\n";

constexpr uint64_t kMaxParallel = 1024;
// S3's limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): every part but the last is
// 5 MiB to 5 GiB, at most 10,000 parts, and one PUT carries at most 5 GiB.
constexpr uint64_t kMinPartBytes = uint64_t{5} << 20;
constexpr uint64_t kMaxPartBytes = uint64_t{5} << 30;
constexpr uint64_t kMaxParts = 10000;
constexpr uint64_t kMaxSinglePutBytes = uint64_t{5} << 30;

struct PutOptions {
  std::string file;
  S3Location target;
  StoreOptions store;
  bool part_size_given = false;
};

// s3://bucket/dir/ + FILE -> s3://bucket/dir/<FILE's name>, as cp and awscli do.
S3Location target_for(std::string_view url, const std::string& file) {
  S3Location target = parse_s3_url(url);
  if (target.key.empty() || target.key.back() == '/') target.key += std::filesystem::path(file).filename().string();
  return target;
}

PutOptions parse_put_options(const Arguments& args) {
  const CommandLine line("ringfetch put", args,
                         with_connection_options({{"--part-size", true}, {"--multipart-threshold", true},
                                                  {"--parallel", true}}));
  line.expect_positional({"FILE", "S3_URL"});
  PutOptions options;
  options.file = std::string(line.positional()[0]);
  options.store = connection_options(line);
  s3::S3Options& s3 = options.store.s3;
  options.part_size_given = line.has("--part-size");
  s3.multipart_part_size = line.byte_count("--part-size", s3.multipart_part_size, 0, UINT64_MAX);
  if (s3.multipart_part_size < kMinPartBytes || s3.multipart_part_size > kMaxPartBytes) {
    line.fail("'--part-size " + std::string(*line.value("--part-size")) +
              "': S3 accepts parts of 5 MiB to 5 GiB (5242880 to 5368709120 bytes)");
  }
  s3.multipart_threshold = line.byte_count("--multipart-threshold", s3.multipart_threshold, 0, kMaxSinglePutBytes);
  s3.multipart_parallel = static_cast<unsigned>(line.number("--parallel", s3.multipart_parallel, 1, kMaxParallel));
  options.target = target_for(line.positional()[1], options.file);
  return options;
}

// With the default part size a file over 80 GB would need more than 10,000 parts: the parts grow to fit (in whole
// MiB), as awscli does. A part size the user gave is kept, and a file it cannot carry is refused up front.
void fit_parts(PutOptions& options, uint64_t size) {
  s3::S3Options& s3 = options.store.s3;
  if (size < s3.multipart_threshold) return;
  const uint64_t parts = (size + s3.multipart_part_size - 1) / s3.multipart_part_size;
  if (parts <= kMaxParts) return;
  const uint64_t needed = ((size + kMaxParts - 1) / kMaxParts + kMiB - 1) / kMiB * kMiB;
  if (options.part_size_given || needed > kMaxPartBytes) {
    throw UsageError("ringfetch put: " + options.file + " (" + std::to_string(size) + " bytes) in parts of " +
                     std::to_string(s3.multipart_part_size) + " bytes makes " + std::to_string(parts) +
                     " parts; S3 allows at most 10,000" +
                     (needed > kMaxPartBytes ? std::string(" (and parts of at most 5 GiB)")
                                             : "; use --part-size " + std::to_string(needed / kMiB) + "M or more"));
  }
  s3.multipart_part_size = needed;
}

void print_summary(const PutOptions& options, uint64_t size, const s3::UploadStats& stats, double seconds) {
  const double gbps = seconds > 0 ? static_cast<double>(size) / seconds / kBytesPerGB : 0.0;
  std::printf("upload: %s to %s (%s in %llu part%s, %.2f s, %.2f GB/s)\n", options.file.c_str(),
              format_s3_url(options.target).c_str(), human_bytes(size).c_str(),
              static_cast<unsigned long long>(stats.parts), stats.parts == 1 ? "" : "s", seconds, gbps);
}

}  // namespace

int run_put(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kPutHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  PutOptions options = parse_put_options(args);
  const MappedInputFile file(options.file);
  const uint64_t size = file.bytes().size();
  if (size > kMaxSinglePutBytes && size < options.store.s3.multipart_threshold) {
    throw UsageError("ringfetch put: " + options.file + " is over 5 GiB, the most one PUT may carry; lower "
                     "--multipart-threshold");
  }
  fit_parts(options, size);
  std::atomic<bool> cancel{false};
  // Before the engine starts, so that its threads inherit the blocked signals.
  const bool multipart = size >= options.store.s3.multipart_threshold;
  const InterruptHandler interrupts([&cancel, multipart](int signal) {
    if (!multipart) {  // a single PUT leaves nothing on the server to clean up
      say("interrupted by " + signal_name(signal));
      ::_exit(128 + signal);
    }
    cancel.store(true);
    say("interrupted by " + signal_name(signal) +
        "; aborting the upload (interrupt again to quit at once)");
  });
  Engine engine(client_engine_options());
  s3::S3Client client = s3::S3Client::open(engine, options.store.s3, options.store.http);
  std::mutex progress_mutex;
  ProgressBar progress(size);
  s3::UploadControl control;
  control.cancel = &cancel;
  control.on_progress = [&](uint64_t done) {
    std::lock_guard lock(progress_mutex);
    progress.update(done);
  };
  const auto start = std::chrono::steady_clock::now();
  s3::UploadStats stats;
  try {
    stats = client.upload(options.target.bucket, options.target.key, file.bytes(), control);
  } catch (const Error& e) {
    if (interrupts.signal() == 0) throw;
    progress.clear();
    say(e.what());
    return interrupts.exit_status();
  }
  progress.clear();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  print_summary(options, size, stats, seconds);
  if (interrupts.signal() != 0) return interrupts.exit_status();  // came too late to stop the upload
  return 0;
}

}  // namespace ringfetch::cli
