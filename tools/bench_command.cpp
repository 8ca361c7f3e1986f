// `ringfetch bench ROOT_URL`: measures a store with read patterns (whole objects, a checkpoint-like load, small
// random reads) and, for s3://, parallel uploads. It makes its own objects under a unique prefix (files for
// file:// and direct://, PUT/multipart for s3://) and removes them at the end, after an error, or on Ctrl-C,
// unless --keep; for read-only http(s):// roots it reads objects named with --object. Each pattern runs --reps
// times and the run with the median time is reported, as a table or (--json) one JSON object.
//
// The latency columns are the round trip of one small read issued alone (the random pattern's ranges, one at a
// time after the throughput runs), which is as close to "first byte" as the public API can time. The hedges column
// counts GETs sent a second time because their first byte was late (see HttpOptions::hedge; --no-hedge).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench_objects.hpp"
#include "bench_patterns.hpp"
#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "interrupts.hpp"
#include "progress_bar.hpp"
#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"
#include "timed_load.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kBenchHelp[] =
    "usage: ringfetch bench ROOT_URL [--patterns LIST] [--objects N] [--size-mib M] [--object KEY]...\n"
    "                       [--reads N] [--read-size BYTES] [--reps N] [--concurrency C] [--threads N]\n"
    "                       [--part-size BYTES] [--keep] [--json] [connection options]\n"
    "\n"
    "Measures reads (and, for s3://, writes) against a store root: file:///dir, direct:///dir,\n"
    "http(s)://host/prefix or s3://bucket/prefix. The bench creates its own objects under a new prefix\n"
    "(ringfetch-bench-<pid>-<time>/) and removes them when it ends, also after an error or Ctrl-C. http(s)://\n"
    "servers cannot be written to: name existing objects to read with --object.\n"
    "\n"
    "patterns (--patterns, comma-separated; default whole,checkpoint,random, plus write for s3://):\n"
    "  whole       every object in part-size ranged items\n"
    "  checkpoint  tensor-like items of 4 KiB .. 64 MiB back to back; a full and a clustered ~30% partial load\n"
    "  random      --reads ranges of --read-size at random places, never adjacent (no coalescing)\n"
    "  write       s3:// only: uploads --objects objects of --size-mib, --concurrency at a time (PUT, or\n"
    "              multipart with parallel parts from 16 MiB on); each object's bytes are unique\n"
    "\n"
    "Reported per pattern: bytes, requests, retries, hedges (late GETs sent again), GB/s, CPU s/GB (process user+sys per GB) and, for random,\n"
    "p50/p99 latency of one read issued alone (first byte plus the small body). Each pattern runs --reps times;\n"
    "the run with the median time is shown. A progress line is drawn on stderr when it is a terminal.\n"
    "\n"
    "options:\n"
    "  --patterns LIST     which patterns to run (see above)\n"
    "  --objects N         objects to create (default 4)\n"
    "  --size-mib M        size of each created object in MiB (default 64)\n"
    "  --object KEY        read this existing object (relative to ROOT_URL) instead of creating any; repeatable;\n"
    "                      required for http(s)://\n"
    "  --reads N           ranges of the random pattern (default 1024)\n"
    "  --read-size BYTES   size of each random range (default 4K)\n"
    "  --reps N            runs per pattern (default 3)\n"
    "  --concurrency C     uploads in flight for the write pattern (default 4)\n"
    "  --threads N         engine threads (default: hardware threads, at most 4)\n"
    "  --part-size BYTES   item size of the whole pattern and longest single request (default 8M)\n"
    "  --keep              keep the created objects (their prefix is printed)\n"
    "  --json              print one JSON object on stdout instead of the table\n"
    "  --compare           http(s):// only: also read each pattern's ranges with libcurl (one GET per range,\n"
    "                      the same connections), through ringfetch-curl-reader, built with the benchmarks\n"
    "                      (found next to this program, in its bench/ directory, or at RINGFETCH_CURL_READER)\n"
    "  (BYTES take K, M, G suffixes)\n"
    "\n";

constexpr uint64_t kDefaultObjects = 4;
constexpr uint64_t kMaxObjects = 100000;
constexpr uint64_t kDefaultSizeMiB = 64;
constexpr uint64_t kMaxSizeMiB = uint64_t{5} << 20;  // 5 TiB, S3's largest object
constexpr uint64_t kDefaultReads = 1024;
constexpr uint64_t kMaxReads = uint64_t{1} << 24;
constexpr uint64_t kDefaultReadBytes = uint64_t{4} << 10;
constexpr uint64_t kDefaultReps = 3;
constexpr uint64_t kMaxReps = 1000;
constexpr uint64_t kDefaultConcurrency = 4;
constexpr uint64_t kMaxConcurrency = 1024;
constexpr uint64_t kMaxThreads = 64;
constexpr uint64_t kDefaultPartBytes = uint64_t{8} << 20;
constexpr double kPartialFraction = 0.3;
constexpr size_t kLatencySamples = 64;
constexpr uint64_t kRandomSeed = 0x62656e6368;  // "bench": the same ranges on every run

struct BenchOptions {
  std::string root;
  RootKind kind = RootKind::kFile;
  std::vector<BenchPattern> patterns;
  std::vector<std::string> given_objects;
  size_t objects = 0;
  uint64_t object_bytes = 0;
  size_t reads = 0;
  uint64_t read_bytes = 0;
  unsigned reps = 0;
  unsigned concurrency = 0;
  unsigned threads = 0;
  uint64_t part_bytes = 0;
  bool keep = false;
  bool json = false;
  bool compare = false;
  StoreOptions store;
};

bool has_pattern(const BenchOptions& options, BenchPattern pattern) {
  return std::find(options.patterns.begin(), options.patterns.end(), pattern) != options.patterns.end();
}

std::vector<BenchPattern> parse_patterns(const CommandLine& line, RootKind kind) {
  std::optional<std::string_view> text = line.value("--patterns");
  if (!text) {
    std::vector<BenchPattern> defaults = {BenchPattern::kWhole, BenchPattern::kCheckpoint, BenchPattern::kRandom};
    if (kind == RootKind::kS3) defaults.insert(defaults.begin(), BenchPattern::kWrite);
    return defaults;
  }
  std::vector<BenchPattern> patterns;
  for (std::string_view rest = *text; !rest.empty();) {
    const size_t comma = rest.find(',');
    const std::string_view word = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (word.empty()) continue;
    const auto known = {BenchPattern::kWhole, BenchPattern::kCheckpoint, BenchPattern::kRandom, BenchPattern::kWrite};
    const auto match =
        std::find_if(known.begin(), known.end(), [&](BenchPattern p) { return pattern_name(p) == word; });
    if (match == known.end()) {
      line.fail("unknown pattern '" + std::string(word) + "' (expected whole, checkpoint, random or write)");
    }
    if (std::find(patterns.begin(), patterns.end(), *match) == patterns.end()) patterns.push_back(*match);
  }
  if (patterns.empty()) line.fail("--patterns names no pattern");
  // Writing first: for s3:// the uploaded objects are the ones the read patterns then read.
  std::stable_partition(patterns.begin(), patterns.end(), [](BenchPattern p) { return p == BenchPattern::kWrite; });
  return patterns;
}

BenchOptions parse_bench_options(const Arguments& args) {
  const CommandLine line(
      "ringfetch bench", args,
      with_connection_options({{"--patterns", true}, {"--objects", true}, {"--size-mib", true}, {"--object", true},
                               {"--reads", true}, {"--read-size", true}, {"--reps", true}, {"--concurrency", true},
                               {"--threads", true}, {"--part-size", true}, {"--keep", false}, {"--json", false}, {"--compare", false}}));
  line.expect_positional({"ROOT_URL (the store root URL)"});
  BenchOptions options;
  options.root = std::string(line.positional()[0]);
  options.kind = root_kind(options.root);
  options.patterns = parse_patterns(line, options.kind);
  for (std::string_view key : line.values("--object")) options.given_objects.emplace_back(key);
  options.objects = line.number("--objects", kDefaultObjects, 1, kMaxObjects);
  options.object_bytes = line.number("--size-mib", kDefaultSizeMiB, 1, kMaxSizeMiB) * kMiB;
  options.reads = line.number("--reads", kDefaultReads, 1, kMaxReads);
  options.read_bytes = line.byte_count("--read-size", kDefaultReadBytes, 1, kGiB);
  options.reps = static_cast<unsigned>(line.number("--reps", kDefaultReps, 1, kMaxReps));
  options.concurrency = static_cast<unsigned>(line.number("--concurrency", kDefaultConcurrency, 1, kMaxConcurrency));
  options.threads = static_cast<unsigned>(line.number("--threads", default_engine_threads(), 1, kMaxThreads));
  options.part_bytes = line.byte_count("--part-size", kDefaultPartBytes, 1, UINT64_MAX - 1);
  options.keep = line.has("--keep");
  options.json = line.has("--json");
  options.compare = line.has("--compare");
  options.store = connection_options(line);
  options.store.part_size = options.part_bytes;
  if (options.kind == RootKind::kHttp && options.given_objects.empty()) {
    line.fail("http(s):// servers cannot be written to, so the bench cannot create objects there: name an existing "
              "object to read with --object KEY");
  }
  if (options.compare && options.kind != RootKind::kHttp) {
    line.fail("--compare applies to http(s):// roots only (libcurl reads files and signs no S3 requests here)");
  }
  if (has_pattern(options, BenchPattern::kWrite) && options.kind != RootKind::kS3) {
    line.fail("the write pattern needs an s3:// root");
  }
  return options;
}

// One reported line: a pattern's median run.
struct BenchRow {
  std::string pattern;
  uint64_t bytes = 0;
  uint64_t items = 0;
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t hedges = 0;
  uint64_t hedges_won = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  unsigned reps = 0;
  std::vector<double> latencies_ms;  // sorted; empty when not measured

  double gbps() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / kBytesPerGB : 0.0; }
  double cpu_per_gb() const { return bytes > 0 ? cpu_seconds / (static_cast<double>(bytes) / kBytesPerGB) : 0.0; }
  std::optional<double> percentile_ms(double p) const {
    if (latencies_ms.empty()) return std::nullopt;
    const auto at = static_cast<size_t>(p * static_cast<double>(latencies_ms.size() - 1) + 0.5);
    return latencies_ms[at];
  }
};

BenchRow median_of(std::vector<BenchRow> runs) {
  std::sort(runs.begin(), runs.end(), [](const BenchRow& a, const BenchRow& b) { return a.seconds < b.seconds; });
  BenchRow median = runs[runs.size() / 2];
  median.reps = static_cast<unsigned>(runs.size());
  return median;
}

BenchRow row_of(const std::string& pattern, const LoadResult& load) {
  BenchRow row;
  row.pattern = pattern;
  row.bytes = load.stats.bytes_requested;
  row.items = load.stats.items;
  row.requests = load.stats.requests;
  row.retries = load.stats.retries;
  row.hedges = load.stats.hedges_sent;
  row.hedges_won = load.stats.hedges_won;
  row.seconds = load.seconds;
  row.cpu_seconds = load.cpu_seconds;
  return row;
}

// Everything a run shares: the options, the cancel flag Ctrl-C sets, and the store(s).
struct BenchContext {
  const BenchOptions& options;
  const std::atomic<bool>& cancel;
  bool warmed_up = false;
};

LoadResult cancellable_load(BenchContext& context, Store& store, const Plan& plan, const std::string& label) {
  return timed_load(store, plan, label, [&](const ItemView&) {
    if (context.cancel.load()) throw Error(ErrorKind::kCancelled, "interrupted");
  });
}

BenchRow timed_reads(BenchContext& context, Store& store, const Plan& plan, const std::string& label) {
  // The engine maps and registers its memory, and opens its files or connections, on first use: measured at
  // ~0.4 s, which would be charged to whichever pattern runs first. One untimed run pays it.
  if (!context.warmed_up) {
    cancellable_load(context, store, plan, label);
    context.warmed_up = true;
  }
  std::vector<BenchRow> runs;
  for (unsigned rep = 0; rep < context.options.reps; ++rep) {
    runs.push_back(row_of(label, cancellable_load(context, store, plan, label)));
  }
  return median_of(std::move(runs));
}

// Runs argv[0] with `input` on its stdin (its stderr is ours); returns its stdout. Errors name the program.
std::string run_with_input(const std::vector<std::string>& argv, const std::string& input) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw Error(ErrorKind::kIo, std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t pid = fork();
  if (pid < 0) throw Error(ErrorKind::kIo, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  // The child reads all its input before it writes anything, so writing first cannot deadlock.
  for (size_t done = 0; done < input.size();) {
    const ssize_t n = write(in[1], input.data() + done, input.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child is gone: its exit status says why
    done += static_cast<size_t>(n);
  }
  close(in[1]);
  std::string output;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error(ErrorKind::kIo, argv[0] + " failed (" +
                                    (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                                       : "signal " + std::to_string(WTERMSIG(status))) +
                                    ")");
  }
  return output;
}

// The libcurl reader next to this program (or in its bench/ directory, or named by RINGFETCH_CURL_READER).
std::string curl_reader_path() {
  if (const char* named = std::getenv("RINGFETCH_CURL_READER"); named != nullptr && *named != '\0') return named;
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  for (const char* relative : {"ringfetch-curl-reader", "bench/ringfetch-curl-reader"}) {
    const std::filesystem::path candidate = self.parent_path() / relative;
    if (!error && access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  throw Error(ErrorKind::kInvalidArgument,
              "--compare needs ringfetch-curl-reader (built with the benchmarks, RINGFETCH_BUILD_BENCH=ON); set "
              "RINGFETCH_CURL_READER to its path");
}

std::string percent_encoded(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : key) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

// The plan's ranges read by libcurl, one GET per range over the same number of connections; its median run.
BenchRow curl_row(const BenchContext& context, const Plan& plan, const std::string& label) {
  const BenchOptions& options = context.options;
  std::string ranges;
  uint64_t bytes = 0;
  for (const PlanItem& item : plan.items()) {
    ranges += percent_encoded(item.object) + " " + std::to_string(item.offset) + " " + std::to_string(item.length) + "\n";
    bytes += item.length;
  }
  std::vector<std::string> argv = {curl_reader_path(), options.root,
                                   std::to_string(std::max(1u, options.store.http.connections)),
                                   std::to_string(options.reps)};
  if (!options.store.http.ca_file.empty()) argv.push_back(options.store.http.ca_file);
  const std::string answer = run_with_input(argv, ranges);
  BenchRow row;
  row.pattern = "libcurl " + label;
  try {
    const nlohmann::json json = nlohmann::json::parse(answer);
    row.bytes = bytes;
    row.items = plan.size();
    row.requests = json.at("requests").get<uint64_t>();
    row.seconds = json.at("seconds").get<double>();
    row.cpu_seconds = json.at("cpu_seconds").get<double>();
    row.reps = json.at("reps").get<unsigned>();
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorKind::kIo, "ringfetch-curl-reader answered '" + answer.substr(0, 200) + "', not its JSON line");
  }
  return row;
}

// Each range of `plan` (up to kLatencySamples) fetched alone: the round trip of one small request.
std::vector<double> single_read_latencies_ms(BenchContext& context, Store& store, const Plan& plan) {
  std::vector<double> samples;
  for (size_t i = 0; i < std::min(plan.size(), kLatencySamples) && !context.cancel.load(); ++i) {
    const PlanItem& item = plan.items()[i];
    Plan one;
    one.add(item.object, item.offset, item.length);
    const auto start = std::chrono::steady_clock::now();
    FetchBatch batch = store.fetch(one);
    batch.wait();
    samples.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(samples.begin(), samples.end());
  return samples;
}

std::vector<BenchRow> read_rows(BenchContext& context, Engine& engine, const std::vector<BenchObject>& objects) {
  const BenchOptions& options = context.options;
  Store store = Store::open(options.root, engine, options.store);
  std::vector<BenchRow> rows;
  for (BenchPattern pattern : options.patterns) {
    // With --compare, libcurl reads the same ranges right after ringfetch (one GET per range: it has no planner).
    auto measure = [&](Store& on, const Plan& plan, const std::string& label) {
      rows.push_back(timed_reads(context, on, plan, label));
      if (options.compare) rows.push_back(curl_row(context, plan, label));
    };
    if (pattern == BenchPattern::kWhole) {
      measure(store, whole_plan(objects, options.part_bytes), "whole");
    } else if (pattern == BenchPattern::kCheckpoint) {
      const CheckpointPlans plans = checkpoint_plans(objects, kPartialFraction);
      measure(store, plans.full, "checkpoint");
      const auto percent = static_cast<long>(100.0 * static_cast<double>(plans.partial_bytes) /
                                             static_cast<double>(std::max<uint64_t>(plans.full_bytes, 1)) + 0.5);
      measure(store, plans.partial, "checkpoint " + std::to_string(percent) + "%");
    } else if (pattern == BenchPattern::kRandom) {
      // No gap is worth reading for ranges this far apart: each range is its own request, as the pattern intends.
      StoreOptions scattered = options.store;
      scattered.max_gap = 0;
      Store random_store = Store::open(options.root, engine, scattered);
      const Plan plan = random_plan(objects, options.reads, options.read_bytes, kRandomSeed);
      const std::string label = "random " + human_bytes(options.read_bytes);
      BenchRow row = timed_reads(context, random_store, plan, label);
      row.latencies_ms = single_read_latencies_ms(context, random_store, plan);
      rows.push_back(std::move(row));
      if (options.compare) rows.push_back(curl_row(context, plan, label));
    }
  }
  return rows;
}

// The objects named by --object, with their sizes (which also checks that the store answers).
std::vector<BenchObject> given_objects(const BenchOptions& options, Engine& engine) {
  Store store = Store::open(options.root, engine, options.store);
  std::vector<BenchObject> objects;
  for (const std::string& key : options.given_objects) objects.push_back({key, store.size(key)});
  return objects;
}

BenchRow upload_row(const UploadReport& report) {
  BenchRow row;
  row.pattern = "write";
  row.bytes = report.bytes;
  row.items = 0;
  row.requests = report.requests;
  row.seconds = report.seconds;
  row.cpu_seconds = report.cpu_seconds;
  return row;
}

// Uploads the bench objects: --reps timed runs when the write pattern is asked for (each rewrites the same keys),
// else one run that only makes the objects the reads need.
std::vector<BenchRow> s3_uploads(BenchContext& context, s3::S3Client& client, CreatedObjects& created,
                                 const std::vector<BenchObject>& objects) {
  const BenchOptions& options = context.options;
  const S3Root root = parse_s3_root(options.root);
  const bool timed = has_pattern(options, BenchPattern::kWrite);
  std::vector<BenchRow> runs;
  for (unsigned rep = 0; rep < (timed ? options.reps : 1u); ++rep) {
    std::mutex progress_mutex;
    ProgressBar progress(options.object_bytes * objects.size());
    const auto on_progress = [&](uint64_t done) {
      std::lock_guard lock(progress_mutex);
      progress.update(done);
    };
    const UploadReport report =
        upload_objects(client, root, created, objects, options.concurrency, context.cancel, on_progress);
    runs.push_back(upload_row(report));
  }
  if (!timed) return {};
  return {median_of(std::move(runs))};
}

std::string rate_text(const BenchRow& row, double value, int decimals) {
  if (row.bytes == 0 || row.seconds <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// Small reads over a slow peer run at a few MB/s: enough decimals that the figure is not "0.00".
int gbps_decimals(double gbps) { return gbps >= 1 ? 2 : gbps >= 0.01 ? 3 : 4; }

std::string ms_text(std::optional<double> ms) {
  if (!ms) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", *ms);
  return text;
}

struct BenchReport {
  std::vector<BenchObject> objects;
  std::string prefix;  // empty when the objects were given
  size_t removed = 0;
  std::vector<BenchRow> rows;
  Stats engine_stats;
  unsigned threads = 0;
};

void print_table(const BenchOptions& options, const BenchReport& report) {
  const uint64_t object_bytes = report.objects.empty() ? 0 : report.objects.front().size;
  std::printf("bench: %s, %zu object%s%s (%s)\n", options.root.c_str(), report.objects.size(),
              report.objects.size() == 1 ? "" : "s",
              report.prefix.empty() ? " given with --object" : (" of " + human_bytes(object_bytes)).c_str(),
              report.prefix.empty() ? "read only" : ("created under " + report.prefix).c_str());
  std::printf("engine: %s, threads %u; each pattern run %u time%s after one untimed warm-up read, the median run "
              "shown\n\n",
              report.engine_stats.backend.c_str(), report.threads, options.reps, options.reps == 1 ? "" : "s");
  std::printf("%-24s %11s %9s %8s %7s %8s %9s %8s %8s\n", "pattern", "bytes", "requests", "retries", "hedges", "GB/s",
              "CPU s/GB", "p50 ms", "p99 ms");
  for (const BenchRow& row : report.rows) {
    std::printf("%-24s %11s %9llu %8llu %7llu %8s %9s %8s %8s\n", row.pattern.c_str(), human_bytes(row.bytes).c_str(),
                static_cast<unsigned long long>(row.requests), static_cast<unsigned long long>(row.retries),
                static_cast<unsigned long long>(row.hedges),
                rate_text(row, row.gbps(), gbps_decimals(row.gbps())).c_str(),
                rate_text(row, row.cpu_per_gb(), 3).c_str(),
                ms_text(row.percentile_ms(0.5)).c_str(), ms_text(row.percentile_ms(0.99)).c_str());
  }
  if (report.prefix.empty()) return;
  if (options.keep) {
    std::printf("\nkept: %zu objects under %s\n", report.objects.size(), report.prefix.c_str());
  } else {
    std::printf("\nremoved: %zu objects under %s\n", report.removed, report.prefix.c_str());
  }
}

nlohmann::json row_json(const BenchRow& row) {
  nlohmann::json out = {{"pattern", row.pattern},       {"bytes", row.bytes},
                        {"items", row.items},           {"requests", row.requests},
                        {"retries", row.retries},       {"seconds", row.seconds},
                        {"hedges", row.hedges},         {"hedges_won", row.hedges_won},
                        {"gbps", row.gbps()},           {"cpu_seconds", row.cpu_seconds},
                        {"cpu_seconds_per_gb", row.cpu_per_gb()}, {"reps", row.reps}};
  if (!row.latencies_ms.empty()) {
    out["latency_p50_ms"] = *row.percentile_ms(0.5);
    out["latency_p99_ms"] = *row.percentile_ms(0.99);
    out["latency_samples"] = row.latencies_ms.size();
  }
  return out;
}

void print_json(const BenchOptions& options, const BenchReport& report) {
  nlohmann::json rows = nlohmann::json::array();
  for (const BenchRow& row : report.rows) rows.push_back(row_json(row));
  nlohmann::json objects = nlohmann::json::array();
  for (const BenchObject& object : report.objects) objects.push_back({{"key", object.key}, {"size", object.size}});
  const nlohmann::json out = {
      {"root", options.root},
      {"backend", report.engine_stats.backend},
      {"threads", report.threads},
      {"reps", options.reps},
      {"objects", std::move(objects)},
      {"created_prefix", report.prefix.empty() ? nlohmann::json(nullptr) : nlohmann::json(report.prefix)},
      {"kept", options.keep && !report.prefix.empty()},
      {"removed", report.removed},
      {"results", std::move(rows)},
  };
  std::printf("%s\n", out.dump().c_str());
}

// How a root's created objects are removed. For s3:// the removal opens a client of its own: the upload client's
// keep-alive connections have sat idle through the read patterns, and a server that closed them meanwhile (node's
// s3rver does after 5 s) made DeleteObjects fail with EPIPE on every attempt, each one given another stale socket.
CreatedObjects::Remover remover_for(const BenchOptions& options, Engine& engine, const std::string& prefix) {
  if (options.kind == RootKind::kS3) {
    return [&engine, &options, root = parse_s3_root(options.root)](const std::vector<std::string>& keys) {
      std::vector<std::string> full;
      for (const std::string& key : keys) full.push_back(root.full_key(key));
      s3::S3Client::open(engine, options.store.s3, options.store.http).remove_many(root.bucket, full);
    };
  }
  return [url = options.root, prefix](const std::vector<std::string>& keys) {
    remove_file_objects(url, prefix, keys);
  };
}

// Makes (or looks up) the objects to read, runs the patterns and fills `report`.
void run_patterns(BenchContext& context, Engine& engine, s3::S3Client* client, CreatedObjects& created,
                  BenchReport& report) {
  const BenchOptions& options = context.options;
  const bool creates = options.given_objects.empty() || has_pattern(options, BenchPattern::kWrite);
  if (creates) report.prefix = created.prefix();
  if (options.kind == RootKind::kS3 && creates) {
    const std::vector<BenchObject> made = bench_object_names(created.prefix(), options.objects, options.object_bytes);
    report.rows = s3_uploads(context, *client, created, made);
    report.objects = made;
  } else if (options.kind == RootKind::kFile && options.given_objects.empty()) {
    report.objects = write_file_objects(options.root, created, options.objects, options.object_bytes, context.cancel);
  }
  if (!options.given_objects.empty()) report.objects = given_objects(options, engine);
  for (BenchRow& row : read_rows(context, engine, report.objects)) report.rows.push_back(std::move(row));
  report.engine_stats = engine.stats();
  report.threads = engine.options().threads;
}

}  // namespace

int run_bench(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kBenchHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const BenchOptions options = parse_bench_options(args);
  std::atomic<bool> cancel{false};
  // Before the engine starts, so that its threads inherit the blocked signals.
  const InterruptHandler interrupts([&cancel, &options](int signal) {
    cancel.store(true);
    say("interrupted by " + signal_name(signal) +
        (options.keep ? std::string() : "; removing the bench objects") + " (interrupt again to quit at once)");
  });
  EngineOptions engine_options;
  engine_options.threads = options.threads;
  Engine engine(engine_options);
  std::optional<s3::S3Client> client;
  if (options.kind == RootKind::kS3) client = s3::S3Client::open(engine, options.store.s3, options.store.http);
  const std::string prefix = unique_bench_prefix();
  CreatedObjects created(prefix, remover_for(options, engine, prefix));
  if (options.keep) created.keep();
  BenchContext context{options, cancel};
  BenchReport report;
  try {
    run_patterns(context, engine, client ? &*client : nullptr, created, report);
  } catch (const Error&) {
    if (interrupts.signal() == 0) throw;  // the created objects go as `created` unwinds
    const size_t removed = options.keep ? 0 : created.remove_all();
    say(options.keep ? "interrupted; kept the bench objects under " + prefix
                     : "interrupted; removed " + std::to_string(removed) + " bench objects under " + prefix);
    return interrupts.exit_status();
  }
  if (!options.keep) report.removed = created.remove_all();
  if (options.json) {
    print_json(options, report);
  } else {
    print_table(options, report);
  }
  return interrupts.signal() != 0 ? interrupts.exit_status() : 0;
}

}  // namespace ringfetch::cli
