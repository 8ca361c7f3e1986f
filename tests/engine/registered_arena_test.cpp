// RegisteredArena: chunks mapped on demand, the base (engine-held) and limit (everything) bounds, neighbour merging,
// retirement of chunks beyond the base, FIFO waiters, and what it asks of its registrar.
#include "engine/registered_arena.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace ringfetch::engine {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::shared_ptr<RegisteredArena> make_arena(uint64_t base, uint64_t limit) {
  RegisteredArena::Options options;
  options.base_bytes = base;
  options.limit_bytes = limit;
  std::shared_ptr<RegisteredArena> arena;
  EXPECT_TRUE(RegisteredArena::create(options, &arena).ok());
  return arena;
}

// Records what the arena asks of the rings; the engine's real registrar is exercised by the engine and fetch tests.
class RecordingRegistrar final : public ChunkRegistrar {
 public:
  int32_t reserve_slot() override { return next_slot_++; }
  void publish(int32_t slot, std::span<std::byte> memory) override {
    std::lock_guard lock(mutex_);
    published.emplace_back(slot, memory.size());
  }
  void retire(int32_t slot, std::function<void()> done) override {
    {
      std::lock_guard lock(mutex_);
      retired.push_back(slot);
    }
    done();
  }
  std::vector<std::pair<int32_t, size_t>> published;
  std::vector<int32_t> retired;

 private:
  std::mutex mutex_;
  int32_t next_slot_ = 5;
};

TEST(RegisteredArenaTest, CreatingMapsNothing) {
  auto arena = make_arena(1ull << 30, 4ull << 30);
  const RegisteredArena::Usage usage = arena->usage();
  EXPECT_EQ(usage.mapped, 0u);
  EXPECT_EQ(usage.base, 1ull << 30);
  EXPECT_EQ(usage.limit, 4ull << 30);
}

TEST(RegisteredArenaTest, BadOptionsAreErrors) {
  std::shared_ptr<RegisteredArena> arena;
  RegisteredArena::Options zero;
  zero.base_bytes = 0;
  EXPECT_EQ(RegisteredArena::create(zero, &arena).kind(), ErrorKind::kInvalidArgument);
  RegisteredArena::Options below;
  below.base_bytes = 8 * kMiB;
  below.limit_bytes = 4 * kMiB;
  Status status = RegisteredArena::create(below, &arena);
  EXPECT_EQ(status.kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(status.message().find("memory_limit"), std::string::npos) << status.message();
}

TEST(RegisteredArenaTest, FirstAllocationMapsTheSmallestChunkAndSpansAreAlignedAndWritable) {
  auto arena = make_arena(64 * kMiB, 256 * kMiB);
  ArenaSpan a, b;
  ASSERT_TRUE(arena->try_allocate(1000, 4096, &a));
  ASSERT_TRUE(arena->try_allocate(3000, 64, &b));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 4096, 0u);
  EXPECT_EQ(a.chunk, b.chunk);  // both fit the first chunk
  std::memset(a.data, 0xab, a.length);
  std::memset(b.data, 0xcd, b.length);
  EXPECT_TRUE(a.data + a.length <= b.data || b.data + b.length <= a.data);
  EXPECT_EQ(arena->usage().mapped, 2 * kMiB);  // the first chunk is the smallest: a small load maps little
  EXPECT_EQ(a.buf_index(), -1);                 // no registrar: plain reads
  arena->release(a, false);
  arena->release(b, false);
  EXPECT_EQ(arena->usage().in_use, 0u);
}

TEST(RegisteredArenaTest, EngineHeldMemoryIsBoundedByTheBaseAndHeldMemoryByTheLimit) {
  auto arena = make_arena(4 * kMiB, 16 * kMiB);
  ArenaSpan first, second;
  ASSERT_TRUE(arena->try_allocate(3 * kMiB, 64, &first));
  EXPECT_FALSE(arena->try_allocate(2 * kMiB, 64, &second));  // engine would hold 5 MiB > base
  arena->mark_held(first.length);                             // the caller took it
  ASSERT_TRUE(arena->try_allocate(2 * kMiB, 64, &second));
  arena->mark_held(second.length);
  // Held memory grows up to the limit; then nothing more can be mapped.
  std::vector<ArenaSpan> held;
  ArenaSpan span;
  while (arena->try_allocate(1 * kMiB, 64, &span)) {
    held.push_back(span);
    arena->mark_held(span.length);
    ASSERT_LE(arena->usage().mapped, 16 * kMiB);
  }
  EXPECT_GE(arena->usage().in_use, 14 * kMiB);
  EXPECT_EQ(arena->usage().held, arena->usage().in_use);
  EXPECT_LE(arena->usage().peak, 16 * kMiB);
  for (const ArenaSpan& s : held) arena->release(s, true);
  arena->release(first, true);
  arena->release(second, true);
  EXPECT_EQ(arena->usage().held, 0u);
  EXPECT_EQ(arena->usage().in_use, 0u);
}

TEST(RegisteredArenaTest, OneAllocationLargerThanTheBaseMayGoAheadAlone) {
  auto arena = make_arena(4 * kMiB, 64 * kMiB);
  ArenaSpan big, small;
  ASSERT_TRUE(arena->try_allocate(20 * kMiB, 4096, &big));
  EXPECT_GE(big.chunk->length, 20 * kMiB);
  EXPECT_FALSE(arena->try_allocate(64, 64, &small));  // the engine already holds more than its base
  EXPECT_FALSE(arena->fits_limit(64 * kMiB + 1));
  EXPECT_TRUE(arena->fits_limit(64 * kMiB));
  arena->release(big, false);
  ASSERT_TRUE(arena->try_allocate(64, 64, &small));
  arena->release(small, false);
}

TEST(RegisteredArenaTest, ReleasedNeighboursMergeAndAreReused) {
  auto arena = make_arena(32 * kMiB, 32 * kMiB);
  ArenaSpan first;  // fills the first (2 MiB) chunk, so that the next one (2 MiB, doubling) holds the other four
  ASSERT_TRUE(arena->try_allocate(2 * kMiB, 64, &first));
  std::vector<ArenaSpan> spans(4);
  for (auto& s : spans) ASSERT_TRUE(arena->try_allocate(512 << 10, 64, &s));
  arena->release(spans[1], false);
  arena->release(spans[2], false);
  ArenaSpan merged;
  ASSERT_TRUE(arena->try_allocate(1 * kMiB, 64, &merged));
  EXPECT_EQ(merged.data, spans[1].data);  // the two freed neighbours became one block
  arena->release(merged, false);
  arena->release(spans[0], false);
  arena->release(spans[3], false);
  arena->release(first, false);
  EXPECT_EQ(arena->usage().in_use, 0u);
}

TEST(RegisteredArenaTest, ChunksDoubleFromTheSmallestUpToAQuarterOfTheBase) {
  auto arena = make_arena(64 * kMiB, 256 * kMiB);
  std::vector<ArenaSpan> spans;
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 7; ++i) {
    ArenaSpan s;
    ASSERT_TRUE(arena->try_allocate(2 * kMiB, 64, &s));
    arena->mark_held(s.length);
    if (sizes.empty() || s.chunk != spans.back().chunk) sizes.push_back(s.chunk->length);
    spans.push_back(s);
  }
  // 2, 2, 4, 8 MiB: each new chunk as large as what is mapped already (up to 16 MiB, a quarter of the base).
  EXPECT_EQ(sizes, (std::vector<uint64_t>{2 * kMiB, 2 * kMiB, 4 * kMiB, 8 * kMiB}));
  for (const ArenaSpan& s : spans) arena->release(s, true);
}

TEST(RegisteredArenaTest, ChunksBeyondTheBaseAreRetiredWhenEmptyKeepingOneSpare) {
  auto arena = make_arena(8 * kMiB, 64 * kMiB);  // granule 2 MiB
  RecordingRegistrar registrar;
  arena->set_registrar(&registrar);
  std::vector<ArenaSpan> held;
  for (int i = 0; i < 12; ++i) {
    ArenaSpan s;
    ASSERT_TRUE(arena->try_allocate(2 * kMiB, 64, &s)) << i;
    EXPECT_GE(s.buf_index(), 5);
    arena->mark_held(s.length);
    held.push_back(s);
  }
  EXPECT_EQ(arena->usage().mapped, 24 * kMiB);
  EXPECT_EQ(registrar.published.size(), 12u);
  for (const ArenaSpan& s : held) arena->release(s, true);
  const RegisteredArena::Usage usage = arena->usage();
  EXPECT_EQ(usage.peak, 24 * kMiB);
  // Back to the base (the first empty chunk waits as a spare until another falls empty); each retired chunk left
  // the rings first.
  EXPECT_EQ(usage.mapped, 8 * kMiB);
  EXPECT_EQ(registrar.retired.size(), 8u);
  arena->set_registrar(nullptr);
}

TEST(RegisteredArenaTest, WaitersRunInOrderAfterARelease) {
  auto arena = make_arena(2 * kMiB, 2 * kMiB);
  ArenaSpan all, other;
  ASSERT_TRUE(arena->try_allocate(2 * kMiB, 64, &all));
  std::vector<int> order;
  for (int w = 0; w < 3; ++w) {
    EXPECT_FALSE(arena->allocate_or_park(1 * kMiB, 64, &other, [&order, w] { order.push_back(w); }));
  }
  EXPECT_TRUE(order.empty());
  arena->release(all, false);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

TEST(RegisteredArenaTest, ConcurrentAllocationsNeverOverlap) {
  auto arena = make_arena(64 * kMiB, 64 * kMiB);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<ArenaSpan> mine;
      for (int i = 0; i < 2000; ++i) {
        if (!mine.empty() && (rng() % 2 == 0 || mine.size() > 40)) {
          const size_t k = rng() % mine.size();
          for (uint64_t off = 0; off < mine[k].length; off += 4096)
            if (mine[k].data[off] != std::byte(t)) ++failures;
          arena->release(mine[k], false);
          mine.erase(mine.begin() + static_cast<long>(k));
        } else {
          ArenaSpan s;
          if (arena->try_allocate(4096 * (1 + rng() % 64), 4096, &s)) {
            std::memset(s.data, t, s.length);
            mine.push_back(s);
          }
        }
      }
      for (const ArenaSpan& s : mine) arena->release(s, false);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(arena->usage().in_use, 0u);
}

}  // namespace
}  // namespace ringfetch::engine
