// The request path's policies against real peers: the retry policy's decisions, readable one-line errors from nginx,
// a pool whose idle connections the server closed, name resolution (once, off the rings, every address used, a dead
// address cooled down) and the slow-connection watch (a trickling nginx abandoned, the range resumed elsewhere).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "http/call.hpp"
#include "http/resolver.hpp"
#include "http/retry_policy.hpp"
#include "ringfetch/ringfetch.hpp"
#include "servers/fault_server.hpp"
#include "servers/loopback.hpp"
#include "servers/nginx_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using http::FailureStage;
using http::RetryPolicy;

constexpr uint64_t kMiB = 1 << 20;

http::Failure failure(FailureStage stage, bool retryable, bool reused = false, bool elsewhere = false) {
  http::Failure f;
  f.stage = stage;
  f.retryable = retryable;
  f.reused_connection = reused;
  f.elsewhere = elsewhere;
  return f;
}

TEST(RetryPolicyTest, StaleKeepAliveIsRetriedOnceAtOnceForFree) {
  HttpOptions options;
  options.max_attempts = 1;
  RetryPolicy policy(options);
  EXPECT_EQ(policy.after(failure(FailureStage::kBeforeAnswer, true, true)).action, RetryPolicy::Action::kNow);
  EXPECT_EQ(policy.failures(), 0u);
  // Only once: a second silent close on a reused connection counts (and here ends the budget of one attempt).
  EXPECT_EQ(policy.after(failure(FailureStage::kBeforeAnswer, true, true)).action, RetryPolicy::Action::kFail);
}

TEST(RetryPolicyTest, RefusedConnectMovesElsewhereAtOnceWithoutSpendingAnAttempt) {
  HttpOptions options;
  options.max_attempts = 2;
  RetryPolicy policy(options);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(policy.after(failure(FailureStage::kConnect, true, false, true)).action,
              RetryPolicy::Action::kElsewhereNow);
  }
  EXPECT_EQ(policy.failures(), 0u);
  // Nowhere else to go: the connect failure counts and waits a backoff like any other.
  EXPECT_EQ(policy.after(failure(FailureStage::kConnect, true)).action, RetryPolicy::Action::kAfterBackoff);
  EXPECT_EQ(policy.after(failure(FailureStage::kConnect, true)).action, RetryPolicy::Action::kFail);
}

TEST(RetryPolicyTest, BackoffIsBoundedAndTheBudgetCounted) {
  HttpOptions options;
  options.max_attempts = 4;
  options.backoff_base_ms = 10;
  options.backoff_max_ms = 25;
  RetryPolicy policy(options);
  for (int i = 0; i < 3; ++i) {
    const RetryPolicy::Decision d = policy.after(failure(FailureStage::kInAnswer, true));
    EXPECT_EQ(d.action, RetryPolicy::Action::kAfterBackoff);
    EXPECT_LE(d.delay_ms, 25u);
  }
  EXPECT_EQ(policy.after(failure(FailureStage::kAnswer, true)).action, RetryPolicy::Action::kFail);
  EXPECT_EQ(policy.failures(), 4u);
  RetryPolicy fresh(options);
  EXPECT_EQ(fresh.after(failure(FailureStage::kAnswer, false)).action, RetryPolicy::Action::kFail);
}

TEST(ReadableErrorTest, MarkupIsStrippedWhitespaceFoldedAndLengthBounded) {
  EXPECT_EQ(http::readable_body("<html><body><h1>Gone</h1>\r\n<p>try   later</p></body></html>"), "Gone try later");
  const std::string long_text = std::string(1000, 'x');
  const std::string cut = http::readable_body(long_text);
  EXPECT_LE(cut.size(), 210u);
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
  EXPECT_EQ(http::readable_body("<a>\n</a>"), "");
}

class NginxRequestPath : public ::testing::Test {
 protected:
  static constexpr uint64_t kSeed = 31;
  static constexpr uint64_t kBytes = 8 * kMiB;

  NginxRequestPath() { testing::write_pattern_file(dir_.path() / "blob", kBytes, kSeed); }

  static void expect_pattern(const ItemView& item, uint64_t offset) {
    const auto expected = testing::pattern_slice(offset, item.size(), kSeed);
    EXPECT_EQ(0, std::memcmp(item.bytes().data(), expected.data(), item.size())) << "item at " << offset;
  }

  // Fetches the whole blob in 1 MiB items and checks every byte.
  static void fetch_all(Store& store) {
    Plan plan;
    for (uint64_t offset = 0; offset < kBytes; offset += kMiB) plan.add("blob", offset, kMiB);
    uint64_t offset = 0;
    for (const ItemView& item : store.fetch(plan)) {
      expect_pattern(item, offset);
      offset += kMiB;
    }
    EXPECT_EQ(offset, kBytes);
  }

  testing::TempDir dir_{"ringfetch-request-path-"};
};

TEST_F(NginxRequestPath, ErrorAnswersAreOneReadableLine) {
  testing::NginxServer nginx(dir_.path());
  Engine engine({.threads = 1, .arena_bytes = 4 * kMiB});
  Store store = Store::open("http://127.0.0.1:" + std::to_string(nginx.http_port()), engine);
  try {
    store.size("no-such-object");
    FAIL() << "size of a missing object succeeded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kHttpStatus);
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_NE(what.find("HTTP 404 Not Found"), std::string::npos) << what;
    // The size comes from a GET of the first bytes, which carries the server's error document.
    EXPECT_EQ(what.rfind("GET http://127.0.0.1:", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_EQ(what.find('<'), std::string::npos) << what;
    EXPECT_LT(what.size(), 300u) << what;
  }
}

TEST_F(NginxRequestPath, IdleConnectionsClosedByTheServerCostNoAttempt) {
  testing::NginxOptions nginx_options;
  nginx_options.keepalive_timeout = std::chrono::milliseconds(300);
  testing::NginxServer nginx(dir_.path(), nginx_options);
  Engine engine({.threads = 1, .arena_bytes = 16 * kMiB});
  StoreOptions options;
  options.http.connections = 4;
  options.http.max_attempts = 1;  // any retry that counted would fail the fetch
  options.part_size = kMiB;
  Store store = Store::open("http://127.0.0.1:" + std::to_string(nginx.http_port()), engine, options);
  fetch_all(store);
  EXPECT_EQ(engine.stats().connections_opened, 4u);
  // nginx closes all four idle connections; the next fetch finds the first closed, drops the others and reconnects.
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  fetch_all(store);
  EXPECT_EQ(engine.stats().errors, 0u);
}

// Resolves one made-up name to the given loopback addresses (ports included) and counts lookups.
class FakeNames {
 public:
  explicit FakeNames(std::vector<uint16_t> ports) : ports_(std::move(ports)) {
    http::set_lookup_for_testing([this](const std::string& host, uint16_t, std::vector<http::Address>* out) -> Status {
      if (host != "pair.test") return Status(ErrorKind::kNetwork, "cannot resolve host '" + host + "'");
      lookups_.fetch_add(1);
      for (uint16_t port : ports_) {
        http::Address address;
        auto* in = reinterpret_cast<sockaddr_in*>(&address.storage);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.length = sizeof(sockaddr_in);
        out->push_back(address);
      }
      return {};
    });
  }
  ~FakeNames() { http::set_lookup_for_testing(nullptr); }
  uint64_t lookups() const { return lookups_.load(); }

 private:
  std::vector<uint16_t> ports_;
  std::atomic<uint64_t> lookups_{0};
};

TEST(ResolverTest, ConnectionsSpreadOverEveryAddressAndTheNameIsLookedUpOnce) {
  const std::vector<std::byte> object = testing::make_pattern(4 * kMiB, 41);
  testing::FaultServer first(object), second(object);
  FakeNames names({first.port(), second.port()});
  Engine engine({.threads = 1, .arena_bytes = 8 * kMiB});
  StoreOptions options;
  options.http.connections = 4;
  options.http.hedge = false;  // requests are counted at the servers
  options.part_size = 256 << 10;
  options.max_gap = 0;
  Store store = Store::open("http://pair.test:" + std::to_string(first.port()), engine, options);
  Plan plan;
  plan.add("object", 0, 4 * kMiB);
  for (const ItemView& item : store.fetch(plan)) EXPECT_EQ(0, std::memcmp(item.bytes().data(), object.data(), object.size()));
  EXPECT_GT(first.requests_received(), 0u);
  EXPECT_GT(second.requests_received(), 0u);
  EXPECT_EQ(first.requests_received() + second.requests_received(), 16u);
  EXPECT_EQ(names.lookups(), 1u);  // at open, on this thread; never per connection or on a ring
}

TEST(ResolverTest, ADeadAddressIsCooledDownAndTheLoadGoesOnElsewhere) {
  const std::vector<std::byte> object = testing::make_pattern(4 * kMiB, 42);
  testing::FaultServer live(object);
  const uint16_t dead = testing::pick_free_port(false);
  FakeNames names({dead, live.port()});
  Engine engine({.threads = 1, .arena_bytes = 8 * kMiB});
  StoreOptions options;
  options.http.connections = 4;
  options.http.max_attempts = 1;  // moving off a refused address must not spend the budget
  options.http.hedge = false;      // requests are counted at the server
  options.part_size = 256 << 10;
  options.max_gap = 0;
  Store store = Store::open("http://pair.test:" + std::to_string(live.port()), engine, options);
  for (int round = 0; round < 2; ++round) {
    Plan plan;
    plan.add("object", 0, 4 * kMiB);
    for (const ItemView& item : store.fetch(plan))
      EXPECT_EQ(0, std::memcmp(item.bytes().data(), object.data(), object.size()));
  }
  EXPECT_EQ(live.requests_received(), 32u);
  // At most the first connections went to the dead address; once cooled it is avoided.
  EXPECT_LE(engine.stats().retries, 4u);
}

TEST_F(NginxRequestPath, ATricklingConnectionIsAbandonedAndItsRangeResumedElsewhere) {
  // Two nginx behind one name, serving the same file: one trickling at 16 KiB/s, one at full speed.
  testing::NginxOptions slow_options;
  slow_options.extra_http_config = "limit_rate 16k;";
  testing::NginxServer slow(dir_.path(), slow_options);
  testing::NginxServer fast(dir_.path());
  FakeNames names({slow.http_port(), fast.http_port()});
  Engine engine({.threads = 1, .arena_bytes = 16 * kMiB});
  StoreOptions options;
  options.http.connections = 2;
  options.http.min_throughput_bytes_per_s = 256 << 10;
  options.http.slow_grace_ms = 200;
  options.part_size = 2 * kMiB;
  options.max_gap = 0;
  Store store = Store::open("http://pair.test:" + std::to_string(fast.http_port()), engine, options);
  Plan plan;
  plan.add("blob", 0, kBytes);
  for (const ItemView& item : store.fetch(plan)) expect_pattern(item, 0);
  const Stats stats = engine.stats();
  EXPECT_GE(stats.slow_connections, 1u);
  EXPECT_EQ(stats.errors, 0u);
  // The abandoned range went on from the byte it had reached: no body byte was received twice.
  EXPECT_EQ(stats.bytes_body, kBytes);
}

// The adaptive gap: with max_gap left at its default, a store plans with first-byte latency x per-connection
// throughput as measured by its earlier requests. Against the same server with no first-byte delay and with 100 ms,
// items 16 MiB apart are fetched one request each in the first case and coalesced in the second.
uint64_t requests_with_adaptive_gap(std::chrono::milliseconds delay, uint64_t* chosen_gap) {
  constexpr uint64_t kStride = 17 * kMiB;
  constexpr uint64_t kItems = 8;
  const std::vector<std::byte> object = testing::make_pattern(kItems * kStride, 43);
  testing::FaultServerOptions server_options;
  server_options.first_byte_delay = delay;
  testing::FaultServer server(object, server_options);
  Engine engine({.threads = 1, .arena_bytes = 128 * kMiB});
  StoreOptions options;
  options.http.connections = 2;
  options.http.hedge = false;
  options.part_size = 64 * kMiB;
  Store store = Store::open(server.endpoint(), engine, options);
  {
    Plan warm;  // 16 items of 1 MiB, 2 MiB apart (more than the default gap): 16 requests to time
    for (uint64_t i = 0; i < 16; ++i) warm.add("object", i * 3 * kMiB, kMiB);
    store.fetch(warm).wait();
  }
  engine.reset_stats();
  Plan plan;
  for (uint64_t i = 0; i < kItems; ++i) plan.add("object", i * kStride, kMiB);
  uint64_t index = 0;
  for (const ItemView& item : store.fetch(plan)) {
    EXPECT_EQ(0, std::memcmp(item.bytes().data(), object.data() + index * kStride, kMiB));
    ++index;
  }
  *chosen_gap = engine.stats().max_gap;
  return engine.stats().requests;
}

TEST(AdaptiveGapTest, TheGapFollowsFirstByteLatencyTimesThroughput) {
  uint64_t near_gap = 0, far_gap = 0;
  const uint64_t near_requests = requests_with_adaptive_gap(std::chrono::milliseconds(0), &near_gap);
  const uint64_t far_requests = requests_with_adaptive_gap(std::chrono::milliseconds(100), &far_gap);
  std::printf("adaptive gap: %llu bytes with no first-byte delay, %llu with 100 ms\n",
              static_cast<unsigned long long>(near_gap), static_cast<unsigned long long>(far_gap));
  EXPECT_LT(near_gap, 16 * kMiB);
  EXPECT_GE(far_gap, 16 * kMiB);
  EXPECT_EQ(near_requests, 8u);  // one per item: reading 16 MiB to skip a request costs more than the request
  EXPECT_LT(far_requests, 8u);   // gaps read through instead of paying 100 ms per request
}

}  // namespace
}  // namespace ringfetch
