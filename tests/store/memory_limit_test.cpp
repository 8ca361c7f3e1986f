// Memory that follows what the caller holds: views the caller keeps grow the arena up to the memory limit; at the
// limit, with every byte held by the caller, the waiting call fails with kResourceExhausted instead of hanging; the
// arena shrinks back when views drop; an engine with a huge arena maps nothing at start.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "ringfetch/ringfetch.hpp"
#include "servers/temp_dir.hpp"
#include "servers/watchdog.hpp"

namespace ringfetch {
namespace {

using testing::pattern_slice;
using testing::bounded;
using testing::TempDir;
using testing::write_pattern_file;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kSeed = 77;

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * 4096;
}

class MemoryLimitTest : public ::testing::Test {
 protected:
  void SetUp() override { write_pattern_file(dir_.path() / "blob.bin", 32 * kMiB, kSeed); }
  std::string root() const { return "file://" + dir_.path().string(); }
  static Plan sixteen_items() {
    Plan plan;
    for (uint64_t i = 0; i < 16; ++i) plan.add("blob.bin", i * 2 * kMiB, kMiB);
    return plan;
  }
  static EngineOptions engine_options(uint64_t arena, uint64_t limit) {
    EngineOptions options;
    options.arena_bytes = arena;
    options.memory_limit = limit;
    return options;
  }
  TempDir dir_;
};

TEST_F(MemoryLimitTest, ViewsTheCallerKeepsGrowTheArenaUpToTheLimit) {
  Engine engine(engine_options(4 * kMiB, 64 * kMiB));
  Store store = Store::open(root(), engine);
  const Plan plan = sixteen_items();
  std::vector<ItemView> kept;
  bounded(std::chrono::seconds(60), [&] {
    for (const ItemView& view : store.fetch(plan)) kept.push_back(view);
  });
  ASSERT_EQ(kept.size(), 16u);
  for (const ItemView& view : kept) {
    EXPECT_EQ(view.size(), kMiB);
    EXPECT_TRUE(std::equal(view.bytes().begin(), view.bytes().end(),
                           pattern_slice(view.offset(), kMiB, kSeed).begin()));
  }
  Stats stats = engine.stats();
  EXPECT_GE(stats.bytes_held_by_views, 16 * kMiB);
  EXPECT_GE(stats.arena_peak_bytes, 16 * kMiB);
  EXPECT_LE(stats.arena_peak_bytes, 64 * kMiB);
  EXPECT_EQ(stats.arena_base_bytes, 4 * kMiB);
  EXPECT_EQ(stats.memory_limit_bytes, 64 * kMiB);
  kept.clear();
  stats = engine.stats();
  EXPECT_EQ(stats.bytes_held_by_views, 0u);
  EXPECT_EQ(stats.arena_in_use_bytes, 0u);
  EXPECT_LE(stats.arena_bytes, 4 * kMiB) << "the arena shrinks back to its base once views drop";
}

TEST_F(MemoryLimitTest, LimitReachedWithEveryByteHeldIsAnErrorNotAHang) {
  Engine engine(engine_options(4 * kMiB, 8 * kMiB));
  Store store = Store::open(root(), engine);
  const Plan plan = sixteen_items();
  std::vector<ItemView> kept;
  FetchBatch batch = store.fetch(plan);
  bounded(std::chrono::seconds(60), [&] {
    try {
      while (std::optional<ItemView> view = batch.next()) kept.push_back(*view);
      ADD_FAILURE() << "every item was delivered within an 8 MiB limit while all were held";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kResourceExhausted) << e.what();
      const std::string message = e.what();
      for (const char* part : {"memory limit of 8388608 bytes", "blob.bin", "held by views", "memory_limit"})
        EXPECT_NE(message.find(part), std::string::npos) << message;
    }
  });
  EXPECT_GE(kept.size(), 4u);
  EXPECT_LT(kept.size(), 16u);
  // The batch has ended: the rest of its items fail the same way, then it is exhausted.
  bounded(std::chrono::seconds(60), [&] {
    size_t failed = 0;
    for (;;) {
      try {
        if (!batch.next()) break;
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kResourceExhausted);
        ++failed;
      }
    }
    EXPECT_EQ(kept.size() + 1 + failed, 16u);
  });
  // Dropping the views frees the memory; the store works again.
  kept.clear();
  EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);
  Plan small;
  small.add("blob.bin", 0, kMiB);
  bounded(std::chrono::seconds(60), [&] { store.fetch(small).wait(); });
}

TEST_F(MemoryLimitTest, CallbackThatKeepsEveryViewGetsTheErrorFromWait) {
  Engine engine(engine_options(4 * kMiB, 8 * kMiB));
  Store store = Store::open(root(), engine);
  std::mutex mutex;
  std::vector<ItemView> kept;
  size_t failed = 0;
  FetchBatch batch = store.fetch(sixteen_items(), [&](const ItemView& view) {
    std::lock_guard lock(mutex);
    if (view.ok()) kept.push_back(view); else ++failed;
  });
  bounded(std::chrono::seconds(60), [&] {
    try {
      batch.wait();
      ADD_FAILURE() << "wait() returned although the limit cannot hold every item";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kResourceExhausted) << e.what();
    }
  });
  std::lock_guard lock(mutex);
  EXPECT_EQ(kept.size() + failed, 16u);  // every item reached the callback once, the failed ones with their error
  EXPECT_GT(failed, 0u);
}

TEST_F(MemoryLimitTest, AHugeArenaCostsNothingAtStart) {
  const uint64_t before = resident_bytes();
  const auto started = std::chrono::steady_clock::now();
  Engine engine(engine_options(4ull << 30, 8ull << 30));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(engine.stats().arena_bytes, 0u);
  EXPECT_LT(resident_bytes() - std::min(before, resident_bytes()), 64 * kMiB);
  ::testing::Test::RecordProperty("engine_start_seconds_4GiB_arena", std::to_string(seconds));
  // A small load maps a small part of it.
  Store store = Store::open(root(), engine);
  Plan plan;
  plan.add("blob.bin", 0, 4096);
  bounded(std::chrono::seconds(60), [&] { store.fetch(plan).wait(); });
  EXPECT_LE(engine.stats().arena_peak_bytes, 256 * kMiB);
}

TEST_F(MemoryLimitTest, DefaultLimitIsAFractionOfPhysicalMemoryAndAtLeastTheArena) {
  EngineOptions options;
  options.arena_bytes = 64 * kMiB;
  Engine engine(options);
  const Stats stats = engine.stats();
  EXPECT_GE(stats.memory_limit_bytes, 64 * kMiB);
  const uint64_t physical = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGESIZE));
  EXPECT_LE(stats.memory_limit_bytes, std::max<uint64_t>(physical / 4, 64 * kMiB));
  EXPECT_THROW(Engine(engine_options(64 * kMiB, 32 * kMiB)), Error);
}

}  // namespace
}  // namespace ringfetch
