// RangePlanner: validates the caller's items and lays them out as extents (memory), groups (neighbours close
// enough that reading the gap beats a new request) and requests (part_size-bounded reads split into extent and
// gap segments). Everything is one pass over the items sorted by (object, offset), so a plan of n items costs
// O(n log n) for the sort plus O(extents + requests + segments) for the rest; nothing here does I/O.
#include "engine/range_planner.hpp"

#include <algorithm>
#include <string>

namespace ringfetch::engine {
namespace {

// Item indices and extent ids are uint32 with UINT32_MAX reserved as "none" (kNoExtent / kGap).
constexpr uint64_t kMaxItems = UINT32_MAX - 1;
constexpr uint64_t kMaxSegments = UINT32_MAX;
// Reservation for requests/segments is an estimate; this caps it so that a tiny part_size on a huge plan
// grows the vectors on demand instead of asking for an absurd block up front.
constexpr uint64_t kMaxRequestReserve = uint64_t{1} << 22;

// A non-empty item in planning order. Kept small (24 bytes) because sorting these dominates planning time.
struct SortedItem {
  uint64_t offset;
  uint64_t end;
  uint32_t object;
  uint32_t index;
};

bool planning_order(const SortedItem& a, const SortedItem& b) {
  if (a.object != b.object) return a.object < b.object;
  if (a.offset != b.offset) return a.offset < b.offset;
  return a.index < b.index;
}

uint64_t extent_end(const Extent& extent) { return extent.offset + extent.length; }

uint64_t align_down(uint64_t value, uint64_t alignment) { return value & ~(alignment - 1); }

// Rounds up to a multiple of `alignment`, or UINT64_MAX when that multiple is not representable (the end is
// then unaligned, like an end clamped at the object size).
uint64_t align_up_saturating(uint64_t value, uint64_t alignment) {
  const uint64_t down = align_down(value, alignment);
  if (down == value) return value;
  return down > UINT64_MAX - alignment ? UINT64_MAX : down + alignment;
}

std::string describe_item(size_t index, const PlannerItem& item) {
  return "item " + std::to_string(index) + " [offset " + std::to_string(item.offset) + ", length " +
         std::to_string(item.length) + "] of object " + std::to_string(item.object);
}

Status invalid(std::string message) { return Status(ErrorKind::kInvalidArgument, std::move(message)); }

Status validate_options(const PlannerOptions& options) {
  const uint64_t alignment = options.alignment;
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    return invalid("alignment " + std::to_string(alignment) +
                   " is not a power of two (use 1 for unaligned plans)");
  }
  if (options.part_size == 0) return invalid("part_size must be greater than 0");
  if (options.part_size % alignment != 0) {
    return invalid("part_size " + std::to_string(options.part_size) + " is not a multiple of alignment " +
                   std::to_string(alignment));
  }
  return Status();
}

// Zero-length items are checked too: a caller naming a range past the end of an object has a bug even when
// it asks for no bytes of it.
Status validate_item(size_t index, const PlannerItem& item, std::span<const uint64_t> object_sizes) {
  if (item.length > UINT64_MAX - item.offset) {
    return invalid(describe_item(index, item) + ": offset + length overflows 64 bits");
  }
  if (object_sizes.empty()) return Status();
  if (item.object >= object_sizes.size()) {
    return invalid(describe_item(index, item) + " names an object without a size (" +
                   std::to_string(object_sizes.size()) + " object sizes were given)");
  }
  const uint64_t end = item.offset + item.length;
  const uint64_t object_size = object_sizes[item.object];
  if (end > object_size) {
    return invalid(describe_item(index, item) + " ends at " + std::to_string(end) +
                   ", past the object's end at " + std::to_string(object_size));
  }
  return Status();
}

Status validate_items(std::span<const PlannerItem> items, std::span<const uint64_t> object_sizes) {
  if (items.size() > kMaxItems) {
    return invalid("plan has " + std::to_string(items.size()) + " items; at most " + std::to_string(kMaxItems) +
                   " are supported");
  }
  for (size_t index = 0; index < items.size(); ++index) {
    Status status = validate_item(index, items[index], object_sizes);
    if (!status.ok()) return status;
  }
  return Status();
}

std::vector<SortedItem> sort_non_empty_items(std::span<const PlannerItem> items) {
  std::vector<SortedItem> sorted;
  sorted.reserve(items.size());
  for (size_t index = 0; index < items.size(); ++index) {
    const PlannerItem& item = items[index];
    if (item.length == 0) continue;
    sorted.push_back({item.offset, item.offset + item.length, item.object, static_cast<uint32_t>(index)});
  }
  // Callers often list items in file order already; checking is far cheaper than sorting.
  if (!std::is_sorted(sorted.begin(), sorted.end(), planning_order)) {
    std::sort(sorted.begin(), sorted.end(), planning_order);
  }
  return sorted;
}

Status destination_overlap_error(const SortedItem& destination, const SortedItem& other) {
  const uint64_t shared_first = std::max(destination.offset, other.offset);
  const uint64_t shared_last = std::min(destination.end, other.end) - 1;
  return invalid("item " + std::to_string(destination.index) + " [offset " + std::to_string(destination.offset) +
                 ", length " + std::to_string(destination.end - destination.offset) +
                 "] with a destination overlaps item " + std::to_string(other.index) + " [offset " +
                 std::to_string(other.offset) + ", length " + std::to_string(other.end - other.offset) +
                 "] (object " + std::to_string(destination.object) + " bytes " + std::to_string(shared_first) +
                 "-" + std::to_string(shared_last) + "); overlapping items cannot have destinations");
}

// Every overlapping pair (earlier, later) in planning order has earlier.end > later.offset. So tracking the
// furthest-reaching item seen (and the furthest-reaching destination item) per object finds a pair whenever a
// destination overlaps anything, in one pass.
Status check_destination_overlaps(std::span<const PlannerItem> items, const std::vector<SortedItem>& sorted) {
  const SortedItem* furthest = nullptr;
  const SortedItem* furthest_destination = nullptr;
  for (const SortedItem& current : sorted) {
    if (furthest != nullptr && furthest->object != current.object) {
      furthest = nullptr;
      furthest_destination = nullptr;
    }
    const bool is_destination = items[current.index].has_destination;
    if (is_destination && furthest != nullptr && current.offset < furthest->end) {
      return destination_overlap_error(current, *furthest);
    }
    if (furthest_destination != nullptr && current.offset < furthest_destination->end) {
      return destination_overlap_error(*furthest_destination, current);
    }
    if (furthest == nullptr || current.end > furthest->end) furthest = &current;
    if (is_destination && (furthest_destination == nullptr || current.end > furthest_destination->end)) {
      furthest_destination = &current;
    }
  }
  return Status();
}

bool any_destination(std::span<const PlannerItem> items) {
  return std::any_of(items.begin(), items.end(), [](const PlannerItem& item) { return item.has_destination; });
}

// Exact extents: overlapping plain items are unioned (they must share memory); items that only touch stay
// apart, so each one's memory can be released as soon as its own views are dropped; a destination item is
// always alone. Extent::first_item indexes `sorted`, which
// becomes extent_items. Returns the number of distinct item bytes (extents are disjoint, so their lengths sum
// to the size of the union). `has_destinations` false skips looking items up in caller order, which for a
// large shuffled plan is one cache miss per item.
uint64_t build_exact_extents(std::span<const PlannerItem> items, bool has_destinations,
                             const std::vector<SortedItem>& sorted, std::vector<Extent>* extents) {
  uint64_t distinct_bytes = 0;
  bool open_extent_takes_items = false;
  for (size_t position = 0; position < sorted.size(); ++position) {
    const SortedItem& current = sorted[position];
    const bool is_destination = has_destinations && items[current.index].has_destination;
    if (open_extent_takes_items && !is_destination) {
      Extent& open = extents->back();
      if (open.object == current.object && current.offset < extent_end(open)) {
        const uint64_t new_end = std::max(extent_end(open), current.end);
        distinct_bytes += new_end - extent_end(open);
        open.length = new_end - open.offset;
        ++open.item_count;
        continue;
      }
    }
    extents->push_back({current.object, current.offset, current.end - current.offset, is_destination,
                        static_cast<uint32_t>(position), 1});
    distinct_bytes += current.end - current.offset;
    open_extent_takes_items = !is_destination;
  }
  return distinct_bytes;
}

// Widens every extent to aligned bounds (the end clamped at the object size when known) and merges extents
// whose widened ranges overlap (share a block), in place; widened extents that only touch stay apart, so a
// back-to-back plan does not become one extent larger than the arena. An extent stays a destination only if
// widening left it exactly the caller's item: once it grew (alignment padding) or absorbed a neighbour, its memory is no longer
// the caller's span, so it is marked destination=false and the engine reads into arena memory and copies the
// item's bytes out (a bounce copy).
//
// Merging stops at max_merged bytes: items back to back at unaligned offsets share a block with each
// neighbour, and merging them all would make a whole file one extent that must fit in memory at once. Past the cap
// the next extent starts a new one that overlaps the previous by at most one block; that block is read twice, in
// two requests (overlapping extents never share a group).
void widen_and_merge_extents(uint64_t alignment, uint64_t max_merged, std::span<const uint64_t> object_sizes,
                             std::vector<Extent>* extents) {
  size_t kept = 0;
  for (size_t index = 0; index < extents->size(); ++index) {
    Extent extent = (*extents)[index];
    const uint64_t start = align_down(extent.offset, alignment);
    uint64_t end = align_up_saturating(extent_end(extent), alignment);
    if (!object_sizes.empty()) end = std::min(end, object_sizes[extent.object]);
    if (start != extent.offset || end != extent_end(extent)) extent.destination = false;
    extent.offset = start;
    extent.length = end - start;
    if (kept > 0) {
      Extent& previous = (*extents)[kept - 1];
      const uint64_t merged_end = std::max(extent_end(previous), end);
      if (previous.object == extent.object && extent.offset < extent_end(previous) &&
          merged_end - previous.offset <= max_merged) {
        previous.length = merged_end - previous.offset;
        previous.item_count += extent.item_count;
        previous.destination = false;
        continue;
      }
    }
    (*extents)[kept++] = extent;
  }
  extents->resize(kept);
}

void map_items_to_extents(size_t item_count, const std::vector<SortedItem>& sorted, PlanLayout* out) {
  out->extent_items.resize(sorted.size());
  out->item_extent.assign(item_count, PlanLayout::kNoExtent);
  for (size_t extent_id = 0; extent_id < out->extents.size(); ++extent_id) {
    const Extent& extent = out->extents[extent_id];
    for (uint32_t position = extent.first_item; position < extent.first_item + extent.item_count; ++position) {
      out->extent_items[position] = sorted[position].index;
      out->item_extent[sorted[position].index] = static_cast<uint32_t>(extent_id);
    }
  }
}

// Extents [first, last] of one object whose gaps are all <= max_gap: the unit that requests are cut from.
struct GroupSpan {
  size_t first;
  size_t last;
};

GroupSpan next_group(const std::vector<Extent>& extents, size_t first, uint64_t max_gap) {
  size_t last = first;
  while (last + 1 < extents.size() && extents[last + 1].object == extents[first].object &&
         extents[last + 1].offset >= extent_end(extents[last]) &&  // overlapping (aligned) extents: a new group
         extents[last + 1].offset - extent_end(extents[last]) <= max_gap) {
    ++last;
  }
  return {first, last};
}

// Cuts one group greedily from the left: each request reaches part_size bytes or the group's end, then gives
// back any gap bytes it ended in (they would be read for nothing), and the next request starts at the first
// extent byte not yet covered. Taking the longest allowed request every time is minimal in request count:
// any cover must start a new request at or before where the greedy one does. Starts are extent starts or
// earlier starts + part_size, so with alignment they stay aligned.
void cut_group(const GroupSpan& group, uint32_t group_id, uint64_t part_size, PlanLayout* out) {
  const std::vector<Extent>& extents = out->extents;
  const uint64_t group_end = extent_end(extents[group.last]);
  size_t extent_id = group.first;
  uint64_t start = extents[group.first].offset;
  while (extent_id <= group.last) {
    const uint64_t limit = start + std::min(part_size, group_end - start);
    Request request{extents[extent_id].object, start, 0, static_cast<uint32_t>(out->segments.size()), 0, group_id};
    uint64_t position = start;
    while (true) {
      const Extent& extent = extents[extent_id];
      const uint64_t piece_end = std::min(extent_end(extent), limit);
      out->segments.push_back({position, piece_end - position, static_cast<uint32_t>(extent_id),
                               position - extent.offset});
      position = piece_end;
      if (piece_end < extent_end(extent)) break;  // the cut falls inside this extent
      ++extent_id;
      if (extent_id > group.last || extents[extent_id].offset >= limit) break;
      const uint64_t next_offset = extents[extent_id].offset;
      if (next_offset > position) {
        out->segments.push_back({position, next_offset - position, Segment::kGap, 0});
        out->bytes_gap += next_offset - position;
      }
      position = next_offset;
    }
    request.length = position - start;
    request.segment_count = static_cast<uint32_t>(out->segments.size() - request.first_segment);
    out->requests.push_back(request);
    out->bytes_fetched += request.length;
    if (extent_id <= group.last) start = std::max(position, extents[extent_id].offset);
  }
}

uint64_t saturating_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

void reserve_requests(const PlannerOptions& options, PlanLayout* out) {
  uint64_t extent_bytes = 0;
  for (const Extent& extent : out->extents) extent_bytes = saturating_add(extent_bytes, extent.length);
  const uint64_t extra_parts = std::min(extent_bytes / options.part_size, kMaxRequestReserve);
  const uint64_t requests = out->extents.size() + extra_parts;
  out->requests.reserve(requests);
  out->segments.reserve(requests + out->extents.size());
}

Status build_requests(const PlannerOptions& options, PlanLayout* out) {
  reserve_requests(options, out);
  size_t first = 0;
  while (first < out->extents.size()) {
    const GroupSpan group = next_group(out->extents, first, options.max_gap);
    cut_group(group, out->groups, options.part_size, out);
    ++out->groups;
    // Checked per group, not per segment: a group adds far fewer than 2^32 segments before memory runs out.
    if (out->segments.size() > kMaxSegments) {
      return invalid("plan needs more than " + std::to_string(kMaxSegments) +
                     " request segments; raise part_size (now " + std::to_string(options.part_size) + ")");
    }
    first = group.last + 1;
  }
  return Status();
}

void clear_layout(PlanLayout* out) {
  // clear() rather than a fresh PlanLayout keeps the vectors' capacity for callers that plan repeatedly.
  out->extents.clear();
  out->extent_items.clear();
  out->item_extent.clear();
  out->segments.clear();
  out->requests.clear();
  out->groups = 0;
  out->bytes_requested = 0;
  out->bytes_fetched = 0;
  out->bytes_gap = 0;
}

}  // namespace

Status plan_ranges(std::span<const PlannerItem> items, const PlannerOptions& options,
                   std::span<const uint64_t> object_sizes, PlanLayout* out) {
  if (out == nullptr) return invalid("plan_ranges needs an output layout (out is null)");
  clear_layout(out);
  Status status = validate_options(options);
  if (status.ok()) status = validate_items(items, object_sizes);
  if (!status.ok()) return status;

  const std::vector<SortedItem> sorted = sort_non_empty_items(items);
  const bool has_destinations = any_destination(items);
  if (has_destinations) {
    status = check_destination_overlaps(items, sorted);
    if (!status.ok()) return status;
  }

  out->extents.reserve(sorted.size());
  out->bytes_requested = build_exact_extents(items, has_destinations, sorted, &out->extents);
  if (options.alignment > 1) {
    widen_and_merge_extents(options.alignment, options.max_merged_extent, object_sizes, &out->extents);
  }
  map_items_to_extents(items.size(), sorted, out);

  status = build_requests(options, out);
  if (!status.ok()) clear_layout(out);
  return status;
}

}  // namespace ringfetch::engine
