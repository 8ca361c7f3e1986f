// Allocations per request: a running fetch takes its read tasks from a per-fetch slab and posts them intrusively,
// and an HTTP read reuses its task's call (request head, parser, wire buffer), so the number of heap allocations of
// a fetch does not grow with its number of requests. Counted with a replacement global operator new (this binary
// only), over file:// fetches of the same bytes cut into 512 and 8192 requests, and over http:// fetches from a
// loopback nginx of the same bytes cut into 1,000 and 10,000 ranged GETs of 4 KiB.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "ringfetch/ringfetch.hpp"
#include "servers/nginx_server.hpp"
#include "servers/temp_dir.hpp"

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// The replacements below pair malloc with free on purpose; GCC cannot tell they replace the global operators.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
void* operator new(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) { return operator new(size, align); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace ringfetch {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Allocations made by one fetch of a `bytes` item (cut into the store's part size), from fetch() to wait().
uint64_t allocations_of_fetch(Engine& engine, Store& store, uint64_t* requests, uint64_t bytes = 32 * kMiB) {
  Plan plan;
  plan.add("blob.bin", 0, bytes);
  engine.reset_stats();
  const uint64_t before = g_allocations.load();
  {
    FetchBatch batch = store.fetch(plan);
    batch.wait();
  }
  const uint64_t after = g_allocations.load();
  *requests = engine.stats().requests;
  return after - before;
}

TEST(RequestAllocationsTest, AFetchAllocatesTheSameWhateverItsNumberOfRequests) {
  testing::TempDir dir;
  testing::write_pattern_file(dir.path() / "blob.bin", 32 * kMiB, 3);
  const std::string root = "file://" + dir.path().string();
  EngineOptions options;
  options.arena_bytes = 64 * kMiB;
  Engine engine(options);
  StoreOptions coarse, fine;
  coarse.part_size = 64 * 1024;
  fine.part_size = 4 * 1024;
  Store coarse_store = Store::open(root, engine, coarse);
  Store fine_store = Store::open(root, engine, fine);
  uint64_t warm_requests = 0;
  allocations_of_fetch(engine, coarse_store, &warm_requests);  // maps and registers the arena once
  uint64_t few_requests = 0, many_requests = 0;
  const uint64_t few = allocations_of_fetch(engine, coarse_store, &few_requests);
  const uint64_t many = allocations_of_fetch(engine, fine_store, &many_requests);
  ASSERT_EQ(few_requests, 512u);
  ASSERT_EQ(many_requests, 8192u);
  ::testing::Test::RecordProperty("allocations_512_requests", std::to_string(few));
  ::testing::Test::RecordProperty("allocations_8192_requests", std::to_string(many));
  std::printf("allocations per fetch: %llu for 512 requests, %llu for 8192 requests\n",
              static_cast<unsigned long long>(few), static_cast<unsigned long long>(many));
  // 7680 more requests may cost a few more allocations (vectors sized by the plan grow once), never one each.
  EXPECT_LT(many, few + 64) << "allocations grow with the number of requests";
}

TEST(RequestAllocationsTest, AnHttpFetchAllocatesTheSameWhateverItsNumberOfRequests) {
  constexpr uint64_t kBytes = 10'000 * 4096;
  testing::TempDir dir;
  testing::write_pattern_file(dir.path() / "blob.bin", kBytes, 5);
  testing::NginxServer nginx(dir.path());
  const std::string root = "http://127.0.0.1:" + std::to_string(nginx.http_port());
  EngineOptions options;
  options.threads = 1;
  options.arena_bytes = 64 * kMiB;
  Engine engine(options);
  StoreOptions coarse, fine;
  coarse.part_size = 40 * 1024;
  fine.part_size = 4 * 1024;
  coarse.max_gap = fine.max_gap = 0;
  Store coarse_store = Store::open(root, engine, coarse);
  Store fine_store = Store::open(root, engine, fine);
  uint64_t requests = 0;
  // Warm both stores: the arena is mapped and registered, connections opened, per-task calls made.
  allocations_of_fetch(engine, coarse_store, &requests, kBytes);
  allocations_of_fetch(engine, fine_store, &requests, kBytes);
  uint64_t few_requests = 0, many_requests = 0;
  const uint64_t few = allocations_of_fetch(engine, coarse_store, &few_requests, kBytes);
  const uint64_t many = allocations_of_fetch(engine, fine_store, &many_requests, kBytes);
  ASSERT_EQ(few_requests, 1'000u);
  ASSERT_EQ(many_requests, 10'000u);
  EXPECT_EQ(engine.stats().retries, 0u);
  ::testing::Test::RecordProperty("http_allocations_1000_requests", std::to_string(few));
  ::testing::Test::RecordProperty("http_allocations_10000_requests", std::to_string(many));
  std::printf("allocations per http fetch: %llu for 1,000 requests, %llu for 10,000 requests\n",
              static_cast<unsigned long long>(few), static_cast<unsigned long long>(many));
  EXPECT_LT(many, few + 64) << "allocations grow with the number of HTTP requests";
}

}  // namespace
}  // namespace ringfetch
