// The read patterns of `ringfetch bench`, as plans over a set of objects:
//   whole       every object front to back in part-size items (what a download or a dataset scan does)
//   checkpoint  tensor-like items of log-spread sizes laid back to back with small header gaps, as in a model
//               checkpoint (the `demo` layout, one per object); a full load and a clustered ~30% partial load
//   random      small ranges (e.g. 4 KiB) at random places, never adjacent, so no two coalesce into one request
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "bench_objects.hpp"
#include "ringfetch/plan.hpp"

namespace ringfetch::cli {

enum class BenchPattern { kWhole, kCheckpoint, kRandom, kWrite };

// "whole", "checkpoint", "random", "write".
std::string_view pattern_name(BenchPattern pattern);

Plan whole_plan(const std::vector<BenchObject>& objects, uint64_t part_bytes);

struct CheckpointPlans {
  Plan full;
  Plan partial;
  uint64_t full_bytes = 0;
  uint64_t partial_bytes = 0;
};
CheckpointPlans checkpoint_plans(const std::vector<BenchObject>& objects, double partial_fraction);

// `reads` ranges of `read_bytes` (fewer when the objects have too few places for them), at offsets that are
// multiples of 2 x read_bytes, so that neighbours always have a gap between them; in random order.
Plan random_plan(const std::vector<BenchObject>& objects, size_t reads, uint64_t read_bytes, uint64_t seed);

}  // namespace ringfetch::cli
