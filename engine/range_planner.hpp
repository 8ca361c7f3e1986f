// RangePlanner: turns the caller's items into extents (the memory units), groups (coalesced neighbours) and
// requests (what goes on the wire or to the file), under max_gap / part_size / alignment rules. Pure and
// deterministic: same input, same output; no I/O, no engine state.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ringfetch/error.hpp"

namespace ringfetch::engine {

struct PlannerOptions {
  uint64_t max_gap = 0;          // gaps of at most this many bytes between extents are read (into scratch) to save a request
  uint64_t part_size = 8 << 20;  // no request is longer than this (must be > 0 and a multiple of alignment)
  uint64_t alignment = 1;        // power of two; extents and requests are widened to multiples of it (O_DIRECT)
  // With alignment > 1, extents whose widened ranges share a block are merged up to this size; past it the next
  // extent overlaps the previous one by at most one block (read twice) so back-to-back items never become one
  // extent the size of the file.
  uint64_t max_merged_extent = 16ull << 20;
};

struct PlannerItem {
  uint32_t object = 0;        // dense object id chosen by the caller
  uint64_t offset = 0;
  uint64_t length = 0;        // zero-length items are dropped (item_extent = kNoExtent)
  bool has_destination = false;  // caller memory: the item gets its own extent and must not overlap any other item
};

// A contiguous byte range of one object that owns one piece of memory. Items that overlap share one extent;
// items that merely touch get separate extents. With alignment > 1 the range is widened to aligned bounds
// (clamped at the object size when known), and extents whose widened ranges overlap are merged.
struct Extent {
  uint32_t object = 0;
  uint64_t offset = 0;   // object offset of the extent's first byte (aligned)
  uint64_t length = 0;   // bytes of memory the extent needs
  bool destination = false;  // true when the extent is exactly one destination item (memory = caller's span)
  uint32_t first_item = 0;   // index into PlanLayout::extent_items
  uint32_t item_count = 0;
};

// A piece of a request: either bytes of one extent, or gap bytes (extent == kGap) that go to scratch.
struct Segment {
  static constexpr uint32_t kGap = UINT32_MAX;
  uint64_t offset = 0;   // object offset
  uint64_t length = 0;
  uint32_t extent = kGap;
  uint64_t extent_offset = 0;  // offset of this piece inside the extent's memory (0 for gaps)
};

// One contiguous read of [offset, offset+length) of one object, split into consecutive segments.
struct Request {
  uint32_t object = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t first_segment = 0;
  uint32_t segment_count = 0;
  uint32_t group = 0;
};

struct PlanLayout {
  static constexpr uint32_t kNoExtent = UINT32_MAX;
  std::vector<Extent> extents;          // sorted by (object, offset)
  std::vector<uint32_t> extent_items;   // item indices, grouped per extent (Extent::first_item/item_count)
  std::vector<uint32_t> item_extent;    // per input item: its extent, or kNoExtent for zero-length items
  std::vector<Segment> segments;
  std::vector<Request> requests;        // sorted by (object, offset)
  uint32_t groups = 0;
  uint64_t bytes_requested = 0;  // distinct item bytes (union of the items' ranges, before alignment)
  uint64_t bytes_fetched = 0;    // sum of request lengths
  uint64_t bytes_gap = 0;        // sum of gap segment lengths
};

// Plans `items`. object_sizes (indexed by object id, may be empty = unknown) are used to validate that items end
// within the object and to clamp widened extents. Errors (kInvalidArgument) name the item index and range:
// offset+length overflow, item past the end of the object, a destination item overlapping another item,
// part_size zero or not a multiple of alignment, alignment not a power of two.
Status plan_ranges(std::span<const PlannerItem> items, const PlannerOptions& options,
                   std::span<const uint64_t> object_sizes, PlanLayout* out);

}  // namespace ringfetch::engine
