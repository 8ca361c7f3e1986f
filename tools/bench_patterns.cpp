// Bench read plans. The random pattern picks distinct slots (a slot is a 2 x read-size stretch of one object; the
// read takes its first half): enumerating and shuffling when most slots are wanted, rejection sampling when few
// are, so that huge objects cost no memory per slot.
#include "bench_patterns.hpp"

#include <algorithm>
#include <random>
#include <unordered_set>

#include "demo_dataset.hpp"

namespace ringfetch::cli {
namespace {

// Slot `slot` of all objects taken together -> (object index, offset).
struct SlotMap {
  std::vector<uint64_t> first_slot;  // per object, the global index of its first slot
  uint64_t total = 0;
  uint64_t stride = 0;

  SlotMap(const std::vector<BenchObject>& objects, uint64_t slot_bytes) : stride(slot_bytes) {
    for (const BenchObject& object : objects) {
      first_slot.push_back(total);
      // A last, partial stretch still holds a read when the read itself fits.
      total += object.size / slot_bytes + (object.size % slot_bytes >= slot_bytes / 2 ? 1 : 0);
    }
  }
  std::pair<size_t, uint64_t> locate(uint64_t slot) const {
    const auto after = std::upper_bound(first_slot.begin(), first_slot.end(), slot);
    const size_t object = static_cast<size_t>(after - first_slot.begin()) - 1;
    return {object, (slot - first_slot[object]) * stride};
  }
};

std::vector<uint64_t> pick_slots(uint64_t total, size_t wanted, std::mt19937_64& random) {
  std::vector<uint64_t> slots;
  if (wanted >= total / 2) {
    for (uint64_t s = 0; s < total; ++s) slots.push_back(s);
    std::shuffle(slots.begin(), slots.end(), random);
    slots.resize(std::min<uint64_t>(wanted, total));
    return slots;
  }
  std::unordered_set<uint64_t> seen;
  std::uniform_int_distribution<uint64_t> any(0, total - 1);
  while (slots.size() < wanted) {
    const uint64_t s = any(random);
    if (seen.insert(s).second) slots.push_back(s);
  }
  return slots;
}

}  // namespace

std::string_view pattern_name(BenchPattern pattern) {
  switch (pattern) {
    case BenchPattern::kWhole: return "whole";
    case BenchPattern::kCheckpoint: return "checkpoint";
    case BenchPattern::kRandom: return "random";
    case BenchPattern::kWrite: return "write";
  }
  return "?";
}

Plan whole_plan(const std::vector<BenchObject>& objects, uint64_t part_bytes) {
  Plan plan;
  for (const BenchObject& object : objects) {
    for (uint64_t offset = 0; offset < object.size; offset += part_bytes) {
      plan.add(object.key, offset, std::min(part_bytes, object.size - offset));
    }
  }
  return plan;
}

CheckpointPlans checkpoint_plans(const std::vector<BenchObject>& objects, double partial_fraction) {
  CheckpointPlans plans;
  for (const BenchObject& object : objects) {
    DatasetLayout layout = layout_dataset(object.size);
    // The layout may overshoot its target by its last item; what does not fit the object is left out.
    std::erase_if(layout.items, [&](const DatasetItem& item) { return item.offset + item.length > object.size; });
    layout.item_bytes = 0;
    for (const DatasetItem& item : layout.items) {
      plans.full.add(object.key, item.offset, item.length);
      plans.full_bytes += item.length;
      layout.item_bytes += item.length;
    }
    for (size_t i : clustered_subset(layout, partial_fraction)) {
      plans.partial.add(object.key, layout.items[i].offset, layout.items[i].length);
      plans.partial_bytes += layout.items[i].length;
    }
  }
  return plans;
}

Plan random_plan(const std::vector<BenchObject>& objects, size_t reads, uint64_t read_bytes, uint64_t seed) {
  const SlotMap slots(objects, 2 * read_bytes);
  std::mt19937_64 random(seed);
  Plan plan;
  if (slots.total == 0) return plan;
  for (uint64_t slot : pick_slots(slots.total, reads, random)) {
    const auto [object, offset] = slots.locate(slot);
    plan.add(objects[object].key, offset, std::min(read_bytes, objects[object].size - offset));
  }
  return plan;
}

}  // namespace ringfetch::cli
