// Tests for the range planner: one test per rule and per error message, then randomized property tests that
// check every layout invariant against references written independently of the planner (interval unions,
// an arithmetic greedy count, and a dynamic program over small objects for the minimal request count).
#include "engine/range_planner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace ringfetch::engine {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint32_t kNoExtent = PlanLayout::kNoExtent;

PlannerItem item(uint32_t object, uint64_t offset, uint64_t length, bool destination = false) {
  PlannerItem result;
  result.object = object;
  result.offset = offset;
  result.length = length;
  result.has_destination = destination;
  return result;
}

PlannerOptions options(uint64_t max_gap, uint64_t part_size, uint64_t alignment = 1) {
  PlannerOptions result;
  result.max_gap = max_gap;
  result.part_size = part_size;
  result.alignment = alignment;
  return result;
}

Status plan(const std::vector<PlannerItem>& items, const PlannerOptions& opts, PlanLayout* out,
            const std::vector<uint64_t>& sizes = {}) {
  return plan_ranges(items, opts, sizes, out);
}

PlanLayout plan_ok(const std::vector<PlannerItem>& items, const PlannerOptions& opts,
                   const std::vector<uint64_t>& sizes = {}) {
  PlanLayout layout;
  Status status = plan(items, opts, &layout, sizes);
  EXPECT_TRUE(status.ok()) << status.message();
  return layout;
}

std::string plan_error(const std::vector<PlannerItem>& items, const PlannerOptions& opts,
                       const std::vector<uint64_t>& sizes = {}) {
  PlanLayout layout;
  Status status = plan(items, opts, &layout, sizes);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.kind(), ErrorKind::kInvalidArgument);
  EXPECT_TRUE(layout.extents.empty() && layout.requests.empty()) << "a failed plan leaves an empty layout";
  return status.message();
}

using ExtentRange = std::tuple<uint32_t, uint64_t, uint64_t, bool>;  // object, offset, length, destination
using SegmentRange = std::tuple<uint64_t, uint64_t, uint32_t, uint64_t>;  // offset, length, extent, extent_offset
using RequestRange = std::tuple<uint32_t, uint64_t, uint64_t, uint32_t>;  // object, offset, length, group

std::vector<ExtentRange> extent_ranges(const PlanLayout& layout) {
  std::vector<ExtentRange> ranges;
  for (const Extent& e : layout.extents) ranges.emplace_back(e.object, e.offset, e.length, e.destination);
  return ranges;
}

std::vector<SegmentRange> request_segments(const PlanLayout& layout, size_t request) {
  std::vector<SegmentRange> ranges;
  const Request& r = layout.requests.at(request);
  for (uint32_t i = r.first_segment; i < r.first_segment + r.segment_count; ++i) {
    const Segment& s = layout.segments.at(i);
    ranges.emplace_back(s.offset, s.length, s.extent, s.extent_offset);
  }
  return ranges;
}

std::vector<RequestRange> request_ranges(const PlanLayout& layout) {
  std::vector<RequestRange> ranges;
  for (const Request& r : layout.requests) ranges.emplace_back(r.object, r.offset, r.length, r.group);
  return ranges;
}

std::vector<uint32_t> items_of_extent(const PlanLayout& layout, size_t extent) {
  const Extent& e = layout.extents.at(extent);
  return {layout.extent_items.begin() + e.first_item, layout.extent_items.begin() + e.first_item + e.item_count};
}

constexpr uint32_t kGap = Segment::kGap;

// ---------------------------------------------------------------------------------------------------------
// Items, sorting, extents

TEST(RangePlannerTest, EmptyPlanHasNothingToFetch) {
  PlanLayout layout = plan_ok({}, options(0, 8 * kMiB));
  EXPECT_TRUE(layout.extents.empty());
  EXPECT_TRUE(layout.requests.empty());
  EXPECT_EQ(layout.groups, 0u);
  EXPECT_EQ(layout.bytes_requested, 0u);
  EXPECT_EQ(layout.bytes_fetched, 0u);
}

TEST(RangePlannerTest, ZeroLengthItemsAreDropped) {
  PlanLayout layout = plan_ok({item(0, 0, 0), item(0, 10, 5), item(0, 12, 0, true)}, options(0, 100));
  EXPECT_EQ(layout.item_extent, (std::vector<uint32_t>{kNoExtent, 0, kNoExtent}));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 10, 5, false}}));
  EXPECT_EQ(layout.extent_items, (std::vector<uint32_t>{1}));
  EXPECT_EQ(layout.bytes_requested, 5u);
}

TEST(RangePlannerTest, ExtentsAreSortedByObjectThenOffset) {
  PlanLayout layout = plan_ok({item(1, 0, 4), item(0, 50, 4), item(0, 10, 4)}, options(0, 100));
  EXPECT_EQ(extent_ranges(layout),
            (std::vector<ExtentRange>{{0, 10, 4, false}, {0, 50, 4, false}, {1, 0, 4, false}}));
  EXPECT_EQ(layout.item_extent, (std::vector<uint32_t>{2, 1, 0}));
  EXPECT_EQ(layout.extent_items, (std::vector<uint32_t>{2, 1, 0}));
}

TEST(RangePlannerTest, EqualOffsetsAreOrderedByItemIndex) {
  PlanLayout layout = plan_ok({item(0, 12, 3), item(0, 10, 5), item(0, 10, 5), item(0, 10, 2)}, options(0, 100));
  ASSERT_EQ(layout.extents.size(), 1u);
  EXPECT_EQ(items_of_extent(layout, 0), (std::vector<uint32_t>{1, 2, 3, 0}));
  EXPECT_EQ(layout.bytes_requested, 5u);
}

TEST(RangePlannerTest, OverlappingItemsShareAnExtentAndTouchingItemsDoNot) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(0, 5, 15), item(0, 20, 5)}, options(0, 100));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 20, false}, {0, 20, 5, false}}));
  EXPECT_EQ(items_of_extent(layout, 0), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(items_of_extent(layout, 1), (std::vector<uint32_t>{2}));
  EXPECT_EQ(layout.bytes_requested, 25u);
  // Touching extents are still one group and one request, with no gap between their segments.
  EXPECT_EQ(layout.groups, 1u);
  ASSERT_EQ(layout.requests.size(), 1u);
  EXPECT_EQ(request_segments(layout, 0), (std::vector<SegmentRange>{{0, 20, 0, 0}, {20, 5, 1, 0}}));
}

TEST(RangePlannerTest, ItemInsideALongerItemJoinsItsExtent) {
  PlanLayout layout = plan_ok({item(0, 0, 100), item(0, 10, 5), item(0, 99, 1)}, options(0, 1000));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 100, false}}));
  EXPECT_EQ(layout.bytes_requested, 100u);
}

TEST(RangePlannerTest, BytesRequestedCountsTheUnionOfItems) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(0, 5, 10), item(0, 5, 10), item(1, 0, 10), item(0, 30, 1)},
                              options(0, 100));
  EXPECT_EQ(layout.bytes_requested, 15u + 10u + 1u);
}

TEST(RangePlannerTest, DestinationItemGetsItsOwnExtent) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(0, 10, 10, true), item(0, 20, 10)}, options(0, 100));
  EXPECT_EQ(extent_ranges(layout),
            (std::vector<ExtentRange>{{0, 0, 10, false}, {0, 10, 10, true}, {0, 20, 10, false}}));
  EXPECT_EQ(layout.item_extent, (std::vector<uint32_t>{0, 1, 2}));
}

TEST(RangePlannerTest, SameRangeInDifferentObjectsIsNotAnOverlap) {
  PlanLayout layout = plan_ok({item(0, 0, 10, true), item(1, 0, 10, true)}, options(0, 100));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 10, true}, {1, 0, 10, true}}));
}

TEST(RangePlannerTest, ZeroLengthDestinationInsideAnotherItemIsDroppedNotAnError) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(0, 5, 0, true)}, options(0, 100));
  EXPECT_EQ(layout.item_extent, (std::vector<uint32_t>{0, kNoExtent}));
}

// ---------------------------------------------------------------------------------------------------------
// Errors

TEST(RangePlannerTest, AlignmentMustBeAPowerOfTwo) {
  EXPECT_NE(plan_error({}, options(0, 8, 0)).find("alignment 0 is not a power of two"), std::string::npos);
  EXPECT_NE(plan_error({}, options(0, 12, 3)).find("alignment 3 is not a power of two"), std::string::npos);
  EXPECT_NE(plan_error({}, options(0, 4097, 4097)).find("alignment 4097 is not a power of two"),
            std::string::npos);
}

TEST(RangePlannerTest, PartSizeMustBePositive) {
  EXPECT_NE(plan_error({item(0, 0, 1)}, options(0, 0)).find("part_size must be greater than 0"),
            std::string::npos);
}

TEST(RangePlannerTest, PartSizeMustBeAMultipleOfAlignment) {
  EXPECT_NE(plan_error({}, options(0, 1000, 4096)).find("part_size 1000 is not a multiple of alignment 4096"),
            std::string::npos);
  EXPECT_NE(plan_error({}, options(0, 6144, 4096)).find("part_size 6144 is not a multiple of alignment 4096"),
            std::string::npos);
}

TEST(RangePlannerTest, OffsetPlusLengthMustNotOverflow) {
  std::string message = plan_error({item(0, 0, 1), item(3, UINT64_MAX - 5, 10)}, options(0, 100));
  EXPECT_NE(message.find("item 1 [offset 18446744073709551610, length 10] of object 3"), std::string::npos)
      << message;
  EXPECT_NE(message.find("offset + length overflows 64 bits"), std::string::npos) << message;
}

TEST(RangePlannerTest, RangeEndingAtTheTopOfTheAddressSpaceIsFine) {
  PlanLayout layout = plan_ok({item(0, 0, UINT64_MAX)}, options(0, uint64_t{1} << 62));
  ASSERT_EQ(layout.requests.size(), 4u);
  EXPECT_EQ(layout.requests[3].offset, uint64_t{3} << 62);
  EXPECT_EQ(layout.requests[3].length, (uint64_t{1} << 62) - 1);
  EXPECT_EQ(layout.bytes_fetched, UINT64_MAX);
}

TEST(RangePlannerTest, ItemMustEndWithinItsObject) {
  std::vector<PlannerItem> items(7, item(0, 0, 1));
  items.push_back(item(2, 100, 50));
  std::string message = plan_error(items, options(0, 100), {1000, 1000, 120});
  EXPECT_NE(message.find("item 7 [offset 100, length 50] of object 2 ends at 150, past the object's end at 120"),
            std::string::npos)
      << message;
}

TEST(RangePlannerTest, ItemMayEndExactlyAtTheObjectEnd) {
  PlanLayout layout = plan_ok({item(0, 100, 20), item(0, 120, 0)}, options(0, 100), {120});
  EXPECT_EQ(layout.bytes_requested, 20u);
}

TEST(RangePlannerTest, ZeroLengthItemPastTheObjectEndIsStillAnError) {
  std::string message = plan_error({item(0, 121, 0)}, options(0, 100), {120});
  EXPECT_NE(message.find("item 0 [offset 121, length 0] of object 0 ends at 121, past the object's end at 120"),
            std::string::npos)
      << message;
}

TEST(RangePlannerTest, ObjectIdNeedsASizeWhenSizesAreGiven) {
  std::string message = plan_error({item(0, 0, 1), item(1, 0, 1)}, options(0, 100), {10});
  EXPECT_NE(message.find("item 1 [offset 0, length 1] of object 1 names an object without a size"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("1 object sizes were given"), std::string::npos) << message;
}

TEST(RangePlannerTest, NoSizesMeansAnyObjectAndRangeIsAccepted) {
  PlanLayout layout = plan_ok({item(1000, uint64_t{1} << 60, 10)}, options(0, 100));
  EXPECT_EQ(layout.extents.size(), 1u);
}

TEST(RangePlannerTest, TheFirstInvalidItemIsReported) {
  std::string message = plan_error({item(0, 0, 1), item(0, 0, 1), item(0, 50, 100), item(0, 0, 1),
                                    item(0, UINT64_MAX, 2)},
                                   options(0, 100), {60});
  EXPECT_NE(message.find("item 2 [offset 50, length 100]"), std::string::npos) << message;
}

TEST(RangePlannerTest, OptionsAreCheckedBeforeItems) {
  EXPECT_NE(plan_error({item(0, UINT64_MAX, 2)}, options(0, 0)).find("part_size"), std::string::npos);
}

TEST(RangePlannerTest, DestinationOverlappingALaterItemIsAnError) {
  std::vector<PlannerItem> items(3, item(1, 0, 1));
  items.push_back(item(0, 0, 20, true));  // item 3
  items.push_back(item(1, 5, 1));
  items.push_back(item(0, 10, 30));  // item 5
  std::string message = plan_error(items, options(0, 100));
  EXPECT_NE(message.find("item 3 [offset 0, length 20] with a destination overlaps item 5 [offset 10, length 30] "
                         "(object 0 bytes 10-19); overlapping items cannot have destinations"),
            std::string::npos)
      << message;
}

TEST(RangePlannerTest, DestinationOverlappingAnEarlierItemIsAnError) {
  std::string message = plan_error({item(0, 0, 15), item(0, 10, 10, true)}, options(0, 100));
  EXPECT_NE(message.find("item 1 [offset 10, length 10] with a destination overlaps item 0 [offset 0, length 15] "
                         "(object 0 bytes 10-14)"),
            std::string::npos)
      << message;
}

TEST(RangePlannerTest, DestinationInsideAFarReachingItemIsAnError) {
  // The item just before the destination ends before it; the long first item is the one it overlaps.
  std::string message = plan_error({item(0, 0, 100), item(0, 10, 5), item(0, 50, 10, true)}, options(0, 100));
  EXPECT_NE(message.find("item 2 [offset 50, length 10] with a destination overlaps item 0"), std::string::npos)
      << message;
}

TEST(RangePlannerTest, ItemOverlappingAnEarlierDestinationIsAnError) {
  std::string message =
      plan_error({item(0, 0, 100, true), item(0, 100, 5), item(0, 50, 10)}, options(0, 100));
  EXPECT_NE(message.find("item 0 [offset 0, length 100] with a destination overlaps item 2 [offset 50, length 10] "
                         "(object 0 bytes 50-59)"),
            std::string::npos)
      << message;
}

TEST(RangePlannerTest, DuplicateDestinationsAreAnError) {
  std::string message = plan_error({item(0, 7, 3, true), item(0, 7, 3, true)}, options(0, 100));
  EXPECT_NE(message.find("overlapping items cannot have destinations"), std::string::npos) << message;
  EXPECT_NE(message.find("bytes 7-9"), std::string::npos) << message;
}

TEST(RangePlannerTest, NullOutputIsAnError) {
  Status status = plan_ranges({}, options(0, 100), {}, nullptr);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("out is null"), std::string::npos);
}

TEST(RangePlannerTest, ReusedLayoutIsClearedBeforePlanning) {
  PlanLayout layout;
  ASSERT_TRUE(plan({item(0, 0, 10), item(0, 50, 10)}, options(0, 100), &layout).ok());
  ASSERT_TRUE(plan({item(0, 0, 10)}, options(0, 100), &layout).ok());
  EXPECT_EQ(layout.extents.size(), 1u);
  EXPECT_EQ(layout.requests.size(), 1u);
  EXPECT_EQ(layout.groups, 1u);
  EXPECT_EQ(layout.bytes_fetched, 10u);
}

// ---------------------------------------------------------------------------------------------------------
// Alignment

TEST(RangePlannerTest, AlignmentWidensExtents) {
  PlanLayout layout = plan_ok({item(0, 100, 100)}, options(0, 1024, 64));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 64, 192, false}}));
  EXPECT_EQ(layout.bytes_requested, 100u);  // before alignment
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 64, 192, 0}}));
  EXPECT_EQ(layout.bytes_fetched, 192u);
}

TEST(RangePlannerTest, WidenedEndIsClampedAtTheObjectSize) {
  PlanLayout layout = plan_ok({item(0, 100, 100)}, options(0, 128, 64), {230});
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 64, 166, false}}));
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 64, 128, 0}, {0, 192, 38, 0}}));
}

TEST(RangePlannerTest, ExtentsWhoseWidenedRangesOverlapAreMerged) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(0, 50, 20), item(0, 200, 10)}, options(0, 1024, 64));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 128, false}, {0, 192, 64, false}}));
  EXPECT_EQ(items_of_extent(layout, 0), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(layout.item_extent, (std::vector<uint32_t>{0, 0, 1}));
}

// Widened extents that only touch share no block, so they keep their own memory: a back-to-back plan must not
// become one extent larger than the arena.
TEST(RangePlannerTest, TouchingAlignedItemsStayApartUnderAlignment) {
  PlanLayout layout = plan_ok({item(0, 0, 64), item(0, 64, 64), item(0, 130, 10), item(0, 200, 10)},
                              options(0, 1024, 64));
  EXPECT_EQ(extent_ranges(layout),
            (std::vector<ExtentRange>{{0, 0, 64, false}, {0, 64, 64, false}, {0, 128, 64, false},
                                      {0, 192, 64, false}}));
}

// Back-to-back items at unaligned offsets share a block with each neighbour. Merging stops at max_merged_extent:
// the next extent then overlaps the previous by one block, starts a new group (never one request with it), and
// every item byte is still read into its own extent.
TEST(RangePlannerTest, AlignedMergingStopsAtTheCapAndTheNextExtentOverlapsByOneBlock) {
  PlannerOptions o = options(1 << 20, 1024, 64);
  o.max_merged_extent = 256;
  std::vector<PlannerItem> items;
  for (uint64_t k = 0; k < 8; ++k) items.push_back(item(0, 10 + 100 * k, 100));  // bytes 10..809
  PlanLayout layout = plan_ok(items, o);
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 256, false}, {0, 192, 256, false},
                                                             {0, 384, 256, false}, {0, 576, 256, false}}));
  ASSERT_EQ(layout.requests.size(), 4u);
  for (size_t r = 1; r < layout.requests.size(); ++r) EXPECT_NE(layout.requests[r].group, layout.requests[r - 1].group);
  for (size_t i = 0; i < items.size(); ++i) {
    const Extent& extent = layout.extents[layout.item_extent[i]];
    EXPECT_LE(extent.offset, items[i].offset);
    EXPECT_GE(extent.offset + extent.length, items[i].offset + items[i].length);
  }
  EXPECT_EQ(layout.bytes_fetched, 4u * 256u);  // three overlapping blocks are read twice
}

TEST(RangePlannerTest, AlignedDestinationStaysADestination) {
  PlanLayout layout = plan_ok({item(0, 64, 128, true), item(0, 320, 10)}, options(0, 1024, 64));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 64, 128, true}, {0, 320, 64, false}}));
}

TEST(RangePlannerTest, DestinationMergedWithANeighbourByAlignmentIsNoLongerADestination) {
  PlanLayout layout = plan_ok({item(0, 0, 70, true), item(0, 100, 10)}, options(0, 1024, 64));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 128, false}}));
  EXPECT_EQ(items_of_extent(layout, 0), (std::vector<uint32_t>{0, 1}));
}

TEST(RangePlannerTest, AlignedDestinationTouchingANeighbourStaysADestination) {
  PlanLayout layout = plan_ok({item(0, 0, 64, true), item(0, 74, 10)}, options(0, 1024, 64));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 64, true}, {0, 64, 64, false}}));
}

TEST(RangePlannerTest, UnalignedDestinationIsWidenedAndNoLongerADestination) {
  PlanLayout layout = plan_ok({item(0, 10, 20, true)}, options(0, 1024, 64));
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 0, 64, false}}));
}

TEST(RangePlannerTest, DestinationEndingAtAnUnalignedObjectEndStaysADestination) {
  PlanLayout layout = plan_ok({item(0, 64, 36, true)}, options(0, 1024, 64), {100});
  EXPECT_EQ(extent_ranges(layout), (std::vector<ExtentRange>{{0, 64, 36, true}}));
}

TEST(RangePlannerTest, RequestsStayAligned) {
  PlanLayout layout = plan_ok({item(0, 30, 1000), item(0, 1300, 50)}, options(200, 256, 64));
  for (const Request& r : layout.requests) EXPECT_EQ(r.offset % 64, 0u) << r.offset;
  for (const Request& r : layout.requests) EXPECT_EQ((r.offset + r.length) % 64, 0u) << r.offset;
  // Extents [0, 1088) and [1280, 1408), one group (gap 192). The fifth request could reach 1280 but the
  // extent ends at 1088 and the next one starts at 1280, so it stops at 1088 without reading the gap.
  EXPECT_EQ(request_ranges(layout),
            (std::vector<RequestRange>{{0, 0, 256, 0}, {0, 256, 256, 0}, {0, 512, 256, 0}, {0, 768, 256, 0},
                                       {0, 1024, 64, 0}, {0, 1280, 128, 0}}));
}

TEST(RangePlannerTest, AlignmentNearTheTopOfTheAddressSpaceSaturates) {
  PlanLayout layout = plan_ok({item(0, UINT64_MAX - 10, 10)}, options(0, 4096, 4096));
  ASSERT_EQ(layout.extents.size(), 1u);
  EXPECT_EQ(layout.extents[0].offset, UINT64_MAX - 4095);
  EXPECT_EQ(layout.extents[0].length, 4095u);
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, UINT64_MAX - 4095, 4095, 0}}));
}

// ---------------------------------------------------------------------------------------------------------
// Groups and requests

TEST(RangePlannerTest, GapOfAtMostMaxGapIsReadToSaveARequest) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(0, 15, 10)}, options(5, 100));
  EXPECT_EQ(layout.groups, 1u);
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 0, 25, 0}}));
  EXPECT_EQ(request_segments(layout, 0),
            (std::vector<SegmentRange>{{0, 10, 0, 0}, {10, 5, kGap, 0}, {15, 10, 1, 0}}));
  EXPECT_EQ(layout.bytes_fetched, 25u);
  EXPECT_EQ(layout.bytes_gap, 5u);
  EXPECT_EQ(layout.bytes_requested, 20u);
}

TEST(RangePlannerTest, GapAboveMaxGapStartsANewGroup) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(0, 15, 10)}, options(4, 100));
  EXPECT_EQ(layout.groups, 2u);
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 0, 10, 0}, {0, 15, 10, 1}}));
  EXPECT_EQ(layout.bytes_gap, 0u);
}

TEST(RangePlannerTest, DifferentObjectsAreNeverCoalesced) {
  PlanLayout layout = plan_ok({item(0, 0, 10), item(1, 10, 10)}, options(UINT64_MAX, UINT64_MAX));
  EXPECT_EQ(layout.groups, 2u);
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 0, 10, 0}, {1, 10, 10, 1}}));
}

TEST(RangePlannerTest, RequestsAreCutInsideItemsAtPartSize) {
  PlanLayout layout = plan_ok({item(0, 0, 25)}, options(0, 10));
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 0, 10, 0}, {0, 10, 10, 0}, {0, 20, 5, 0}}));
  EXPECT_EQ(request_segments(layout, 2), (std::vector<SegmentRange>{{20, 5, 0, 20}}));
}

TEST(RangePlannerTest, CutFallingInAGapSkipsTheGapAndReadsNoneOfIt) {
  PlanLayout layout = plan_ok({item(0, 0, 8), item(0, 12, 8)}, options(4, 10));
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 0, 8, 0}, {0, 12, 8, 0}}));
  EXPECT_EQ(layout.bytes_gap, 0u);
  EXPECT_EQ(layout.bytes_fetched, 16u);
}

TEST(RangePlannerTest, RequestSpansSeveralExtentsAndGaps) {
  PlanLayout layout = plan_ok({item(0, 0, 4), item(0, 6, 4), item(0, 12, 6)}, options(2, 15));
  EXPECT_EQ(request_ranges(layout), (std::vector<RequestRange>{{0, 0, 15, 0}, {0, 15, 3, 0}}));
  EXPECT_EQ(request_segments(layout, 0), (std::vector<SegmentRange>{{0, 4, 0, 0},
                                                                    {4, 2, kGap, 0},
                                                                    {6, 4, 1, 0},
                                                                    {10, 2, kGap, 0},
                                                                    {12, 3, 2, 0}}));
  EXPECT_EQ(request_segments(layout, 1), (std::vector<SegmentRange>{{15, 3, 2, 3}}));
  EXPECT_EQ(layout.bytes_gap, 4u);
  EXPECT_EQ(layout.bytes_fetched - layout.bytes_requested, layout.bytes_gap);
}

TEST(RangePlannerTest, OneMillionItemsArePlanned) {
  std::mt19937_64 rng(7);
  std::vector<PlannerItem> items;
  items.reserve(1'000'000);
  for (uint32_t i = 0; i < 1'000'000; ++i) {
    items.push_back(item(static_cast<uint32_t>(rng() % 16), rng() % (uint64_t{1} << 36), 1 + rng() % 65536));
  }
  PlanLayout layout = plan_ok(items, options(64 * 1024, 8 * kMiB));
  EXPECT_EQ(layout.item_extent.size(), items.size());
  EXPECT_EQ(layout.extent_items.size(), items.size());
  EXPECT_GT(layout.requests.size(), 0u);
}

// ---------------------------------------------------------------------------------------------------------
// Randomized properties

struct RandomPlan {
  std::vector<PlannerItem> items;
  PlannerOptions options;
  std::vector<uint64_t> sizes;
};

struct Interval {
  uint64_t begin;
  uint64_t end;
  bool operator==(const Interval&) const = default;
};

uint64_t log_uniform(std::mt19937_64& rng, uint64_t low, uint64_t high) {
  const int low_bits = 64 - __builtin_clzll(low);
  const int high_bits = 64 - __builtin_clzll(high);
  const int bits = low_bits + static_cast<int>(rng() % static_cast<uint64_t>(high_bits - low_bits + 1));
  const uint64_t floor = uint64_t{1} << (bits - 1);
  const uint64_t value = floor + rng() % floor;
  return std::clamp(value, low, high);
}

bool chance(std::mt19937_64& rng, int percent) { return static_cast<int>(rng() % 100) < percent; }

// Scales for one flavour of random plan; the same generator makes both the huge (interval-checked) plans and
// the small ones that are also checked byte by byte.
struct PlanScale {
  uint64_t max_length;
  uint64_t max_gap_between;
  uint32_t max_items_per_object;
  std::vector<uint64_t> alignments;
  uint64_t min_part_size;
  uint64_t max_part_size;
};

uint64_t random_length(std::mt19937_64& rng, const PlanScale& scale) { return log_uniform(rng, 1, scale.max_length); }

PlannerItem random_item_after(std::mt19937_64& rng, const PlanScale& scale, uint32_t object,
                              const std::vector<PlannerItem>& of_object, uint64_t* cursor) {
  const int mode = static_cast<int>(rng() % 100);
  if (!of_object.empty() && mode < 25) {  // overlaps (or touches) an earlier item
    const PlannerItem& earlier = of_object[rng() % of_object.size()];
    return item(object, earlier.offset + rng() % (earlier.length + 1), random_length(rng, scale));
  }
  if (!of_object.empty() && mode < 35) return of_object[rng() % of_object.size()];  // duplicate
  if (mode < 42) return item(object, rng() % (*cursor + 1), 0);                      // zero-length
  const uint64_t gap = chance(rng, 30) ? 0 : log_uniform(rng, 1, scale.max_gap_between);
  PlannerItem next = item(object, *cursor + gap, random_length(rng, scale));
  *cursor = next.offset + next.length;
  return next;
}

// Marks some items that share no byte with any other item as destinations (overlapping ones cannot be).
void add_destinations(std::mt19937_64& rng, std::vector<PlannerItem>* items) {
  std::vector<size_t> order(items->size());
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](size_t i) { return std::tuple((*items)[i].object, (*items)[i].offset); };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  std::vector<size_t> non_empty;
  for (size_t i : order) {
    if ((*items)[i].length > 0) non_empty.push_back(i);
  }
  uint64_t reach = 0;
  uint32_t reach_object = UINT32_MAX;
  for (size_t k = 0; k < non_empty.size(); ++k) {
    const PlannerItem& current = (*items)[non_empty[k]];
    if (current.object != reach_object) reach = 0;
    const bool overlaps_earlier = current.object == reach_object && current.offset < reach;
    const bool overlaps_later = k + 1 < non_empty.size() && (*items)[non_empty[k + 1]].object == current.object &&
                                (*items)[non_empty[k + 1]].offset < current.offset + current.length;
    reach_object = current.object;
    reach = std::max(reach, current.offset + current.length);
    if (!overlaps_earlier && !overlaps_later && chance(rng, 35)) (*items)[non_empty[k]].has_destination = true;
  }
  for (PlannerItem& i : *items) {
    if (i.length == 0 && chance(rng, 10)) i.has_destination = true;
  }
}

std::vector<uint64_t> random_sizes(std::mt19937_64& rng, const std::vector<PlannerItem>& items, uint32_t objects,
                                   uint64_t alignment) {
  if (chance(rng, 50)) return {};
  std::vector<uint64_t> sizes(objects, 0);
  for (const PlannerItem& i : items) sizes[i.object] = std::max(sizes[i.object], i.offset + i.length);
  for (uint64_t& size : sizes) {
    if (chance(rng, 60)) size += rng() % (3 * alignment + 1);
  }
  return sizes;
}

PlannerOptions random_options(std::mt19937_64& rng, const PlanScale& scale) {
  PlannerOptions opts;
  opts.alignment = scale.alignments[rng() % scale.alignments.size()];
  const uint64_t part = log_uniform(rng, std::max(scale.min_part_size, opts.alignment), scale.max_part_size);
  opts.part_size = (part + opts.alignment - 1) / opts.alignment * opts.alignment;
  const int gap_mode = static_cast<int>(rng() % 10);
  if (gap_mode == 0) {
    opts.max_gap = 0;
  } else if (gap_mode == 1) {
    opts.max_gap = UINT64_MAX;
  } else {
    opts.max_gap = log_uniform(rng, 1, scale.max_gap_between);
  }
  return opts;
}

RandomPlan random_plan(std::mt19937_64& rng, const PlanScale& scale) {
  RandomPlan plan;
  const uint32_t objects = 1 + static_cast<uint32_t>(rng() % 4);
  for (uint32_t object = 0; object < objects; ++object) {
    std::vector<PlannerItem> of_object;
    uint64_t cursor = rng() % (scale.max_gap_between + 1);
    const uint32_t count = static_cast<uint32_t>(rng() % (scale.max_items_per_object + 1));
    for (uint32_t k = 0; k < count; ++k) of_object.push_back(random_item_after(rng, scale, object, of_object, &cursor));
    plan.items.insert(plan.items.end(), of_object.begin(), of_object.end());
  }
  if (chance(rng, 80)) std::shuffle(plan.items.begin(), plan.items.end(), rng);
  add_destinations(rng, &plan.items);
  plan.options = random_options(rng, scale);
  // The cap on merged aligned extents has its own tests; these invariants (disjoint extents) hold without it.
  plan.options.max_merged_extent = UINT64_MAX;
  plan.sizes = random_sizes(rng, plan.items, objects, plan.options.alignment);
  return plan;
}

// ---- references, computed from the items alone ----

uint32_t object_count(const RandomPlan& plan) {
  uint32_t count = 0;
  for (const PlannerItem& i : plan.items) count = std::max(count, i.object + 1);
  return count;
}

// Union of the items of each object, widened to `alignment` (clamped at the size when known); touching
// intervals are merged since only the covered bytes matter here.
std::vector<std::vector<Interval>> reference_union(const RandomPlan& plan, uint64_t alignment) {
  std::vector<std::vector<Interval>> per_object(object_count(plan));
  for (const PlannerItem& i : plan.items) {
    if (i.length == 0) continue;
    uint64_t begin = i.offset / alignment * alignment;
    uint64_t end = (i.offset + i.length + alignment - 1) / alignment * alignment;
    if (!plan.sizes.empty()) end = std::min(end, plan.sizes[i.object]);
    per_object[i.object].push_back({begin, end});
  }
  for (std::vector<Interval>& intervals : per_object) {
    std::sort(intervals.begin(), intervals.end(), [](Interval a, Interval b) { return a.begin < b.begin; });
    std::vector<Interval> merged;
    for (Interval interval : intervals) {
      if (!merged.empty() && interval.begin <= merged.back().end) {
        merged.back().end = std::max(merged.back().end, interval.end);
      } else {
        merged.push_back(interval);
      }
    }
    intervals = std::move(merged);
  }
  return per_object;
}

uint64_t total_length(const std::vector<std::vector<Interval>>& per_object) {
  uint64_t total = 0;
  for (const auto& intervals : per_object) {
    for (Interval interval : intervals) total += interval.end - interval.begin;
  }
  return total;
}

std::vector<std::vector<Interval>> split_into_groups(const std::vector<Interval>& intervals, uint64_t max_gap) {
  std::vector<std::vector<Interval>> groups;
  for (size_t k = 0; k < intervals.size(); ++k) {
    if (k == 0 || intervals[k].begin - intervals[k - 1].end > max_gap) groups.emplace_back();
    groups.back().push_back(intervals[k]);
  }
  return groups;
}

// Fewest requests for one group, counted arithmetically: whole parts inside one interval are counted in one
// step; a part crossing an interval's end jumps past every interval it finishes.
uint64_t arithmetic_request_count(const std::vector<Interval>& group, uint64_t part_size) {
  uint64_t count = 0;
  size_t k = 0;
  uint64_t start = group[0].begin;
  while (k < group.size()) {
    const uint64_t whole_parts = (group[k].end - start) / part_size;
    if (whole_parts > 0) {
      count += whole_parts;
      start += whole_parts * part_size;
      if (start == group[k].end && ++k < group.size()) start = group[k].begin;
      continue;
    }
    const uint64_t reach = start + part_size;  // crosses group[k].end
    ++count;
    while (k < group.size() && group[k].end <= reach) ++k;
    if (k < group.size()) start = std::max(reach, group[k].begin);
  }
  return count;
}

struct ReferenceCounts {
  uint64_t groups = 0;
  uint64_t requests = 0;
};

ReferenceCounts reference_counts(const RandomPlan& plan) {
  ReferenceCounts counts;
  for (const auto& intervals : reference_union(plan, plan.options.alignment)) {
    for (const auto& group : split_into_groups(intervals, plan.options.max_gap)) {
      ++counts.groups;
      counts.requests += arithmetic_request_count(group, plan.options.part_size);
    }
  }
  return counts;
}

// Fewest requests for one small object by dynamic programming over alignment units: best[u] is the fewest
// requests covering every extent unit >= u when one starts at unit u. A request may end after any extent unit
// within part_size, as long as no gap it contains fully is longer than max_gap.
uint64_t dp_request_count(const std::vector<bool>& extent_unit, uint64_t part_units, uint64_t max_gap_units) {
  const size_t units = extent_unit.size();
  std::vector<uint64_t> next_extent(units + 1, units);
  for (size_t u = units; u-- > 0;) next_extent[u] = extent_unit[u] ? u : next_extent[u + 1];
  std::vector<uint64_t> best(units + 1, 0);
  auto cost_from = [&](size_t u) { return next_extent[u] == units ? 0 : best[next_extent[u]]; };
  for (size_t u = units; u-- > 0;) {
    if (!extent_unit[u]) continue;
    uint64_t fewest = UINT64_MAX;
    uint64_t gap_run = 0;
    for (size_t end = u + 1; end <= units && end - u <= part_units; ++end) {
      if (!extent_unit[end - 1]) {
        ++gap_run;
        continue;
      }
      if (gap_run > max_gap_units) break;
      gap_run = 0;
      fewest = std::min(fewest, 1 + cost_from(end));
    }
    best[u] = fewest;
  }
  return cost_from(0);
}

uint64_t dp_reference_requests(const RandomPlan& plan) {
  const uint64_t unit = plan.options.alignment;
  uint64_t total = 0;
  for (const auto& intervals : reference_union(plan, unit)) {
    if (intervals.empty()) continue;
    std::vector<bool> extent_unit((intervals.back().end + unit - 1) / unit, false);
    for (Interval interval : intervals) {
      for (uint64_t u = interval.begin / unit; u * unit < interval.end; ++u) extent_unit[u] = true;
    }
    const uint64_t max_gap_units = plan.options.max_gap / unit;
    total += dp_request_count(extent_unit, plan.options.part_size / unit, max_gap_units);
  }
  return total;
}

// ---- invariant checks; each returns the first violation it finds ----

using testing::AssertionFailure;
using testing::AssertionResult;
using testing::AssertionSuccess;

uint64_t end_of(const Extent& e) { return e.offset + e.length; }

AssertionResult check_items_map_to_extents(const RandomPlan& plan, const PlanLayout& layout) {
  if (layout.item_extent.size() != plan.items.size()) return AssertionFailure() << "item_extent size";
  size_t non_empty = 0;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const PlannerItem& it = plan.items[i];
    const uint32_t e = layout.item_extent[i];
    if (it.length == 0) {
      if (e != kNoExtent) return AssertionFailure() << "zero-length item " << i << " has an extent";
      continue;
    }
    ++non_empty;
    if (e >= layout.extents.size()) return AssertionFailure() << "item " << i << " has no extent";
    const Extent& extent = layout.extents[e];
    if (extent.object != it.object || extent.offset > it.offset || end_of(extent) < it.offset + it.length) {
      return AssertionFailure() << "extent " << e << " does not contain item " << i;
    }
  }
  if (layout.extent_items.size() != non_empty) return AssertionFailure() << "extent_items size";
  uint32_t expected_first = 0;
  for (size_t e = 0; e < layout.extents.size(); ++e) {
    const Extent& extent = layout.extents[e];
    if (extent.first_item != expected_first || extent.item_count == 0) {
      return AssertionFailure() << "extent " << e << " item slice";
    }
    expected_first += extent.item_count;
    for (uint32_t k = extent.first_item; k < extent.first_item + extent.item_count; ++k) {
      const uint32_t i = layout.extent_items[k];
      if (layout.item_extent[i] != e) return AssertionFailure() << "item " << i << " listed in wrong extent";
      if (k > extent.first_item) {
        const PlannerItem& previous = plan.items[layout.extent_items[k - 1]];
        if (std::tuple(previous.offset, layout.extent_items[k - 1]) >= std::tuple(plan.items[i].offset, i)) {
          return AssertionFailure() << "extent " << e << " items not in (offset, index) order";
        }
      }
    }
  }
  return AssertionSuccess();
}

// With alignment 1 an extent is exactly a chain of overlapping items (or one destination item).
AssertionResult check_exact_extent(const RandomPlan& plan, const PlanLayout& layout, size_t e) {
  const Extent& extent = layout.extents[e];
  uint64_t reach = extent.offset;
  for (uint32_t k = extent.first_item; k < extent.first_item + extent.item_count; ++k) {
    const PlannerItem& it = plan.items[layout.extent_items[k]];
    if (k == extent.first_item ? it.offset != extent.offset : it.offset >= reach) {
      return AssertionFailure() << "extent " << e << " joins items that do not overlap";
    }
    if (it.has_destination && extent.item_count != 1) return AssertionFailure() << "shared destination";
    reach = std::max(reach, it.offset + it.length);
  }
  if (reach != end_of(extent)) return AssertionFailure() << "extent " << e << " is longer than its items";
  return AssertionSuccess();
}

AssertionResult check_extents(const RandomPlan& plan, const PlanLayout& layout) {
  const uint64_t alignment = plan.options.alignment;
  for (size_t e = 0; e < layout.extents.size(); ++e) {
    const Extent& extent = layout.extents[e];
    if (extent.length == 0) return AssertionFailure() << "empty extent " << e;
    if (e > 0 && layout.extents[e - 1].object == extent.object) {
      const uint64_t previous_end = end_of(layout.extents[e - 1]);
      if (previous_end > extent.offset) {
        return AssertionFailure() << "extents " << e - 1 << " and " << e << " overlap";
      }
    } else if (e > 0 && layout.extents[e - 1].object > extent.object) {
      return AssertionFailure() << "extents not sorted by object";
    }
    const bool clamped = !plan.sizes.empty() && end_of(extent) == plan.sizes[extent.object];
    if (extent.offset % alignment != 0 || (end_of(extent) % alignment != 0 && !clamped)) {
      return AssertionFailure() << "extent " << e << " not aligned";
    }
    const PlannerItem& first = plan.items[layout.extent_items[extent.first_item]];
    const bool exactly_one_destination = extent.item_count == 1 && first.has_destination &&
                                         first.offset == extent.offset && first.length == extent.length;
    if (extent.destination != exactly_one_destination) return AssertionFailure() << "extent " << e << " flag";
    if (alignment == 1) {
      AssertionResult exact = check_exact_extent(plan, layout, e);
      if (!exact) return exact;
    }
  }
  std::vector<std::vector<Interval>> extent_union(object_count(plan));
  for (const Extent& extent : layout.extents) {
    auto& intervals = extent_union[extent.object];
    if (!intervals.empty() && intervals.back().end == extent.offset) {
      intervals.back().end = end_of(extent);
    } else {
      intervals.push_back({extent.offset, end_of(extent)});
    }
  }
  if (extent_union != reference_union(plan, alignment)) return AssertionFailure() << "extents != widened union";
  return AssertionSuccess();
}

AssertionResult check_segments_of(const RandomPlan& plan, const PlanLayout& layout, size_t r) {
  const Request& request = layout.requests[r];
  uint64_t position = request.offset;
  for (uint32_t k = request.first_segment; k < request.first_segment + request.segment_count; ++k) {
    const Segment& s = layout.segments[k];
    if (s.offset != position || s.length == 0) return AssertionFailure() << "request " << r << " not contiguous";
    position += s.length;
    if (s.extent == kGap) {
      const bool interior = k > request.first_segment && k + 1 < request.first_segment + request.segment_count;
      if (!interior || s.length > plan.options.max_gap || s.extent_offset != 0) {
        return AssertionFailure() << "bad gap segment in request " << r;
      }
      const uint32_t before = layout.segments[k - 1].extent;
      const uint32_t after = layout.segments[k + 1].extent;
      if (before == kGap || after != before + 1) return AssertionFailure() << "gap segment hides an extent";
      continue;
    }
    if (s.extent >= layout.extents.size()) return AssertionFailure() << "segment extent out of range";
    const Extent& extent = layout.extents[s.extent];
    if (extent.object != request.object || s.offset < extent.offset || s.offset + s.length > end_of(extent) ||
        s.extent_offset != s.offset - extent.offset) {
      return AssertionFailure() << "segment " << k << " outside its extent";
    }
  }
  if (position != request.offset + request.length) return AssertionFailure() << "segments != request length";
  return AssertionSuccess();
}

AssertionResult check_requests(const RandomPlan& plan, const PlanLayout& layout) {
  const PlannerOptions& opts = plan.options;
  uint64_t fetched = 0;
  uint32_t expected_first_segment = 0;
  for (size_t r = 0; r < layout.requests.size(); ++r) {
    const Request& request = layout.requests[r];
    if (request.length == 0 || request.length > opts.part_size) return AssertionFailure() << "request length";
    if (request.first_segment != expected_first_segment) return AssertionFailure() << "segment slices";
    expected_first_segment += request.segment_count;
    if (request.offset % opts.alignment != 0) return AssertionFailure() << "request start not aligned";
    if (r > 0) {
      const Request& previous = layout.requests[r - 1];
      if (std::tuple(previous.object, previous.offset + previous.length) > std::tuple(request.object, request.offset)) {
        return AssertionFailure() << "requests " << r - 1 << " and " << r << " overlap or are out of order";
      }
      if (request.group != previous.group && request.group != previous.group + 1) return AssertionFailure() << "group";
      if (request.group == previous.group && request.object != previous.object) return AssertionFailure() << "group";
    } else if (request.group != 0) {
      return AssertionFailure() << "first group";
    }
    AssertionResult segments = check_segments_of(plan, layout, r);
    if (!segments) return segments;
    fetched += request.length;
  }
  if (expected_first_segment != layout.segments.size()) return AssertionFailure() << "stray segments";
  if (fetched != layout.bytes_fetched) return AssertionFailure() << "bytes_fetched";
  const uint32_t groups = layout.requests.empty() ? 0 : layout.requests.back().group + 1;
  if (groups != layout.groups) return AssertionFailure() << "groups";
  return AssertionSuccess();
}

// Requests are sorted and disjoint, so walking segments in order must meet each extent's bytes in order,
// each exactly once: that is "every extent byte (hence every item byte) fetched exactly once, into its extent".
AssertionResult check_extent_coverage(const PlanLayout& layout) {
  std::vector<uint64_t> covered_until(layout.extents.size());
  for (size_t e = 0; e < layout.extents.size(); ++e) covered_until[e] = layout.extents[e].offset;
  uint64_t gap_bytes = 0;
  for (const Segment& s : layout.segments) {
    if (s.extent == kGap) {
      gap_bytes += s.length;
      continue;
    }
    if (s.offset != covered_until[s.extent]) return AssertionFailure() << "extent " << s.extent << " bytes missed or repeated";
    covered_until[s.extent] += s.length;
  }
  for (size_t e = 0; e < layout.extents.size(); ++e) {
    if (covered_until[e] != end_of(layout.extents[e])) return AssertionFailure() << "extent " << e << " not fully read";
  }
  if (gap_bytes != layout.bytes_gap) return AssertionFailure() << "bytes_gap";
  return AssertionSuccess();
}

AssertionResult check_counts(const RandomPlan& plan, const PlanLayout& layout) {
  if (layout.bytes_requested != total_length(reference_union(plan, 1))) return AssertionFailure() << "bytes_requested";
  if (plan.options.alignment == 1 && layout.bytes_fetched - layout.bytes_requested != layout.bytes_gap) {
    return AssertionFailure() << "bytes_fetched - bytes_requested != bytes_gap";
  }
  const ReferenceCounts reference = reference_counts(plan);
  if (layout.groups != reference.groups) {
    return AssertionFailure() << "groups " << layout.groups << ", reference " << reference.groups;
  }
  if (layout.requests.size() != reference.requests) {
    return AssertionFailure() << "requests " << layout.requests.size() << ", minimum " << reference.requests;
  }
  return AssertionSuccess();
}

bool same_layout(const PlanLayout& a, const PlanLayout& b) {
  auto extent_key = [](const Extent& e) {
    return std::tuple(e.object, e.offset, e.length, e.destination, e.first_item, e.item_count);
  };
  auto segment_key = [](const Segment& s) { return std::tuple(s.offset, s.length, s.extent, s.extent_offset); };
  auto request_key = [](const Request& r) {
    return std::tuple(r.object, r.offset, r.length, r.first_segment, r.segment_count, r.group);
  };
  auto same = [](const auto& x, const auto& y, auto key) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), [&](const auto& l, const auto& r) { return key(l) == key(r); });
  };
  return same(a.extents, b.extents, extent_key) && same(a.segments, b.segments, segment_key) &&
         same(a.requests, b.requests, request_key) && a.extent_items == b.extent_items &&
         a.item_extent == b.item_extent && a.groups == b.groups && a.bytes_requested == b.bytes_requested &&
         a.bytes_fetched == b.bytes_fetched && a.bytes_gap == b.bytes_gap;
}

// The same items in another order must give the same extents, requests and segments, and each item the same
// extent (only the item numbering changes).
AssertionResult check_order_independence(std::mt19937_64& rng, const RandomPlan& plan, const PlanLayout& layout) {
  std::vector<uint32_t> permutation(plan.items.size());
  std::iota(permutation.begin(), permutation.end(), 0);
  std::shuffle(permutation.begin(), permutation.end(), rng);
  std::vector<PlannerItem> shuffled;
  for (uint32_t i : permutation) shuffled.push_back(plan.items[i]);
  PlanLayout other;
  if (!plan_ranges(shuffled, plan.options, plan.sizes, &other).ok()) return AssertionFailure() << "shuffled failed";
  if (extent_ranges(other) != extent_ranges(layout) || request_ranges(other) != request_ranges(layout)) {
    return AssertionFailure() << "shuffling the items changed the plan";
  }
  for (size_t k = 0; k < permutation.size(); ++k) {
    if (other.item_extent[k] != layout.item_extent[permutation[k]]) return AssertionFailure() << "item moved";
  }
  for (size_t r = 0; r < layout.requests.size(); ++r) {
    if (request_segments(other, r) != request_segments(layout, r)) return AssertionFailure() << "segments moved";
  }
  return AssertionSuccess();
}

AssertionResult check_plan(std::mt19937_64& rng, const RandomPlan& plan) {
  PlanLayout layout;
  Status status = plan_ranges(plan.items, plan.options, plan.sizes, &layout);
  if (!status.ok()) return AssertionFailure() << status.message();
  // In order, stopping at the first failure: later checks index through what earlier ones validated.
  if (AssertionResult result = check_items_map_to_extents(plan, layout); !result) return result;
  if (AssertionResult result = check_extents(plan, layout); !result) return result;
  if (AssertionResult result = check_requests(plan, layout); !result) return result;
  if (AssertionResult result = check_extent_coverage(layout); !result) return result;
  if (AssertionResult result = check_counts(plan, layout); !result) return result;
  PlanLayout again;
  if (!plan_ranges(plan.items, plan.options, plan.sizes, &again).ok() || !same_layout(layout, again)) {
    return AssertionFailure() << "same input, different layout";
  }
  return check_order_independence(rng, plan, layout);
}

std::string describe(const RandomPlan& plan) {
  std::string text = "max_gap " + std::to_string(plan.options.max_gap) + ", part_size " +
                     std::to_string(plan.options.part_size) + ", alignment " + std::to_string(plan.options.alignment) +
                     ", " + std::to_string(plan.sizes.size()) + " sizes, items:";
  for (const PlannerItem& i : plan.items) {
    text += " (" + std::to_string(i.object) + "," + std::to_string(i.offset) + "," + std::to_string(i.length) +
            (i.has_destination ? ",dest)" : ")");
  }
  return text;
}

const PlanScale kLargeScale{64 * kMiB, 64 * kMiB, 40, {1, 4096}, kMiB, 256 * kMiB};
const PlanScale kSmallScale{40, 40, 20, {1, 1, 4, 16}, 1, 64};

TEST(RangePlannerPropertyTest, LargeRandomPlansKeepEveryInvariant) {
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull);
    const RandomPlan plan = random_plan(rng, kLargeScale);
    ASSERT_TRUE(check_plan(rng, plan)) << "seed " << seed << ": " << describe(plan);
  }
}

TEST(RangePlannerPropertyTest, SmallRandomPlansAreMinimalAndCoverEveryByteOnce) {
  for (uint64_t seed = 1; seed <= 3000; ++seed) {
    std::mt19937_64 rng(seed * 0xD1B54A32D192ED03ull);
    const RandomPlan plan = random_plan(rng, kSmallScale);
    ASSERT_TRUE(check_plan(rng, plan)) << "seed " << seed << ": " << describe(plan);
    PlanLayout layout;
    ASSERT_TRUE(plan_ranges(plan.items, plan.options, plan.sizes, &layout).ok());
    ASSERT_EQ(layout.requests.size(), dp_reference_requests(plan)) << "seed " << seed << ": " << describe(plan);
  }
}

// Byte by byte: every item byte is read exactly once, by a segment of the item's own extent, and no byte is
// read by two requests.
TEST(RangePlannerPropertyTest, SmallRandomPlansReadEveryItemByteOnceIntoItsExtent) {
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    std::mt19937_64 rng(seed * 0xA0761D6478BD642Full);
    const RandomPlan plan = random_plan(rng, kSmallScale);
    PlanLayout layout;
    ASSERT_TRUE(plan_ranges(plan.items, plan.options, plan.sizes, &layout).ok());
    const uint32_t objects = object_count(plan);
    std::vector<std::vector<int>> reads(objects, std::vector<int>(2048, 0));
    std::vector<std::vector<uint32_t>> reader(objects, std::vector<uint32_t>(2048, kNoExtent));
    for (const Request& r : layout.requests) {
      for (uint32_t k = r.first_segment; k < r.first_segment + r.segment_count; ++k) {
        const Segment& s = layout.segments[k];
        for (uint64_t b = s.offset; b < s.offset + s.length; ++b) {
          ++reads[r.object].at(b);
          reader[r.object][b] = s.extent;
        }
      }
    }
    for (size_t i = 0; i < plan.items.size(); ++i) {
      const PlannerItem& it = plan.items[i];
      for (uint64_t b = it.offset; b < it.offset + it.length; ++b) {
        ASSERT_EQ(reads[it.object][b], 1) << "seed " << seed << " item " << i << " byte " << b;
        ASSERT_EQ(reader[it.object][b], layout.item_extent[i]) << "seed " << seed << " item " << i << " byte " << b;
      }
    }
    for (const auto& per_object : reads) {
      for (int count : per_object) ASSERT_LE(count, 1) << "seed " << seed << ": a byte is read twice";
    }
  }
}

// Destination overlap detection against the pairwise definition, on plans with random destination flags.
TEST(RangePlannerPropertyTest, DestinationOverlapIsReportedExactlyWhenPresent) {
  int errors = 0;
  for (uint64_t seed = 1; seed <= 3000; ++seed) {
    std::mt19937_64 rng(seed * 0xE7037ED1A0B428DBull);
    RandomPlan plan = random_plan(rng, kSmallScale);
    for (PlannerItem& i : plan.items) i.has_destination = chance(rng, 15);
    bool expect_error = false;
    for (size_t a = 0; a < plan.items.size() && !expect_error; ++a) {
      for (size_t b = a + 1; b < plan.items.size() && !expect_error; ++b) {
        const PlannerItem& x = plan.items[a];
        const PlannerItem& y = plan.items[b];
        const bool overlap = x.object == y.object && x.length > 0 && y.length > 0 && x.offset < y.offset + y.length &&
                             y.offset < x.offset + x.length;
        expect_error = overlap && (x.has_destination || y.has_destination);
      }
    }
    PlanLayout layout;
    Status status = plan_ranges(plan.items, plan.options, plan.sizes, &layout);
    ASSERT_EQ(status.ok(), !expect_error) << "seed " << seed << ": " << status.message() << " " << describe(plan);
    if (expect_error) {
      ++errors;
      ASSERT_NE(status.message().find("overlapping items cannot have destinations"), std::string::npos);
    }
  }
  EXPECT_GT(errors, 300);  // the generator must actually exercise the error
}

}  // namespace
}  // namespace ringfetch::engine
