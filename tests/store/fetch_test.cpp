// Tests for Store::fetch over file:// and direct://: random plans checked byte for byte against the files,
// shared memory for overlapping items, zero-length items, destinations filled in place, the callback API, every
// planning and opening error with its message, the efficiency counters against the planner, backpressure in a
// small arena, a file truncated under a fetch, and batches dropped in mid-flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine_impl.hpp"
#include "engine/range_planner.hpp"
#include "ringfetch/ringfetch.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::pattern_slice;
using testing::TempDir;
using testing::write_pattern_file;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

// The files every test can read: name, size (deliberately not multiples of 4 KiB) and pattern seed.
struct TestObject {
  const char* name;
  uint64_t size;
  uint64_t seed;
};
constexpr TestObject kObjects[] = {
    {"a.bin", 3 * kMiB + 123, 101},
    {"dir/b.bin", 1 * kMiB + 7, 202},
    {"c.bin", 5000, 303},
};

const TestObject& object_named(const std::string& name) {
  for (const TestObject& object : kObjects)
    if (name == object.name) return object;
  throw std::runtime_error("no test object " + name);
}

// Byte-for-byte comparison with the pattern, reporting the first difference rather than two huge dumps.
::testing::AssertionResult bytes_match(std::span<const std::byte> bytes, uint64_t seed, uint64_t offset) {
  const std::vector<std::byte> expected = pattern_slice(offset, bytes.size(), seed);
  auto [got, want] = std::mismatch(bytes.begin(), bytes.end(), expected.begin());
  if (got == bytes.end()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "first difference at byte " << (offset + (got - bytes.begin()))
                                       << " of a " << bytes.size() << "-byte range at " << offset;
}

void expect_view(const ItemView& view, const PlanItem& item) {
  ASSERT_TRUE(view.ok()) << view.status().message();
  EXPECT_EQ(view.object(), item.object);
  EXPECT_EQ(view.offset(), item.offset);
  ASSERT_EQ(view.size(), item.length);
  EXPECT_TRUE(bytes_match(view.bytes(), object_named(item.object).seed, item.offset));
}

// Runs `body` and checks that it throws ringfetch::Error of `kind` whose message holds every one of `parts`.
template <typename Body>
void expect_error(Body&& body, ErrorKind kind, std::initializer_list<std::string> parts) {
  try {
    body();
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), kind) << error.what();
    for (const std::string& part : parts) {
      EXPECT_NE(std::string(error.what()).find(part), std::string::npos)
          << "message '" << error.what() << "' lacks '" << part << "'";
    }
  }
}

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "dir");
    for (const TestObject& object : kObjects) write_pattern_file(dir_ / object.name, object.size, object.seed);
  }

  std::string root(const std::string& scheme = "file") const { return scheme + "://" + dir_.path().string(); }

  static EngineOptions small_engine(uint64_t arena_bytes = 32 * kMiB, unsigned threads = 1) {
    EngineOptions options;
    options.threads = threads;
    options.arena_bytes = arena_bytes;
    return options;
  }

  // A random plan over the test objects: short and long items, zero-length ones, exact duplicates and overlaps,
  // in random order.
  static Plan random_plan(uint64_t seed, size_t count) {
    std::mt19937_64 rng(seed);
    Plan plan;
    std::vector<PlanItem> previous;
    for (size_t i = 0; i < count; ++i) {
      const TestObject& object = kObjects[rng() % std::size(kObjects)];
      const unsigned shape = rng() % 10;
      if (shape == 0 && !previous.empty()) {  // exact duplicate
        const PlanItem& p = previous[rng() % previous.size()];
        plan.add(p.object, p.offset, p.length);
        continue;
      }
      uint64_t length = shape == 1 ? 0 : shape < 6 ? 1 + rng() % 4096 : 1 + rng() % (300 * kKiB);
      length = std::min(length, object.size);
      const uint64_t offset = rng() % (object.size - length + 1);
      plan.add(object.name, offset, length);
      previous.push_back(plan.items().back());
    }
    return plan;
  }

  // Iterates `batch`, checking every view against `plan`; returns the indices delivered.
  static std::vector<size_t> consume(FetchBatch& batch, const Plan& plan) {
    std::vector<size_t> indices;
    for (const ItemView& view : batch) {
      EXPECT_LT(view.index(), plan.size());
      if (view.index() >= plan.size()) break;
      expect_view(view, plan.items()[view.index()]);
      indices.push_back(view.index());
    }
    return indices;
  }

  static std::vector<size_t> non_empty_indices(const Plan& plan) {
    std::vector<size_t> out;
    for (size_t i = 0; i < plan.size(); ++i)
      if (plan.items()[i].length > 0) out.push_back(i);
    return out;
  }

  TempDir dir_{"ringfetch-fetch-"};
};

class FetchSchemeTest : public FetchTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(FetchSchemeTest, RandomPlansMatchTheFiles) {
  Engine engine(small_engine());
  Store store = Store::open(root(GetParam()), engine);
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const Plan plan = random_plan(seed, 150);
    FetchBatch batch = store.fetch(plan);
    EXPECT_EQ(batch.size(), non_empty_indices(plan).size());
    EXPECT_EQ(consume(batch, plan), non_empty_indices(plan)) << "items in plan order, each once";
    EXPECT_EQ(batch.next(), std::nullopt);
  }
  EXPECT_EQ(engine.stats().errors, 0u);
  EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);
}

TEST_P(FetchSchemeTest, WholeObjectsAndTheirEnds) {
  Engine engine(small_engine());
  Store store = Store::open(root(GetParam()), engine);
  Plan plan;
  for (const TestObject& object : kObjects) {
    plan.add(object.name, 0, object.size);
    plan.add(object.name, object.size - 1, 1);
    plan.add(object.name, object.size - 4097, 4097);
  }
  FetchBatch batch = store.fetch(plan);
  EXPECT_EQ(consume(batch, plan), non_empty_indices(plan));
  EXPECT_EQ(store.size("a.bin"), object_named("a.bin").size);
}

TEST_P(FetchSchemeTest, OverlappingItemsShareMemory) {
  Engine engine(small_engine());
  Store store = Store::open(root(GetParam()), engine);
  Plan plan;
  plan.add("a.bin", 10000, 50000);  // 0
  plan.add("a.bin", 30000, 1000);   // 1: inside 0
  plan.add("a.bin", 10000, 50000);  // 2: same as 0
  plan.add("a.bin", 55000, 20000);  // 3: overlaps the end of 0
  FetchBatch batch = store.fetch(plan);
  std::vector<ItemView> views;
  for (const ItemView& view : batch) {
    expect_view(view, plan.items()[view.index()]);
    views.push_back(view);
  }
  ASSERT_EQ(views.size(), 4u);
  EXPECT_EQ(views[1].bytes().data(), views[0].bytes().data() + 20000);
  EXPECT_EQ(views[2].bytes().data(), views[0].bytes().data());
  EXPECT_EQ(views[3].bytes().data(), views[0].bytes().data() + 45000);
}

TEST_P(FetchSchemeTest, ZeroLengthItemsAreSkipped) {
  Engine engine(small_engine());
  Store store = Store::open(root(GetParam()), engine);
  Plan plan;
  plan.add("a.bin", 0, 0);
  plan.add("a.bin", 100, 10);
  plan.add("c.bin", 5000, 0);  // at the very end: still valid
  plan.add("c.bin", 7, 5);
  plan.add("dir/b.bin", 3, 0);
  FetchBatch batch = store.fetch(plan);
  EXPECT_EQ(batch.size(), 2u);
  EXPECT_EQ(consume(batch, plan), (std::vector<size_t>{1, 3}));

  Plan empty_only;
  empty_only.add("a.bin", 5, 0);
  FetchBatch none = store.fetch(empty_only);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.next(), std::nullopt);
  none.wait();

  FetchBatch nothing = store.fetch(Plan());
  EXPECT_EQ(nothing.next(), std::nullopt);
}

TEST_P(FetchSchemeTest, DestinationsAreFilledInPlace) {
  Engine engine(small_engine());
  Store store = Store::open(root(GetParam()), engine);
  const bool direct = GetParam() == "direct";
  // Aligned items in aligned memory (the only kind O_DIRECT can read in place) and, for file://, arbitrary ones.
  struct Want {
    uint64_t offset, length;
  };
  const std::vector<Want> wants = {{0, 8192}, {4096 * 10, 4096 * 3}, {1 * kMiB, 256 * kKiB}};
  std::vector<std::unique_ptr<std::byte, decltype(&std::free)>> buffers;
  Plan plan;
  for (const Want& w : wants) {
    buffers.emplace_back(static_cast<std::byte*>(std::aligned_alloc(4096, w.length)), &std::free);
    std::memset(buffers.back().get(), 0xee, w.length);
    plan.add("a.bin", w.offset, w.length, {buffers.back().get(), w.length});
  }
  std::vector<std::vector<std::byte>> odd_buffers;
  if (!direct) {
    for (const Want& w : std::vector<Want>{{9000, 77}, {99999, 123457}}) {
      odd_buffers.emplace_back(w.length, std::byte{0xee});
      plan.add("a.bin", w.offset, w.length, odd_buffers.back());
    }
  }
  plan.add("a.bin", 2 * kMiB, 1000);  // a plain item alongside
  engine.reset_stats();
  FetchBatch batch = store.fetch(plan);
  for (const ItemView& view : batch) {
    const PlanItem& item = plan.items()[view.index()];
    expect_view(view, item);
    if (!item.destination.empty()) {
      EXPECT_EQ(view.bytes().data(), item.destination.data()) << view.index();
    }
  }
  EXPECT_EQ(engine.stats().bytes_copied_user, 0u) << "in place means no copy";
  EXPECT_EQ(engine.stats().items, plan.size());
}

// direct:// needs whole aligned blocks in aligned memory; other destinations still get exactly their bytes, and
// nothing around them is written (an O_DIRECT read of the last block of a file transfers the whole block).
TEST_F(FetchTest, DirectDestinationsThatCannotBeReadInPlace) {
  Engine engine(small_engine());
  Store store = Store::open(root("direct"), engine);
  constexpr size_t kBlock = 4096;
  std::vector<std::byte> unaligned_range(1000);  // item not on block bounds
  std::unique_ptr<std::byte, decltype(&std::free)> block(static_cast<std::byte*>(std::aligned_alloc(kBlock, 6 * kBlock)),
                                                         &std::free);
  std::span<std::byte> memory(block.get(), 6 * kBlock);
  std::memset(memory.data(), 0xee, memory.size());
  std::span<std::byte> file_tail = memory.subspan(0, 5000 - kBlock);         // aligned memory, item ends at EOF
  std::span<std::byte> misaligned = memory.subspan(kBlock + 512, 2 * kBlock);  // aligned item, memory off by 512
  Plan plan;
  plan.add("a.bin", 100, 1000, unaligned_range);
  plan.add("a.bin", 2 * kBlock, 2 * kBlock, misaligned);
  plan.add("c.bin", kBlock, 5000 - kBlock, file_tail);
  FetchBatch batch = store.fetch(plan);
  size_t seen = 0;
  for (const ItemView& view : batch) {
    const PlanItem& item = plan.items()[view.index()];
    expect_view(view, item);
    EXPECT_EQ(view.bytes().data(), item.destination.data());
    EXPECT_TRUE(bytes_match(item.destination, object_named(item.object).seed, item.offset));
    ++seen;
  }
  EXPECT_EQ(seen, 3u);
  // Bytes of the caller's memory outside the destinations are untouched.
  for (size_t i = 0; i < memory.size(); ++i) {
    const bool in_tail = i < file_tail.size();
    const bool in_misaligned = i >= kBlock + 512 && i < kBlock + 512 + misaligned.size();
    if (!in_tail && !in_misaligned) {
      ASSERT_EQ(memory[i], std::byte{0xee}) << "byte " << i << " overwritten";
    }
  }
}

TEST_P(FetchSchemeTest, DestinationsInRegisteredMemory) {
  Engine engine(small_engine());
  Store store = Store::open(root(GetParam()), engine);
  const size_t bytes = 2 * kMiB;
  std::unique_ptr<std::byte, decltype(&std::free)> tensor(static_cast<std::byte*>(std::aligned_alloc(4096, bytes)),
                                                          &std::free);
  std::span<std::byte> memory(tensor.get(), bytes);
  MemoryRegistration registration = engine.register_memory(memory);
  EXPECT_EQ(registration.registered(), engine.stats().buffers_registered);

  Plan plan;
  plan.add("a.bin", 0, 512 * kKiB, memory.subspan(0, 512 * kKiB));
  plan.add("a.bin", 2 * kMiB, 1 * kMiB, memory.subspan(1 * kMiB, 1 * kMiB));
  plan.add("dir/b.bin", 4096, 64 * kKiB, memory.subspan(512 * kKiB, 64 * kKiB));
  for (int round = 0; round < 2; ++round) {
    std::memset(memory.data(), 0, bytes);
    FetchBatch batch = store.fetch(plan);
    for (const ItemView& view : batch) {
      const PlanItem& item = plan.items()[view.index()];
      expect_view(view, item);
      EXPECT_EQ(view.bytes().data(), item.destination.data());
    }
  }
  {
    MemoryRegistration moved = std::move(registration);
    EXPECT_EQ(moved.registered(), engine.stats().buffers_registered);
  }  // unregistered here
  // Destinations in memory no longer registered are still filled (plain reads).
  FetchBatch batch = store.fetch(plan);
  EXPECT_EQ(consume(batch, plan).size(), 3u);
  EXPECT_FALSE(engine.register_memory({}).registered());
}

TEST_P(FetchSchemeTest, CallbackDeliversEveryItemOnce) {
  Engine engine(small_engine(32 * kMiB, 2));
  Store store = Store::open(root(GetParam()), engine);
  for (uint64_t seed = 10; seed < 14; ++seed) {
    const Plan plan = random_plan(seed, 60);
    std::mutex mutex;
    std::multiset<size_t> delivered;
    FetchBatch batch = store.fetch(plan, [&](const ItemView& view) {
      expect_view(view, plan.items()[view.index()]);
      // A slow consumer: wait() must still not return before every callback has returned.
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      std::lock_guard lock(mutex);
      delivered.insert(view.index());
    });
    batch.wait();
    std::lock_guard lock(mutex);
    const std::vector<size_t> expected = non_empty_indices(plan);
    EXPECT_EQ(delivered, std::multiset<size_t>(expected.begin(), expected.end())) << "seed " << seed;
    EXPECT_THROW(batch.next(), Error);  // a callback batch is not iterated
  }
  EXPECT_THROW(store.fetch(Plan(), ItemCallback()), Error);
}

TEST_P(FetchSchemeTest, CallbackViewsMayBeKept) {
  Engine engine(small_engine());
  Store store = Store::open(root(GetParam()), engine);
  const Plan plan = random_plan(77, 40);
  std::mutex mutex;
  std::vector<ItemView> kept;
  {
    FetchBatch batch = store.fetch(plan, [&](const ItemView& view) {
      std::lock_guard lock(mutex);
      kept.push_back(view);
    });
    batch.wait();
  }
  EXPECT_EQ(kept.size(), non_empty_indices(plan).size());
  for (const ItemView& view : kept) expect_view(view, plan.items()[view.index()]);
  kept.clear();
  EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);
}

INSTANTIATE_TEST_SUITE_P(Schemes, FetchSchemeTest, ::testing::Values("file", "direct"),
                         [](const auto& info) { return info.param; });

TEST_F(FetchTest, ErrorsNameTheirCause) {
  Engine engine(small_engine(8 * kMiB));
  Store store = Store::open(root(), engine);
  auto fetch_one = [&](const std::string& object, uint64_t offset, uint64_t length) {
    Plan plan;
    plan.add("a.bin", 0, 10);
    plan.add(object, offset, length);
    store.fetch(plan);
  };
  expect_error([&] { fetch_one("missing.bin", 0, 10); }, ErrorKind::kIo, {"missing.bin", "No such file"});
  expect_error([&] { fetch_one("c.bin", 4990, 11); }, ErrorKind::kInvalidArgument,
               {"item 1", "past the object's end", "5000"});
  expect_error([&] { fetch_one("c.bin", 5001, 0); }, ErrorKind::kInvalidArgument, {"past the object's end"});
  expect_error([&] { fetch_one("c.bin", UINT64_MAX - 5, 10); }, ErrorKind::kInvalidArgument, {"overflows"});
  expect_error([&] { fetch_one("dir", 0, 1); }, ErrorKind::kIo, {"not a regular file"});

  std::vector<std::byte> memory(100);
  expect_error(
      [&] {
        Plan plan;
        plan.add("a.bin", 0, 99, memory);
        store.fetch(plan);
      },
      ErrorKind::kInvalidArgument, {"item 0", "destination holds 100 bytes", "length is 99"});
  expect_error(
      [&] {
        Plan plan;
        plan.add("a.bin", 0, 50, std::span(memory).first(50));
        plan.add("a.bin", 40, 50, std::span(memory).last(50));
        store.fetch(plan);
      },
      ErrorKind::kInvalidArgument, {"overlapping items cannot have destinations"});
  expect_error(
      [&] {
        Plan plan;
        plan.add("a.bin", 1000, 100);
        plan.add("a.bin", 1050, 50, std::span(memory).first(50));
        store.fetch(plan);
      },
      ErrorKind::kInvalidArgument, {"overlapping items cannot have destinations"});

  // None of that left memory behind, and the store still works.
  EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);
  Plan plan;
  plan.add("a.bin", 0, 3 * kMiB);
  FetchBatch batch = store.fetch(plan);
  EXPECT_EQ(consume(batch, plan).size(), 1u);
}

TEST_F(FetchTest, ItemsLargerThanTheMemoryLimitNeedADestination) {
  write_pattern_file(dir_ / "large.bin", 12 * kMiB, 404);
  EngineOptions options = small_engine(8 * kMiB);
  options.memory_limit = 8 * kMiB;
  Engine engine(options);
  Store store = Store::open(root(), engine);
  expect_error(
      [&] {
        Plan plan;
        plan.add("large.bin", 1, 8 * kMiB + 1);
        store.fetch(plan);
      },
      ErrorKind::kResourceExhausted, {"item 0", "large.bin", "memory_limit is 8388608", "raise EngineOptions::memory_limit"});
  std::vector<std::byte> memory(11 * kMiB);
  Plan plan;
  plan.add("large.bin", 5, memory.size(), memory);
  FetchBatch batch = store.fetch(plan);
  std::optional<ItemView> view = batch.next();
  ASSERT_TRUE(view);
  EXPECT_EQ(view->bytes().data(), memory.data());
  EXPECT_TRUE(bytes_match(memory, 404, 5));
}

// An item larger than the arena's base but within the limit is read (alone): the base bounds read-ahead, not items.
TEST_F(FetchTest, ItemsLargerThanTheArenaBaseAreRead) {
  write_pattern_file(dir_ / "large.bin", 12 * kMiB, 404);
  EngineOptions options = small_engine(4 * kMiB, 3);
  options.memory_limit = 8 * kMiB;
  Engine engine(options);
  Store store = Store::open(root(), engine);
  expect_error(
      [&] {
        Plan plan;
        plan.add("large.bin", 0, 9 * kMiB);
        store.fetch(plan);
      },
      ErrorKind::kResourceExhausted, {"memory_limit"});
  Plan plan;
  plan.add("large.bin", 0, 8 * kMiB);  // exactly the limit
  FetchBatch batch = store.fetch(plan);
  std::optional<ItemView> view = batch.next();
  ASSERT_TRUE(view);
  EXPECT_TRUE(bytes_match(view->bytes(), 404, 0));
}

TEST_F(FetchTest, BadRoots) {
  Engine engine(small_engine(1 * kMiB));
  expect_error([&] { Store::open("nope://x/y", engine); }, ErrorKind::kInvalidArgument,
               {"bad URL", "nope://x/y", "unknown scheme"});
  expect_error([&] { Store::open("file://relative/dir", engine); }, ErrorKind::kInvalidArgument, {"bad URL"});
  expect_error([&] { Store::open("", engine); }, ErrorKind::kInvalidArgument, {"bad URL"});
  expect_error([&] { Store::open(root() + "/a.bin", engine); }, ErrorKind::kInvalidArgument,
               {"a.bin", "is not a directory"});
  expect_error([&] { Store::open(root() + "/no/such/dir", engine); }, ErrorKind::kInvalidArgument,
               {"no/such/dir", "No such file"});
  expect_error([&] { Store::open(root("direct") + "/c.bin", engine); }, ErrorKind::kInvalidArgument,
               {"is not a directory"});
  StoreOptions odd_part;
  odd_part.part_size = 1000;
  expect_error([&] { Store::open(root("direct"), engine, odd_part); }, ErrorKind::kInvalidArgument,
               {"part_size 1000"});
  odd_part.part_size = 0;
  expect_error([&] { Store::open(root(), engine, odd_part); }, ErrorKind::kInvalidArgument, {"part_size"});
  Store store = Store::open(root(), engine);
  EXPECT_EQ(store.root(), root());
  EXPECT_EQ(&store.engine(), &engine);
  expect_error([&] { store.size("missing.bin"); }, ErrorKind::kIo, {"missing.bin"});
}

// requests == the planner's request count, bytes_fetched - bytes_requested == the coalesced gaps, and file://
// copies nothing in user space.
TEST_F(FetchTest, StatsMatchThePlanner) {
  Engine engine(small_engine(32 * kMiB, 2));
  StoreOptions options;
  options.max_gap = 4096;
  options.part_size = 256 * kKiB;
  Store store = Store::open(root(), engine, options);

  std::mt19937_64 rng(5);
  Plan plan;
  for (const char* name : {"a.bin", "dir/b.bin"}) {
    const uint64_t size = object_named(name).size;
    uint64_t offset = rng() % 1000;
    while (true) {
      const uint64_t length = 1 + rng() % (64 * kKiB);
      if (offset + length > size) break;
      plan.add(name, offset, length);
      if (rng() % 5 == 0 && length > 1) plan.add(name, offset + length / 2, length - length / 2);  // overlap
      // Gaps: some coalesced (<= max_gap), some not.
      offset += length + (rng() % 3 == 0 ? 5000 + rng() % 20000 : rng() % 4097);
    }
  }
  // The planner's view of the same plan.
  std::map<std::string, uint32_t> ids;
  std::vector<uint64_t> sizes;
  std::vector<engine::PlannerItem> items;
  for (const PlanItem& item : plan.items()) {
    auto [it, inserted] = ids.emplace(item.object, static_cast<uint32_t>(ids.size()));
    if (inserted) sizes.push_back(object_named(item.object).size);
    items.push_back({it->second, item.offset, item.length, false});
  }
  engine::PlannerOptions planner_options;
  planner_options.max_gap = *options.max_gap;
  planner_options.part_size = *options.part_size;
  engine::PlanLayout layout;
  ASSERT_TRUE(engine::plan_ranges(items, planner_options, sizes, &layout).ok());
  ASSERT_GT(layout.bytes_gap, 0u) << "the plan should coalesce some gaps";
  ASSERT_GT(layout.groups, 2u) << "and leave some apart";

  engine.reset_stats();
  FetchBatch batch = store.fetch(plan);
  EXPECT_EQ(consume(batch, plan).size(), plan.size());
  const Stats stats = engine.stats();
  EXPECT_EQ(stats.requests, layout.requests.size());
  EXPECT_EQ(stats.bytes_requested, layout.bytes_requested);
  EXPECT_EQ(stats.bytes_fetched, layout.bytes_fetched);
  EXPECT_EQ(stats.bytes_fetched - stats.bytes_requested, layout.bytes_gap);
  EXPECT_EQ(stats.bytes_copied_user, 0u);
  EXPECT_EQ(stats.bytes_body, 0u);
  EXPECT_EQ(stats.items, plan.size());
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(stats.retries, 0u);
  EXPECT_EQ(stats.arena_waits, 0u);

  engine.reset_stats();
  const Stats zero = engine.stats();
  EXPECT_EQ(zero.requests + zero.bytes_requested + zero.bytes_fetched + zero.items, 0u);
}

// A plan several times larger than the arena completes when the caller drops each view after use: memory is
// bounded, and the scheduler waited for it.
class BackpressureTest : public FetchTest, public ::testing::WithParamInterface<uint64_t> {
 protected:
  static constexpr uint64_t kBigSize = 64 * kMiB + 4321;
  static constexpr uint64_t kBigSeed = 505;

  // Items covering most of big.bin in file order; gaps up to max_gap_hint (gaps <= the source's max_gap make
  // one long group cut into part_size requests; bigger ones make many groups).
  static Plan file_order_plan(uint64_t seed, uint64_t max_gap_hint) {
    std::mt19937_64 rng(seed);
    Plan plan;
    uint64_t offset = rng() % 100;
    while (true) {
      const uint64_t length = 1 + rng() % (1 * kMiB);
      if (offset + length > kBigSize) break;
      plan.add("big.bin", offset, length);
      offset += length + rng() % (max_gap_hint + 1);
    }
    return plan;
  }

  void SetUp() override {
    FetchTest::SetUp();
    write_pattern_file(dir_ / "big.bin", kBigSize, kBigSeed);
  }

  static void check(const ItemView& view, const Plan& plan) {
    const PlanItem& item = plan.items()[view.index()];
    ASSERT_EQ(view.offset(), item.offset);
    ASSERT_EQ(view.size(), item.length);
    EXPECT_TRUE(bytes_match(view.bytes(), kBigSeed, item.offset));
  }
};

TEST_P(BackpressureTest, IteratorCompletesInASmallArena) {
  Engine engine(small_engine(8 * kMiB));
  Store store = Store::open(root(), engine);
  const Plan plan = file_order_plan(GetParam(), GetParam() % 2 == 0 ? 8 * kKiB : 64 * kKiB);
  uint64_t total = 0;
  for (const PlanItem& item : plan.items()) total += item.length;
  ASSERT_GT(total, 6 * 8 * kMiB);
  engine.reset_stats();
  size_t delivered = 0;
  for (const ItemView& view : store.fetch(plan)) {
    check(view, plan);
    ++delivered;
  }
  EXPECT_EQ(delivered, plan.size());
  EXPECT_GT(engine.stats().arena_waits, 0u);
  EXPECT_EQ(engine.stats().bytes_requested, total);
  EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);
}

TEST_P(BackpressureTest, CallbackCompletesInASmallArena) {
  Engine engine(small_engine(8 * kMiB, 2));
  Store store = Store::open(root(), engine);
  const Plan plan = file_order_plan(GetParam() + 100, 32 * kKiB);
  engine.reset_stats();
  std::atomic<size_t> delivered{0};
  FetchBatch batch = store.fetch(plan, [&](const ItemView& view) {
    check(view, plan);
    delivered.fetch_add(1);
  });
  batch.wait();
  EXPECT_EQ(delivered.load(), plan.size());
  EXPECT_GT(engine.stats().arena_waits, 0u);
}

// Plan order unrelated to file order, plan far larger than the arena: memory goes to the items the caller reaches
// next, so the load completes (a scheduler that fills the arena by file order would wait forever here).
TEST_P(BackpressureTest, ShuffledPlanLargerThanTheArenaCompletes) {
  Engine engine(small_engine(8 * kMiB));
  Store store = Store::open(root(), engine);
  std::vector<uint64_t> offsets;
  for (uint64_t off = 0; off + 64 * kKiB <= kBigSize; off += 64 * kKiB) offsets.push_back(off);
  std::shuffle(offsets.begin(), offsets.end(), std::mt19937_64(GetParam()));
  Plan plan;
  for (uint64_t off : offsets) plan.add("big.bin", off, 64 * kKiB);
  size_t delivered = 0;
  for (const ItemView& view : store.fetch(plan)) {
    check(view, plan);
    ++delivered;
  }
  EXPECT_EQ(delivered, plan.size());
  EXPECT_GT(engine.stats().arena_waits, 0u);
}

// Back-to-back aligned items over direct:// stay separate extents, so a plan larger than the arena streams.
TEST_P(BackpressureTest, DirectBackToBackPlanLargerThanTheArenaStreams) {
  Engine engine(small_engine(8 * kMiB));
  Store store = Store::open(root("direct"), engine);
  Plan plan;
  for (uint64_t off = 0; off + kMiB <= kBigSize; off += kMiB) plan.add("big.bin", off, kMiB);
  size_t delivered = 0;
  for (const ItemView& view : store.fetch(plan)) {
    check(view, plan);
    ++delivered;
  }
  EXPECT_EQ(delivered, plan.size());
}

INSTANTIATE_TEST_SUITE_P(Seeds, BackpressureTest, ::testing::Values(1, 2, 3));

// A range-for over a batch holds only the view of the current iteration: the previous one is released before
// the loop waits for the next item (here each item needs most of the arena).
TEST_F(FetchTest, RangeForReleasesEachViewBeforeWaitingForTheNext) {
  write_pattern_file(dir_ / "big.bin", 32 * kMiB, 808);
  Engine engine(small_engine(8 * kMiB));
  Store store = Store::open(root(), engine);
  Plan plan;
  for (uint64_t i = 0; i < 4; ++i) plan.add("big.bin", i * 8 * kMiB + 5, 6 * kMiB);
  size_t n = 0;
  for (const ItemView& view : store.fetch(plan)) {
    EXPECT_TRUE(bytes_match(view.bytes(), 808, view.offset()));
    ++n;
  }
  EXPECT_EQ(n, 4u);
  EXPECT_GT(engine.stats().arena_waits, 0u);
}

// The file shrinks after the fetch was planned (sizes taken) but before some of its reads: those items fail with
// an integrity error rather than delivering short or stale data.
TEST_F(FetchTest, FileTruncatedUnderAFetchIsAnIntegrityError) {
  write_pattern_file(dir_ / "shrinking.bin", 32 * kMiB, 606);
  EngineOptions options = small_engine(8 * kMiB);
  options.memory_limit = 8 * kMiB;
  Engine engine(options);
  Store store = Store::open(root(), engine);
  Plan plan;
  for (uint64_t i = 0; i < 4; ++i) plan.add("shrinking.bin", i * 8 * kMiB, 6 * kMiB);
  engine.reset_stats();
  FetchBatch batch = store.fetch(plan);
  {
    // While this view is held the memory limit leaves no room for item 1, so nothing else has been read yet.
    std::optional<ItemView> first = batch.next();
    ASSERT_TRUE(first);
    EXPECT_TRUE(bytes_match(first->bytes(), 606, 0));
    ASSERT_EQ(truncate((dir_ / "shrinking.bin").c_str(), 10 * kMiB), 0);
  }
  for (size_t i = 1; i < 4; ++i) {
    expect_error([&] { batch.next(); }, ErrorKind::kIntegrity,
                 {"item " + std::to_string(i), "shrinking.bin", "truncated"});
  }
  EXPECT_EQ(batch.next(), std::nullopt);
  EXPECT_EQ(engine.stats().errors, 3u);
  EXPECT_EQ(engine.stats().items, 1u);
  EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);

  // wait() reports the failure too.
  Plan again;
  again.add("shrinking.bin", 0, 1000);
  FetchBatch ok_batch = store.fetch(again);
  ok_batch.wait();
}

// Dropping a batch with reads in flight or waiting for memory cancels the rest, waits for the reads, and leaks
// nothing; the engine goes on working.
TEST_F(FetchTest, DroppingABatchMidFlightIsClean) {
  write_pattern_file(dir_ / "big.bin", 40 * kMiB, 707);
  Engine engine(small_engine(8 * kMiB, 2));
  Store store = Store::open(root(), engine);
  Plan plan;
  for (uint64_t off = 0; off + 700 * kKiB <= 40 * kMiB; off += 701 * kKiB) plan.add("big.bin", off, 700 * kKiB);
  for (int round = 0; round < 5; ++round) {
    FetchBatch batch = store.fetch(plan);
    for (int i = 0; i < round; ++i) EXPECT_TRUE(batch.next().has_value());
  }
  {
    std::optional<ItemView> kept;
    {
      FetchBatch batch = store.fetch(plan);
      kept = batch.next();
    }
    ASSERT_TRUE(kept);
    EXPECT_TRUE(bytes_match(kept->bytes(), 707, 0));
  }
  // A callback batch dropped while its callbacks run: none may run after the batch is gone.
  for (int round = 0; round < 3; ++round) {
    auto count = std::make_unique<std::atomic<int>>(0);
    {
      FetchBatch batch = store.fetch(plan, [counter = count.get()](const ItemView&) {
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        counter->fetch_add(1);
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(round));
    }
    const int after_drop = count->load();
    count.reset();  // a callback still running now would touch freed memory (ASan)
    EXPECT_LE(after_drop, static_cast<int>(plan.size()));
  }
  EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);
  FetchBatch batch = store.fetch(plan);
  size_t n = 0;
  for (const ItemView& view : batch) {
    if (n++ % 7 == 0) {
      EXPECT_TRUE(bytes_match(view.bytes(), 707, view.offset()));
    }
  }
  EXPECT_EQ(n, plan.size());
}

TEST_F(FetchTest, BatchesMoveAndOutliveNothing) {
  Engine engine(small_engine());
  Store store = Store::open(root(), engine);
  const Plan plan = random_plan(99, 30);
  FetchBatch first = store.fetch(plan);
  FetchBatch second = std::move(first);
  EXPECT_EQ(first.size(), 0u);
  EXPECT_EQ(first.next(), std::nullopt);
  first.wait();
  FetchBatch third = store.fetch(plan);
  third = std::move(second);  // cancels third's own fetch
  EXPECT_EQ(consume(third, plan), non_empty_indices(plan));
}

// Views keep their memory valid after the batch, the store and the engine are gone, even when the dropped batch
// had a request parked waiting for arena memory.
TEST_F(FetchTest, ViewsOutliveTheEngine) {
  write_pattern_file(dir_ / "big.bin", 32 * kMiB, 808);
  std::optional<ItemView> kept;
  std::optional<ItemView> small;
  {
    Engine engine(small_engine(8 * kMiB));
    Store store = Store::open(root(), engine);
    Plan plan;
    for (uint64_t i = 0; i < 4; ++i) plan.add("big.bin", i * 8 * kMiB, 6 * kMiB);
    FetchBatch batch = store.fetch(plan);
    kept = batch.next();  // item 1 now waits for memory that only this view can give back
    ASSERT_TRUE(kept);
    Plan other;
    other.add("c.bin", 10, 20);
    FetchBatch small_batch = store.fetch(other);
    small = small_batch.next();
  }
  ASSERT_TRUE(kept);
  EXPECT_TRUE(bytes_match(kept->bytes(), 808, 0));
  EXPECT_TRUE(bytes_match(small->bytes(), object_named("c.bin").seed, 10));
  ItemView slice = kept->slice(100, 50);
  kept.reset();
  EXPECT_TRUE(bytes_match(slice.bytes(), 808, 100));
  EXPECT_EQ(slice.offset(), 100u);
}

}  // namespace
}  // namespace ringfetch
