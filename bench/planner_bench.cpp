// Microbenchmark of the range planner on 1M random ranges (a large checkpoint's worth of tensor reads):
// how many items per second plan_ranges turns into extents, groups and requests. The items are made once,
// outside the timed loop; the layout is reused across iterations as an engine planning repeatedly would.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <tuple>
#include <vector>

#include "engine/range_planner.hpp"

namespace ringfetch::engine {
namespace {

constexpr size_t kItemCount = 1'000'000;
constexpr uint32_t kObjectCount = 64;
constexpr uint64_t kObjectBytes = uint64_t{16} << 30;

// Lengths from 1 B to 1 MiB, log-uniform, so small and large tensors both appear; items overlap and
// leave gaps at random, as reads of many sharded tensors do.
std::vector<PlannerItem> random_items(bool sorted) {
  std::mt19937_64 rng(42);
  std::vector<PlannerItem> items(kItemCount);
  for (PlannerItem& item : items) {
    item.object = static_cast<uint32_t>(rng() % kObjectCount);
    const uint64_t length_bits = rng() % 21;
    item.length = (uint64_t{1} << length_bits) + rng() % (uint64_t{1} << length_bits);
    item.offset = rng() % (kObjectBytes - item.length);
  }
  if (sorted) {
    std::sort(items.begin(), items.end(), [](const PlannerItem& a, const PlannerItem& b) {
      return std::tie(a.object, a.offset) < std::tie(b.object, b.offset);
    });
  }
  return items;
}

void plan_million_ranges(benchmark::State& state, bool sorted, uint64_t alignment) {
  const std::vector<PlannerItem> items = random_items(sorted);
  PlannerOptions options;
  options.max_gap = 1 << 20;
  options.part_size = 8 << 20;
  options.alignment = alignment;
  PlanLayout layout;
  for (auto _ : state) {
    Status status = plan_ranges(items, options, {}, &layout);
    if (!status.ok()) {
      state.SkipWithError(status.message().c_str());
      break;
    }
    benchmark::DoNotOptimize(layout.requests.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * items.size()));
  state.counters["extents"] = static_cast<double>(layout.extents.size());
  state.counters["requests"] = static_cast<double>(layout.requests.size());
  state.counters["groups"] = static_cast<double>(layout.groups);
}

void BM_PlanMillionRandomRanges(benchmark::State& state) { plan_million_ranges(state, false, 1); }
void BM_PlanMillionSortedRanges(benchmark::State& state) { plan_million_ranges(state, true, 1); }
void BM_PlanMillionRandomRangesAligned4K(benchmark::State& state) { plan_million_ranges(state, false, 4096); }

BENCHMARK(BM_PlanMillionRandomRanges)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanMillionSortedRanges)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanMillionRandomRangesAligned4K)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringfetch::engine
