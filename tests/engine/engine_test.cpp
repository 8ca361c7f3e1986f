// Tests for Engine: backend choice (explicit, automatic, RINGFETCH_BACKEND), buffer registration and its switches
// (register_buffers, RINGFETCH_NO_REGISTER), what stats() reports about them, option validation, shutdown with
// idle stores, and fetches on several engine threads. The suite also runs with RINGFETCH_BACKEND=epoll and
// RINGFETCH_NO_REGISTER=1 in the environment, so expectations follow what the engine reports it is using.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine_impl.hpp"
#include "engine/io_loop.hpp"
#include "ringfetch/ringfetch.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::pattern_slice;
using testing::TempDir;
using testing::write_pattern_file;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kObjectSize = 4 * kMiB + 99;
constexpr uint64_t kSeed = 31;

// Sets (or unsets, for nullptr) an environment variable for one scope and restores the value it had before, so
// a run of the whole suite with the variable set keeps it for the other tests.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

EngineOptions options(Backend backend = Backend::kAuto, unsigned threads = 1) {
  EngineOptions o;
  o.threads = threads;
  o.arena_bytes = 8 * kMiB;
  o.backend = backend;
  return o;
}

bool io_uring_here() { return engine::probe_io_uring().usable; }

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { write_pattern_file(dir_ / "obj.bin", kObjectSize, kSeed); }

  std::string root() const { return "file://" + dir_.path().string(); }

  // A fetch of a few ranges through `engine`, checked byte for byte.
  void fetch_and_check(Engine& engine, uint64_t plan_seed = 1, size_t items = 40) {
    Store store = Store::open(root(), engine);
    std::mt19937_64 rng(plan_seed);
    Plan plan;
    for (size_t i = 0; i < items; ++i) {
      const uint64_t length = 1 + rng() % (256 << 10);
      plan.add("obj.bin", rng() % (kObjectSize - length), length);
    }
    size_t seen = 0;
    for (const ItemView& view : store.fetch(plan)) {
      const PlanItem& item = plan.items()[view.index()];
      ASSERT_EQ(view.offset(), item.offset);
      const std::vector<std::byte> want = pattern_slice(item.offset, item.length, kSeed);
      ASSERT_TRUE(std::equal(view.bytes().begin(), view.bytes().end(), want.begin(), want.end())) << view.index();
      ++seen;
    }
    EXPECT_EQ(seen, items);
  }

  TempDir dir_{"ringfetch-engine-"};
};

TEST_F(EngineTest, EpollBackendWorks) {
  Engine engine(options(Backend::kEpoll));
  const Stats stats = engine.stats();
  EXPECT_EQ(stats.backend, "epoll");
  EXPECT_FALSE(stats.buffers_registered);
  EXPECT_NE(stats.fallback_reason.find("epoll"), std::string::npos) << stats.fallback_reason;
  fetch_and_check(engine);
  EXPECT_FALSE(engine.register_memory(std::span<std::byte>()).registered());
  std::vector<std::byte> memory(4096);
  EXPECT_FALSE(engine.register_memory(memory).registered());
}

TEST_F(EngineTest, AutoReportsWhatItUses) {
  Engine engine(options());
  const Stats stats = engine.stats();
  ASSERT_TRUE(stats.backend == "io_uring" || stats.backend == "epoll") << stats.backend;
  if (stats.backend == "epoll" || !stats.buffers_registered) {
    EXPECT_FALSE(stats.fallback_reason.empty()) << "a fallback must say why";
  } else {
    EXPECT_TRUE(stats.fallback_reason.empty()) << stats.fallback_reason;
  }
  if (stats.backend == "epoll") {
    EXPECT_FALSE(stats.buffers_registered);
  }
  const char* env = std::getenv("RINGFETCH_BACKEND");
  if (!(env != nullptr && std::string(env) == "epoll") && io_uring_here()) {
    EXPECT_EQ(stats.backend, "io_uring");
  }
  fetch_and_check(engine);
}

TEST_F(EngineTest, ExplicitIoUring) {
  if (!io_uring_here()) {
    try {
      Engine engine(options(Backend::kIoUring));
      ADD_FAILURE() << "io_uring is unavailable, yet the engine started";
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::kUnsupported);
      EXPECT_NE(std::string(error.what()).find("kAuto"), std::string::npos) << error.what();
    }
    return;
  }
  // Explicit beats the environment.
  ScopedEnv env("RINGFETCH_BACKEND", "epoll");
  Engine engine(options(Backend::kIoUring));
  EXPECT_EQ(engine.stats().backend, "io_uring");
  fetch_and_check(engine);
}

TEST_F(EngineTest, BackendFromTheEnvironment) {
  {
    ScopedEnv env("RINGFETCH_BACKEND", "epoll");
    Engine engine(options());
    EXPECT_EQ(engine.stats().backend, "epoll");
    EXPECT_FALSE(engine.stats().buffers_registered);
    fetch_and_check(engine);
  }
  if (io_uring_here()) {
    ScopedEnv env("RINGFETCH_BACKEND", "io_uring");
    Engine engine(options());
    EXPECT_EQ(engine.stats().backend, "io_uring");
    fetch_and_check(engine);
  }
  {
    ScopedEnv env("RINGFETCH_BACKEND", nullptr);
    Engine engine(options());
    if (io_uring_here()) {
      EXPECT_EQ(engine.stats().backend, "io_uring");
    }
  }
}

TEST_F(EngineTest, RegistrationSwitches) {
  if (!io_uring_here()) GTEST_SKIP() << "registration needs io_uring";
  ScopedEnv backend("RINGFETCH_BACKEND", "io_uring");
  {
    ScopedEnv env("RINGFETCH_NO_REGISTER", "1");
    Engine engine(options());
    const Stats stats = engine.stats();
    EXPECT_EQ(stats.backend, "io_uring");
    EXPECT_FALSE(stats.buffers_registered);
    EXPECT_NE(stats.fallback_reason.find("registration"), std::string::npos) << stats.fallback_reason;
    std::vector<std::byte> memory(4096);
    EXPECT_FALSE(engine.register_memory(memory).registered());
    fetch_and_check(engine);
  }
  {
    ScopedEnv env("RINGFETCH_NO_REGISTER", nullptr);
    EngineOptions o = options();
    o.register_buffers = false;
    Engine engine(o);
    EXPECT_FALSE(engine.stats().buffers_registered);
    EXPECT_FALSE(engine.stats().fallback_reason.empty());
    fetch_and_check(engine);
  }
  {
    ScopedEnv env("RINGFETCH_NO_REGISTER", "0");  // "0" means register
    Engine engine(options());
    const Stats stats = engine.stats();
    // The kernel may still refuse (RLIMIT_MEMLOCK); then the engine says so.
    EXPECT_EQ(stats.buffers_registered, stats.fallback_reason.empty()) << stats.fallback_reason;
    std::vector<std::byte> memory(1 << 16);
    MemoryRegistration registration = engine.register_memory(memory);
    EXPECT_EQ(registration.registered(), stats.buffers_registered);
    fetch_and_check(engine);
  }
}

TEST_F(EngineTest, RegisteredMemorySlotsAreReused) {
  Engine engine(options());
  if (!engine.stats().buffers_registered) GTEST_SKIP() << "no registered buffers: " << engine.stats().fallback_reason;
  std::vector<std::byte> memory(1 << 16);
  // Far more registrations over time than the table has slots: dropping one frees its slot.
  for (unsigned i = 0; i < 3 * Engine::Impl::kBufferSlots; ++i) {
    MemoryRegistration registration = engine.register_memory(memory);
    ASSERT_TRUE(registration.registered()) << i;
  }
  // While held, the table fills up; later registrations are refused, not errors.
  std::vector<MemoryRegistration> held;
  for (unsigned i = 0; i < Engine::Impl::kBufferSlots; ++i) held.push_back(engine.register_memory(memory));
  EXPECT_FALSE(held.back().registered());
  EXPECT_TRUE(held.front().registered());
}

TEST_F(EngineTest, MovedRegistrationsHaveOneOwner) {
  Engine engine(options());
  if (!engine.stats().buffers_registered) GTEST_SKIP() << "no registered buffers: " << engine.stats().fallback_reason;
  std::vector<std::byte> memory(1 << 16), other(1 << 16);
  MemoryRegistration first = engine.register_memory(memory);
  ASSERT_TRUE(first.registered());
  MemoryRegistration second = std::move(first);
  EXPECT_TRUE(second.registered());
  EXPECT_FALSE(first.registered());  // NOLINT(bugprone-use-after-move): moved-from state is specified here
  MemoryRegistration third = engine.register_memory(other);
  third = std::move(second);  // unregisters `other`, takes over `memory`
  EXPECT_TRUE(third.registered());
  EXPECT_FALSE(second.registered());  // NOLINT(bugprone-use-after-move)
}

TEST_F(EngineTest, InvalidOptions) {
  EngineOptions o = options();
  o.threads = 0;
  try {
    Engine engine(o);
    ADD_FAILURE() << "threads = 0 accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(error.what()).find("threads"), std::string::npos) << error.what();
  }
  o = options();
  o.ring_entries = 0;
  EXPECT_THROW(Engine engine(o), Error);
}

TEST_F(EngineTest, OptionsAndStatsAccessors) {
  EngineOptions o = options(Backend::kAuto, 2);
  o.arena_bytes = 3 * kMiB;
  Engine engine(o);
  EXPECT_EQ(engine.options().threads, 2u);
  EXPECT_EQ(engine.options().arena_bytes, 3 * kMiB);
  fetch_and_check(engine, 2, 10);
  Stats stats = engine.stats();
  EXPECT_EQ(stats.items, 10u);
  EXPECT_GT(stats.requests, 0u);
  engine.reset_stats();
  stats = engine.stats();
  EXPECT_EQ(stats.items + stats.requests + stats.bytes_fetched + stats.bytes_requested + stats.arena_waits, 0u);
  EXPECT_FALSE(stats.backend.empty());  // not a counter: kept
}

TEST_F(EngineTest, DestroyedCleanlyWithIdleStores) {
  for (unsigned threads : {1u, 3u}) {
    Engine engine(options(Backend::kAuto, threads));
    {
      Store a = Store::open(root(), engine);
      Store b = Store::open("direct://" + dir_.path().string(), engine);
      Plan plan;
      plan.add("obj.bin", 0, 100);
      for (const ItemView& view : a.fetch(plan)) EXPECT_EQ(view.size(), 100u);
      for (const ItemView& view : b.fetch(plan)) EXPECT_EQ(view.size(), 100u);
      Store moved = std::move(a);
      EXPECT_EQ(moved.root(), root());
    }
    EXPECT_EQ(engine.stats().arena_in_use_bytes, 0u);
  }
  // An engine that never did anything.
  for (int i = 0; i < 3; ++i) {
    Engine idle(options(Backend::kAuto, 2));
  }
}

TEST_F(EngineTest, SeveralThreadsFetchCorrectly) {
  Engine engine(options(Backend::kAuto, 2));
  ASSERT_EQ(engine.options().threads, 2u);
  for (uint64_t seed = 1; seed <= 4; ++seed) fetch_and_check(engine, seed, 60);
  EXPECT_EQ(engine.stats().items, 4u * 60u);
  EXPECT_EQ(engine.stats().errors, 0u);
}

TEST_F(EngineTest, ConcurrentFetchesFromSeveralCallerThreads) {
  EngineOptions o = options(Backend::kAuto, 2);
  o.arena_bytes = 32 * kMiB;  // room for all three plans: this is about threads, not backpressure
  Engine engine(o);
  std::vector<std::thread> callers;
  for (uint64_t t = 0; t < 3; ++t) callers.emplace_back([&, t] { fetch_and_check(engine, 100 + t, 30); });
  for (auto& caller : callers) caller.join();
  EXPECT_EQ(engine.stats().items, 90u);
}

}  // namespace
}  // namespace ringfetch
