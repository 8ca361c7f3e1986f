// Tests for RegisteredArena: sizing and chunking, alignment, spans that never straddle a chunk, merging of free
// blocks on release, and backpressure (a parked waiter runs once after the next release, outside the lock).
#include "engine/registered_arena.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace ringfetch::engine {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;

std::shared_ptr<RegisteredArena> make_arena(uint64_t bytes, bool prefault = true) {
  RegisteredArena::Options options;
  options.bytes = bytes;
  options.huge_pages = false;
  options.prefault = prefault;
  std::shared_ptr<RegisteredArena> arena;
  Status status = RegisteredArena::create(options, &arena);
  EXPECT_TRUE(status.ok()) << status.message();
  return arena;
}

uint64_t offset_in_chunk(const RegisteredArena& arena, const ArenaSpan& span) {
  return static_cast<uint64_t>(span.data - arena.chunk(span.chunk).data());
}

// The span lies wholly inside the chunk it names.
void expect_inside_chunk(const RegisteredArena& arena, const ArenaSpan& span) {
  ASSERT_LT(span.chunk, arena.chunk_count());
  const std::span<std::byte> chunk = arena.chunk(span.chunk);
  EXPECT_GE(span.data, chunk.data());
  EXPECT_LE(span.data + span.length, chunk.data() + chunk.size());
}

TEST(RegisteredArena, ZeroBytesIsInvalid) {
  RegisteredArena::Options options;
  options.bytes = 0;
  std::shared_ptr<RegisteredArena> arena;
  Status status = RegisteredArena::create(options, &arena);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(arena, nullptr);
}

TEST(RegisteredArena, CapacityIsRoundedToPagesInOneChunk) {
  auto arena = make_arena(1000);
  EXPECT_EQ(arena->capacity(), RegisteredArena::kPageBytes);
  EXPECT_EQ(arena->chunk_count(), 1u);
  EXPECT_EQ(arena->largest_chunk(), RegisteredArena::kPageBytes);
  EXPECT_EQ(arena->bytes_in_use(), 0u);
}

TEST(RegisteredArena, HugePagesAndPrefaultGiveUsableMemory) {
  RegisteredArena::Options options;
  options.bytes = 3 * kMiB;
  std::shared_ptr<RegisteredArena> arena;
  ASSERT_TRUE(RegisteredArena::create(options, &arena).ok());
  ArenaSpan span;
  ASSERT_TRUE(arena->try_allocate(3 * kMiB, 1, &span));
  std::fill(span.data, span.data + span.length, std::byte{0x5a});
  EXPECT_EQ(span.data[3 * kMiB - 1], std::byte{0x5a});
  arena->release(span);
}

TEST(RegisteredArena, AlignmentAndLengthRounding) {
  auto arena = make_arena(1 * kMiB);
  struct Case {
    uint64_t length;
    uint64_t alignment;
  };
  const Case cases[] = {{1, 1}, {100, 1}, {64, 64}, {1, 4096}, {5000, 4096}, {3, 128}, {0, 1}, {4096, 65536}};
  std::vector<ArenaSpan> spans;
  uint64_t expected_in_use = 0;
  for (const Case& c : cases) {
    ArenaSpan span;
    ASSERT_TRUE(arena->try_allocate(c.length, c.alignment, &span)) << c.length << "/" << c.alignment;
    const uint64_t alignment = std::max(c.alignment, RegisteredArena::kMinAlignment);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(span.data) % alignment, 0u) << c.length << "/" << c.alignment;
    EXPECT_GE(span.length, std::max<uint64_t>(c.length, 1));
    EXPECT_EQ(span.length % RegisteredArena::kMinAlignment, 0u);
    expect_inside_chunk(*arena, span);
    for (const ArenaSpan& other : spans) {
      EXPECT_TRUE(span.data + span.length <= other.data || other.data + other.length <= span.data)
          << "spans overlap";
    }
    spans.push_back(span);
    expected_in_use += span.length;
    EXPECT_EQ(arena->bytes_in_use(), expected_in_use);
  }
  for (const ArenaSpan& span : spans) arena->release(span);
  EXPECT_EQ(arena->bytes_in_use(), 0u);
}

// Alignment is of the address: the region is only page-aligned, so aligning offsets within it is not enough.
TEST(RegisteredArena, LargeAlignmentsAreOfTheAddress) {
  auto arena = make_arena(8 * kMiB);
  for (uint64_t alignment : {64 * kKiB, 1 * kMiB, 2 * kMiB}) {
    ArenaSpan span;
    ASSERT_TRUE(arena->try_allocate(100, alignment, &span)) << alignment;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(span.data) % alignment, 0u) << alignment;
    expect_inside_chunk(*arena, span);
  }
}

// An arena larger than one chunk (1 GiB): spans never cross from one chunk into the next. The region is mapped
// but never faulted in (prefault off, nothing written), so the test costs address space only.
TEST(RegisteredArena, SpansNeverStraddleAChunk) {
  auto arena = make_arena(RegisteredArena::kMaxChunkBytes + 64 * kMiB, /*prefault=*/false);
  ASSERT_EQ(arena->chunk_count(), 2u);
  EXPECT_EQ(arena->chunk(0).size(), RegisteredArena::kMaxChunkBytes);
  EXPECT_EQ(arena->chunk(1).size(), 64 * kMiB);
  EXPECT_EQ(arena->chunk(0).data() + arena->chunk(0).size(), arena->chunk(1).data());  // one region
  EXPECT_EQ(arena->largest_chunk(), RegisteredArena::kMaxChunkBytes);

  ArenaSpan too_big;
  EXPECT_FALSE(arena->try_allocate(RegisteredArena::kMaxChunkBytes + 1, 1, &too_big));

  // Leave 4 KiB at the end of chunk 0: an 8 KiB span must go to chunk 1, not across the boundary.
  ArenaSpan most;
  ASSERT_TRUE(arena->try_allocate(RegisteredArena::kMaxChunkBytes - 4 * kKiB, 1, &most));
  EXPECT_EQ(most.chunk, 0u);
  ArenaSpan across;
  ASSERT_TRUE(arena->try_allocate(8 * kKiB, 1, &across));
  EXPECT_EQ(across.chunk, 1u);
  expect_inside_chunk(*arena, across);
  ArenaSpan tail;
  ASSERT_TRUE(arena->try_allocate(4 * kKiB, 1, &tail));
  EXPECT_EQ(tail.chunk, 0u);
  EXPECT_EQ(offset_in_chunk(*arena, tail), RegisteredArena::kMaxChunkBytes - 4 * kKiB);
  arena->release(most);
  arena->release(across);
  arena->release(tail);

  // Random sizes until full: every span inside its chunk, none overlapping.
  std::mt19937_64 rng(7);
  std::vector<ArenaSpan> spans;
  for (;;) {
    ArenaSpan span;
    const uint64_t length = 1 + rng() % (96 * kMiB);
    if (!arena->try_allocate(length, uint64_t{1} << (rng() % 13), &span)) break;
    expect_inside_chunk(*arena, span);
    spans.push_back(span);
  }
  EXPECT_GT(arena->bytes_in_use(), arena->capacity() - 2 * 96 * kMiB);
  std::sort(spans.begin(), spans.end(), [](const ArenaSpan& a, const ArenaSpan& b) { return a.data < b.data; });
  for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].data + spans[i - 1].length, spans[i].data);
  for (const ArenaSpan& span : spans) arena->release(span);
  EXPECT_EQ(arena->bytes_in_use(), 0u);
  ArenaSpan whole;
  EXPECT_TRUE(arena->try_allocate(RegisteredArena::kMaxChunkBytes, 1, &whole));
  EXPECT_TRUE(arena->try_allocate(64 * kMiB, 1, &whole));
}

TEST(RegisteredArena, ReleasedNeighboursMerge) {
  const uint64_t capacity = 1 * kMiB;
  auto arena = make_arena(capacity);
  const int orders[][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {0, 2, 1, 3}, {1, 3, 0, 2}, {2, 0, 3, 1}};
  for (const auto& order : orders) {
    ArenaSpan quarters[4];
    for (auto& q : quarters) ASSERT_TRUE(arena->try_allocate(capacity / 4, 1, &q));
    ArenaSpan none;
    EXPECT_FALSE(arena->try_allocate(1, 1, &none));
    for (int i : order) arena->release(quarters[i]);
    // Only a fully merged free list holds the whole capacity as one block.
    ArenaSpan whole;
    ASSERT_TRUE(arena->try_allocate(capacity, 1, &whole)) << order[0] << order[1] << order[2] << order[3];
    arena->release(whole);
  }
  EXPECT_EQ(arena->bytes_in_use(), 0u);
}

TEST(RegisteredArena, RandomChurnLeavesNoFragments) {
  const uint64_t capacity = 4 * kMiB;
  auto arena = make_arena(capacity);
  std::mt19937_64 rng(11);
  std::vector<ArenaSpan> live;
  for (int step = 0; step < 5000; ++step) {
    if (!live.empty() && (rng() % 3 == 0 || live.size() > 200)) {
      const size_t k = rng() % live.size();
      arena->release(live[k]);
      live[k] = live.back();
      live.pop_back();
    } else {
      ArenaSpan span;
      if (arena->try_allocate(1 + rng() % (64 * kKiB), uint64_t{1} << (rng() % 13), &span)) live.push_back(span);
    }
  }
  for (const ArenaSpan& span : live) arena->release(span);
  EXPECT_EQ(arena->bytes_in_use(), 0u);
  ArenaSpan whole;
  EXPECT_TRUE(arena->try_allocate(capacity, 1, &whole));
}

TEST(RegisteredArena, ExhaustionParksAWaiterThatRunsOnceOnRelease) {
  auto arena = make_arena(64 * kKiB);
  ArenaSpan a, b;
  ASSERT_TRUE(arena->try_allocate(32 * kKiB, 1, &a));
  ASSERT_TRUE(arena->try_allocate(32 * kKiB, 1, &b));

  int runs = 0;
  ArenaSpan c;
  EXPECT_FALSE(arena->allocate_or_park(16 * kKiB, 1, &c, [&] { ++runs; }));
  EXPECT_EQ(runs, 0);
  arena->release(a);
  EXPECT_EQ(runs, 1);
  // Now there is room; a waiter is not parked when allocation succeeds.
  int other_runs = 0;
  EXPECT_TRUE(arena->allocate_or_park(16 * kKiB, 1, &c, [&] { ++other_runs; }));
  arena->release(c);
  arena->release(b);
  EXPECT_EQ(runs, 1);  // ran once, not on every release
  EXPECT_EQ(other_runs, 0);
  EXPECT_EQ(arena->bytes_in_use(), 0u);
}

// Waiters run outside the arena's lock: a waiter may allocate (what the scheduler does when it is woken).
TEST(RegisteredArena, WaiterMayAllocateFromInsideRelease) {
  auto arena = make_arena(64 * kKiB);
  ArenaSpan full;
  ASSERT_TRUE(arena->try_allocate(64 * kKiB, 1, &full));
  ArenaSpan got;
  bool allocated_in_waiter = false;
  ArenaSpan unused;
  ASSERT_FALSE(arena->allocate_or_park(48 * kKiB, 1, &unused, [&] {
    allocated_in_waiter = arena->try_allocate(48 * kKiB, 1, &got);
  }));
  arena->release(full);
  ASSERT_TRUE(allocated_in_waiter);
  EXPECT_EQ(arena->bytes_in_use(), 48 * kKiB);
  arena->release(got);
}

TEST(RegisteredArena, SeveralWaitersAllRun) {
  auto arena = make_arena(4 * kKiB);
  ArenaSpan full;
  ASSERT_TRUE(arena->try_allocate(4 * kKiB, 1, &full));
  int runs = 0;
  ArenaSpan unused;
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(arena->allocate_or_park(1, 1, &unused, [&] { ++runs; }));
  arena->release(full);
  EXPECT_EQ(runs, 5);
}

TEST(RegisteredArena, LeaseReleasesOnDestruction) {
  auto arena = make_arena(64 * kKiB);
  ArenaSpan span;
  ASSERT_TRUE(arena->try_allocate(64 * kKiB, 1, &span));
  auto lease = std::make_shared<ArenaLease>(arena, span);
  EXPECT_EQ(lease->span().data, span.data);
  std::weak_ptr<RegisteredArena> weak = arena;
  arena.reset();  // the lease keeps the arena alive
  ASSERT_FALSE(weak.expired());
  EXPECT_EQ(weak.lock()->bytes_in_use(), 64 * kKiB);
  lease.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(RegisteredArena, ConcurrentAllocateAndRelease) {
  auto arena = make_arena(1 * kMiB);
  std::atomic<uint64_t> parked_runs{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<ArenaSpan> mine;
      for (int step = 0; step < 2000; ++step) {
        if (!mine.empty() && rng() % 2 == 0) {
          arena->release(mine.back());
          mine.pop_back();
          continue;
        }
        ArenaSpan span;
        if (arena->allocate_or_park(1 + rng() % (32 * kKiB), 64, &span, [&] { parked_runs.fetch_add(1); })) {
          std::fill(span.data, span.data + span.length, static_cast<std::byte>(t));
          mine.push_back(span);
        }
      }
      for (const ArenaSpan& span : mine) {
        for (uint64_t i = 0; i < span.length; i += 997) EXPECT_EQ(span.data[i], static_cast<std::byte>(t));
        arena->release(span);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(arena->bytes_in_use(), 0u);
  ArenaSpan whole;
  EXPECT_TRUE(arena->try_allocate(1 * kMiB, 1, &whole));
}

}  // namespace
}  // namespace ringfetch::engine
