// A long run against the fault server with resets mid-body, stalls and 503s mixed into the answers: every byte of
// every item must be right, and the process must not grow: resident memory and open descriptors, read from
// /proc/self, are the same at the end as after a warm-up. The request count comes from RINGFETCH_SOAK_REQUESTS
// (default 3,000: the CI variant); scripts/soak.sh runs it with 100,000 and prints the figures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "ringfetch/ringfetch.hpp"
#include "servers/fault_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::Fault;
using testing::FaultServer;

constexpr uint64_t kObjectBytes = 8 << 20;
constexpr uint64_t kSeed = 77;
constexpr uint64_t kDefaultRequests = 3000;
constexpr size_t kItemsPerRound = 64;
constexpr uint64_t kMaxItemBytes = 48 << 10;
constexpr size_t kRoundsPerStore = 40;       // a fresh Store now and then: teardown must not leak either
constexpr uint64_t kRssSlackBytes = 8 << 20;  // allocator noise

uint64_t soak_requests() {
  const char* text = std::getenv("RINGFETCH_SOAK_REQUESTS");
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : kDefaultRequests;
}

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// Descriptors once the process is quiet: the fault server runs in this process and closes its side of a
// connection when it sees the client's close, a moment later; the count is read until it holds still.
uint64_t settled_fd_count() {
  constexpr int kStableReadings = 5;
  constexpr int kMaxReadings = 200;
  uint64_t last = static_cast<uint64_t>(testing::open_fd_count());
  for (int stable = 0, reading = 0; stable < kStableReadings && reading < kMaxReadings; ++reading) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const uint64_t now = static_cast<uint64_t>(testing::open_fd_count());
    stable = now == last ? stable + 1 : 0;
    last = now;
  }
  return last;
}

constexpr bool kSanitized =
#if defined(__SANITIZE_ADDRESS__)
    true;  // ASan's quarantine and shadow memory grow by design: RSS is not a leak signal there
#else
    false;
#endif

StoreOptions soak_options() {
  StoreOptions o;
  o.http.connections = 4;
  o.http.max_attempts = 6;
  o.http.backoff_base_ms = 1;
  o.http.backoff_max_ms = 5;
  o.http.first_byte_timeout_ms = 300;  // a stall costs this much before the retry
  o.http.idle_timeout_ms = 300;
  o.part_size = 64 << 10;
  o.max_gap = 0;
  return o;
}

// Faults for the next requests of a round: a reset mid-body, a 503 and a stall among normal answers.
std::vector<Fault> round_faults(std::mt19937_64& random) {
  std::vector<Fault> faults;
  const auto normal = [&](size_t n) {
    for (size_t i = 0; i < n; ++i) faults.push_back(Fault::none());
  };
  normal(random() % 16);
  faults.push_back(Fault::reset_mid_body(random() % 4096));
  normal(random() % 16);
  faults.push_back(Fault::status_error(503, "SlowDown"));
  normal(random() % 16);
  faults.push_back(random() % 2 == 0 ? Fault::stall_after_head(random() % 2048) : Fault::stall());
  return faults;
}

TEST(Soak, ManyRequestsWithFaultsStayCorrectAndDoNotGrow) {
  const uint64_t target = soak_requests();
  FaultServer server(testing::make_pattern(kObjectBytes, kSeed));
  const std::vector<std::byte> object = testing::make_pattern(kObjectBytes, kSeed);
  Engine engine({.threads = 2, .arena_bytes = 16 << 20});
  std::mt19937_64 random(kSeed);
  uint64_t items = 0, rounds = 0;
  uint64_t warm_rss = 0, warm_fds = 0;
  bool warm = false;
  while (engine.stats().requests < target) {
    {
      Store store = Store::open(server.endpoint(), engine, soak_options());
      for (size_t r = 0; r < kRoundsPerStore && engine.stats().requests < target; ++r, ++rounds) {
        server.push_faults(round_faults(random));
        Plan plan;
        for (size_t i = 0; i < kItemsPerRound; ++i) {
          const uint64_t length = 1 + random() % kMaxItemBytes;
          plan.add("object", random() % (kObjectBytes - length), length);
        }
        FetchBatch batch = store.fetch(plan);
        while (std::optional<ItemView> item = batch.next()) {
          const PlanItem& asked = plan.items()[item->index()];
          ASSERT_EQ(item->size(), asked.length);
          ASSERT_EQ(0, std::memcmp(item->bytes().data(), object.data() + asked.offset, asked.length))
              << "wrong bytes in item " << item->index() << " of round " << rounds;
          ++items;
        }
      }
    }
    server.clear_faults();
    // Measured between stores, when no request is in flight and every connection of the old store is closed.
    if (!warm && engine.stats().requests >= target / 10) {
      warm = true;
      warm_rss = resident_bytes();
      warm_fds = settled_fd_count();
    }
  }
  const uint64_t final_rss = resident_bytes();
  const uint64_t final_fds = settled_fd_count();
  const Stats stats = engine.stats();
  std::printf("soak: %llu requests (%llu retried), %llu items in %llu rounds, %llu connections; "
              "RSS %.1f MiB after warm-up, %.1f MiB at the end; %llu descriptors after warm-up, %llu at the end\n",
              static_cast<unsigned long long>(stats.requests), static_cast<unsigned long long>(stats.retries),
              static_cast<unsigned long long>(items), static_cast<unsigned long long>(rounds),
              static_cast<unsigned long long>(stats.connections_opened), warm_rss / 1048576.0,
              final_rss / 1048576.0, static_cast<unsigned long long>(warm_fds),
              static_cast<unsigned long long>(final_fds));
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_GT(stats.retries, 0u) << "no fault was met";
  ASSERT_TRUE(warm);
  EXPECT_LE(final_fds, warm_fds) << "descriptors leak";
  if (!kSanitized) {
    EXPECT_LE(final_rss, warm_rss + kRssSlackBytes) << "resident memory grows";
  }
}

}  // namespace
}  // namespace ringfetch
