// `ringfetch demo`: the embedded default. Writes a checkpoint-like file into a fresh temporary directory, then
// loads it through file:// twice — a clustered 30% partial plan and the full plan — and prints one table row
// per load. Each load is timed with the consumer only dropping views (what the table measures is ringfetch);
// a second, untimed pass of the same plan then checks every byte of every item against the generator.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "demo_dataset.hpp"
#include "engine_sizing.hpp"
#include "ringfetch/ringfetch.hpp"
#include "timed_load.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kDemoHelp[] =
    "usage: ringfetch demo [--dir DIR] [--size-mib N] [--keep] [--json]\n"
    "\n"
    "Generates one checkpoint-like file (a few thousand items of 4 KiB .. 64 MiB, deterministic pseudo-random\n"
    "bytes) in a new temporary directory, loads a clustered 30% partial plan and then the full plan through\n"
    "file://, verifies every byte, and prints items, bytes, requests, over-fetch, GB/s, CPU s/GB and user-space\n"
    "copies per load. The file has just been written, so it is read from a warm page cache.\n"
    "\n"
    "options:\n"
    "  --dir DIR      create the temporary directory under DIR (default: $TMPDIR, else /tmp)\n"
    "  --size-mib N   size of the dataset in MiB (default 1024)\n"
    "  --keep         keep the dataset afterwards (its path is printed)\n"
    "  --json         print one JSON object instead of the table\n";

constexpr uint64_t kDefaultSizeMiB = 1024;
constexpr uint64_t kMaxSizeMiB = uint64_t{1} << 20;  // 1 TiB; the disk gives out long before
constexpr double kPartialFraction = 0.3;
constexpr uint64_t kMaxArenaBytes = uint64_t{256} << 20;
constexpr uint64_t kInFlightHeadroomBytes = uint64_t{32} << 20;  // beyond the largest item, for reads in flight
constexpr char kObjectName[] = "__0_0.distcp";
constexpr char kDirectoryPrefix[] = "ringfetch-demo-";

struct DemoOptions {
  std::string parent;
  uint64_t size_bytes = 0;
  bool keep = false;
  bool json = false;
};

// The temporary directory and the one file the demo writes in it; removed on destruction unless kept.
class DemoDirectory {
 public:
  DemoDirectory(const std::string& parent, bool keep) : keep_(keep) {
    std::string pattern = parent + "/" + kDirectoryPrefix + "XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      throw Error(ErrorKind::kIo, "cannot create a directory under '" + parent + "': " + std::strerror(errno));
    }
    char* absolute = realpath(pattern.c_str(), nullptr);  // file:// URLs need an absolute path
    path_ = absolute != nullptr ? absolute : pattern;
    std::free(absolute);
  }
  ~DemoDirectory() {
    if (keep_) return;
    ::unlink(file_path().c_str());
    ::rmdir(path_.c_str());
  }
  DemoDirectory(const DemoDirectory&) = delete;
  DemoDirectory& operator=(const DemoDirectory&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::string file_path() const { return path_ + "/" + kObjectName; }

 private:
  std::string path_;
  bool keep_;
};

DemoOptions parse_demo_options(const Arguments& args) {
  const CommandLine line("ringfetch demo", args,
                         {{"--dir", true}, {"--size-mib", true}, {"--keep", false}, {"--json", false}});
  line.expect_positional({});
  DemoOptions options;
  const char* tmpdir = std::getenv("TMPDIR");
  options.parent = std::string(line.value("--dir").value_or(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp"));
  options.size_bytes = line.number("--size-mib", kDefaultSizeMiB, 1, kMaxSizeMiB) * kMiB;
  options.keep = line.has("--keep");
  options.json = line.has("--json");
  return options;
}

Plan plan_of(const DatasetLayout& layout, const std::vector<size_t>& indices) {
  Plan plan;
  for (size_t i : indices) plan.add(kObjectName, layout.items[i].offset, layout.items[i].length);
  return plan;
}

std::vector<size_t> all_items(const DatasetLayout& layout) {
  std::vector<size_t> indices(layout.items.size());
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = i;
  return indices;
}

EngineOptions demo_engine_options(const DatasetLayout& layout) {
  EngineOptions options;
  options.threads = default_engine_threads();
  const uint64_t fits_work = std::min(kMaxArenaBytes, layout.file_bytes);
  options.arena_bytes = std::max(fits_work, layout.largest_item + kInFlightHeadroomBytes);
  return options;
}

// Fetches `plan` again and compares every item with the generator. Throws Error(kIntegrity) on a mismatch.
void verify_plan(Store& store, const Plan& plan) {
  PatternChecker checker;
  uint64_t checked = 0;
  timed_load(store, plan, "verify", [&](const ItemView& item) {
    const PlanItem& wanted = plan.items()[item.index()];
    if (item.offset() != wanted.offset || item.size() != wanted.length) {
      throw Error(ErrorKind::kIntegrity, "demo item " + std::to_string(item.index()) + " came back as " +
                                             std::to_string(item.size()) + " bytes at offset " +
                                             std::to_string(item.offset()) + ", expected " +
                                             std::to_string(wanted.length) + " at " + std::to_string(wanted.offset));
    }
    if (std::optional<size_t> bad = checker.first_mismatch(item.offset(), item.bytes())) {
      throw Error(ErrorKind::kIntegrity, "demo item " + std::to_string(item.index()) + " (offset " +
                                             std::to_string(item.offset()) + ", length " +
                                             std::to_string(item.size()) + "): byte " +
                                             std::to_string(item.offset() + *bad) +
                                             " of the file differs from the generator");
    }
    ++checked;
  });
  if (checked != plan.size()) {
    throw Error(ErrorKind::kIntegrity, "demo load delivered " + std::to_string(checked) + " of " +
                                           std::to_string(plan.size()) + " items");
  }
}

std::string percent_label(const char* name, uint64_t part, uint64_t whole) {
  const auto percent = static_cast<long>(100.0 * static_cast<double>(part) / static_cast<double>(whole) + 0.5);
  return std::string(name) + " (" + std::to_string(percent) + "%)";
}

void print_text_report(const DemoOptions& options, const DemoDirectory& directory, const DatasetLayout& layout,
                       double write_seconds, const Engine& engine, const LoadResult& first,
                       const std::vector<LoadResult>& results) {
  const Stats stats = engine.stats();
  std::printf("dataset: %s in %zu items (%s .. %s), written and flushed in %.2f s to %s\n", human_bytes(layout.file_bytes).c_str(),
              layout.items.size(), human_bytes(kSmallestItemBytes).c_str(), human_bytes(layout.largest_item).c_str(),
              write_seconds, directory.file_path().c_str());
  std::printf("engine: %s, threads %u, arena %s, registered buffers: %s%s%s\n", stats.backend.c_str(),
              engine.options().threads, human_bytes(engine.options().arena_bytes).c_str(),
              stats.buffers_registered ? "yes" : "no", stats.fallback_reason.empty() ? "" : " - ",
              stats.fallback_reason.c_str());
  std::printf("page cache: warm (the file was just written; the cache is not dropped)\n");
  std::printf("first full load, which also maps and registers the engine's memory (%s peak): %.3f s\n\n",
              human_bytes(stats.arena_peak_bytes).c_str(), first.seconds);
  print_load_table(stdout, results);
  std::printf("\nverified: every byte of every item of both loads matches the generator "
              "(checked in an untimed second pass of each plan)\n");
  std::printf(options.keep ? "kept: %s\n" : "removing: %s\n", directory.path().c_str());
}

void print_json_report(const DemoOptions& options, const DemoDirectory& directory, const DatasetLayout& layout,
                       const LoadResult& first, const std::vector<LoadResult>& results) {
  nlohmann::json loads = nlohmann::json::array();
  for (const LoadResult& r : results) {
    nlohmann::json row = load_json(r);
    row["label"] = r.label;
    loads.push_back(std::move(row));
  }
  const nlohmann::json report = {
      {"dataset", {{"path", directory.file_path()}, {"file_bytes", layout.file_bytes},
                   {"items", layout.items.size()}, {"largest_item", layout.largest_item}, {"kept", options.keep}}},
      {"page_cache", "warm"},
      {"first_load_seconds", first.seconds},
      {"verified", true},
      {"loads", std::move(loads)},
  };
  std::printf("%s\n", report.dump().c_str());
}

}  // namespace

int run_demo(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kDemoHelp, stdout);
    return 0;
  }
  const DemoOptions options = parse_demo_options(args);
  const DemoDirectory directory(options.parent, options.keep);
  const DatasetLayout layout = layout_dataset(options.size_bytes);
  const auto write_start = std::chrono::steady_clock::now();
  write_dataset_file(directory.file_path(), layout.file_bytes);
  const double write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();

  Engine engine(demo_engine_options(layout));
  Store store = Store::open("file://" + directory.path(), engine);
  const std::vector<size_t> partial = clustered_subset(layout, kPartialFraction);
  uint64_t partial_bytes = 0;
  for (size_t i : partial) partial_bytes += layout.items[i].length;
  const Plan partial_plan = plan_of(layout, partial);
  const Plan full_plan = plan_of(layout, all_items(layout));

  // The engine maps and registers its memory as loads first need it, and on VMs the first write to fresh memory is
  // dear (~1.8 s per GiB measured here). One untimed-in-the-table pass of the full plan pays that, so the table
  // shows what every later load costs; the first pass is reported on its own line.
  const LoadResult first = timed_load(store, full_plan, "first");
  std::vector<LoadResult> results;
  results.push_back(timed_load(store, partial_plan, percent_label("partial", partial_bytes, layout.item_bytes)));
  verify_plan(store, partial_plan);
  results.push_back(timed_load(store, full_plan, "full"));
  verify_plan(store, full_plan);

  if (options.json) {
    print_json_report(options, directory, layout, first, results);
  } else {
    print_text_report(options, directory, layout, write_seconds, engine, first, results);
  }
  return 0;
}

}  // namespace ringfetch::cli
