// `ringfetch put FILE S3_URL`: uploads a file with S3Client::upload — one PUT below the multipart threshold,
// a multipart upload with parallel parts from it on (aborted on failure, so no orphan parts). The file is mapped,
// not read (mapped_file.hpp). S3Client reports no progress while an upload runs, so there is no progress bar:
// a summary line (size, parts, time, speed) is printed when it is done.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "mapped_file.hpp"
#include "object_url.hpp"
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
    "  --part-size BYTES            size of multipart parts (default 8M; S3 wants at least 5M except the last)\n"
    "  --multipart-threshold BYTES  smallest file sent as a multipart upload (default 16M)\n"
    "  --parallel N                 parts in flight (default 8)\n"
    "  (BYTES take K, M, G suffixes)\n"
    "\n";

constexpr uint64_t kMaxParallel = 1024;

struct PutOptions {
  std::string file;
  S3Location target;
  StoreOptions store;
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
  s3.multipart_part_size = line.byte_count("--part-size", s3.multipart_part_size, 1, UINT64_MAX);
  s3.multipart_threshold = line.byte_count("--multipart-threshold", s3.multipart_threshold, 0, UINT64_MAX);
  s3.multipart_parallel = static_cast<unsigned>(line.number("--parallel", s3.multipart_parallel, 1, kMaxParallel));
  options.target = target_for(line.positional()[1], options.file);
  return options;
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
  const PutOptions options = parse_put_options(args);
  const MappedInputFile file(options.file);
  Engine engine(client_engine_options());
  s3::S3Client client = s3::S3Client::open(engine, options.store.s3, options.store.http);
  const auto start = std::chrono::steady_clock::now();
  const s3::UploadStats stats = client.upload(options.target.bucket, options.target.key, file.bytes());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  print_summary(options, file.bytes().size(), stats, seconds);
  return 0;
}

}  // namespace ringfetch::cli
