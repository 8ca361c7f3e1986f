// `ringfetch load ROOT --plan FILE`: loads every item of a JSON plan file from a store root, consuming items in
// plan order and dropping each view at once, and reports the load as one table row or one JSON object. The
// arena (memory in flight) is sized to the plan, up to the engine default, unless --arena-mib says otherwise. The items are fetched sorted by (key, offset): a load only reports totals, so the
// order is free, and file order lets the arena drain as items are consumed (with the plan file's order, items
// that overlap or share a request far apart in the plan can hold the whole arena while the consumer waits on an
// item that no longer fits: a known engine limitation).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "plan_file.hpp"
#include "ringfetch/ringfetch.hpp"
#include "timed_load.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kLoadHelp[] =
    "usage: ringfetch load ROOT --plan FILE [--json] [--threads N] [--arena-mib N] [--part-size BYTES]\n"
    "                      [--max-gap BYTES] [connection options]\n"
    "\n"
    "Loads the items of a plan file from the store ROOT (file:///dir, direct:///dir, http(s)://host/prefix,\n"
    "s3://bucket/prefix) and prints items, bytes, requests, over-fetch (bytes fetched - bytes requested), GB/s,\n"
    "CPU s/GB and user-space copies. The plan file is JSON:\n"
    "  {\"items\": [{\"key\": \"a/b\", \"offset\": 0, \"length\": 10}, ...]}\n"
    "with each key relative to ROOT. Items are fetched in (key, offset) order, whatever their order in the file.\n"
    "\n"
    "options:\n"
    "  --plan FILE        the plan file (required; '-' reads it from stdin)\n"
    "  --json             print one JSON object: items, bytes_requested, bytes_fetched, bytes_copied_user,\n"
    "                     requests, seconds, gbps, cpu_seconds (process user+sys), backend\n"
    "  --threads N        engine threads, one ring each (default: hardware threads, at most 4)\n"
    "  --arena-mib N      memory for items in flight (default: the plan's size, at most 256 MiB); a larger\n"
    "                     item is read alone\n"
    "  --part-size BYTES  longest single request (default: the source's, 8 MiB); K, M, G suffixes allowed\n"
    "  --max-gap BYTES    read gaps up to this size rather than issue another request (default: the source's)\n"
    "\n"
    "ringfetch load --safetensors OBJECT_URL [--tensors GLOB]... loads tensors of a safetensors file instead\n"
    "(see 'ringfetch load --safetensors x --help').\n"
    "\n";

constexpr uint64_t kMaxThreads = 64;
constexpr uint64_t kDefaultArenaBytes = uint64_t{256} << 20;
constexpr uint64_t kMaxArenaMiB = uint64_t{1} << 20;
// Extra arena beyond the plan's bytes: covers O_DIRECT widening of items to 4 KiB blocks.
constexpr uint64_t kArenaSlackBytes = uint64_t{1} << 20;

struct LoadOptions {
  std::string root;
  std::string plan_path;
  bool json = false;
  unsigned threads = 1;
  uint64_t arena_mib = 0;  // 0: sized to the plan
  StoreOptions store;
};

LoadOptions parse_load_options(const Arguments& args) {
  const CommandLine line("ringfetch load", args,
                         with_connection_options({{"--plan", true}, {"--json", false}, {"--threads", true},
                                                  {"--arena-mib", true}, {"--part-size", true}, {"--max-gap", true}}));
  line.expect_positional({"ROOT (the store root URL)"});
  if (!line.has("--plan")) line.fail("missing --plan FILE");
  LoadOptions options;
  options.root = std::string(line.positional()[0]);
  options.plan_path = std::string(*line.value("--plan"));
  options.json = line.has("--json");
  options.store = connection_options(line);
  options.threads = static_cast<unsigned>(line.number("--threads", default_engine_threads(), 1, kMaxThreads));
  options.arena_mib = line.number("--arena-mib", 0, 1, kMaxArenaMiB);
  if (line.value("--part-size")) options.store.part_size = line.byte_count("--part-size", 0, 1, UINT64_MAX - 1);
  if (line.value("--max-gap")) options.store.max_gap = line.byte_count("--max-gap", 0, 0, UINT64_MAX - 1);
  return options;
}

uint64_t round_up(uint64_t value, uint64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// An item is delivered whole. The engine's default memory limit is a quarter of physical memory; an item above it
// could never be held, so it is refused here, with the CLI's advice rather than the library's option names.
uint64_t item_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return uint64_t{1} << 30;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) / 4;
}

void check_items_fit_in_memory(const Plan& plan) {
  const uint64_t limit = item_memory_limit();
  for (const PlanItem& item : plan.items()) {
    if (item.length <= limit) continue;
    throw Error(ErrorKind::kInvalidArgument,
                "the item of '" + item.object + "' at offset " + std::to_string(item.offset) + " is " +
                    human_bytes(item.length) + ", more than load can hold in memory at once (" +
                    human_bytes(limit) + "): each item is delivered whole; split it into smaller items, or download "
                    "the object with 'ringfetch get'");
  }
}

// The arena bounds what the engine holds in flight; items larger than it are read one at a time (the memory
// limit, a fraction of physical memory, bounds those).
uint64_t arena_for(const LoadOptions& options, const Plan& plan) {
  check_items_fit_in_memory(plan);
  if (options.arena_mib != 0) return options.arena_mib * kMiB;
  uint64_t total = 0;
  for (const PlanItem& item : plan.items()) total += item.length;
  return round_up(std::min(kDefaultArenaBytes, total) + kArenaSlackBytes, kMiB);
}

void print_text(const LoadResult& result) {
  print_load_table(stdout, std::span<const LoadResult>(&result, 1));
  if (!result.stats.fallback_reason.empty()) {
    std::printf("backend: %s (%s)\n", result.stats.backend.c_str(), result.stats.fallback_reason.c_str());
  }
}

Plan sorted_by_position(const Plan& plan) {
  std::vector<const PlanItem*> order;
  order.reserve(plan.size());
  for (const PlanItem& item : plan.items()) order.push_back(&item);
  std::stable_sort(order.begin(), order.end(), [](const PlanItem* a, const PlanItem* b) {
    return a->object != b->object ? a->object < b->object : a->offset < b->offset;
  });
  Plan sorted;
  for (const PlanItem* item : order) sorted.add(item->object, item->offset, item->length);
  return sorted;
}

std::string plan_label(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

int run_load(const Arguments& args) {
  if (is_safetensors_load(args)) return run_load_safetensors(args);
  if (wants_help(args)) {
    std::fputs(kLoadHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const LoadOptions options = parse_load_options(args);
  const Plan plan = sorted_by_position(read_plan_file(options.plan_path));
  EngineOptions engine_options;
  engine_options.threads = options.threads;
  engine_options.arena_bytes = arena_for(options, plan);
  Engine engine(engine_options);
  Store store = Store::open(options.root, engine, options.store);
  const LoadResult result = timed_load(store, plan, plan_label(options.plan_path));
  if (options.json) {
    std::printf("%s\n", load_json(result).dump().c_str());
  } else {
    print_text(result);
  }
  return 0;
}

}  // namespace ringfetch::cli
