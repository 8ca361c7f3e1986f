// Faults no real server produces on demand, from our own loopback fault server: every one ends in the right bytes
// or a clear error — never a hang, short data or a leaked descriptor.
#include <gtest/gtest.h>

#include <cstring>

#include "ringfetch/ringfetch.hpp"
#include "servers/fault_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::Fault;
using testing::FaultServer;

constexpr uint64_t kObjectBytes = 4 << 20;
constexpr uint64_t kSeed = 21;

class HttpFaults : public ::testing::Test {
 protected:
  HttpFaults() : server_(testing::make_pattern(kObjectBytes, kSeed)) {}


  StoreOptions options() const {
    StoreOptions o;
    o.http.connections = 1;
    o.http.max_attempts = 4;
    o.http.backoff_base_ms = 1;
    o.http.backoff_max_ms = 5;
    // Generous for answers that come (a loaded sanitizer build must not time out by accident); the stall tests
    // shorten them.
    o.http.first_byte_timeout_ms = 3000;
    o.http.idle_timeout_ms = 3000;
    o.part_size = 1 << 20;
    return o;
  }

  // Fetches [offset, offset+length) as one item and checks every byte; returns the engine's stats.
  Stats fetch_ok(uint64_t offset, uint64_t length, StoreOptions o) {
    Engine engine({.threads = 1, .arena_bytes = 16 << 20});
    Store store = Store::open(server_.endpoint(), engine, o);
    Plan plan;
    plan.add("object", offset, length);
    size_t n = 0;
    for (const ItemView& item : store.fetch(plan)) {
      auto expected = testing::pattern_slice(offset, length, kSeed);
      EXPECT_EQ(0, std::memcmp(item.bytes().data(), expected.data(), length));
      ++n;
    }
    EXPECT_EQ(n, 1u);
    return engine.stats();
  }

  // Fetches and expects an error whose message contains every one of `needles`.
  Error fetch_error(uint64_t offset, uint64_t length, StoreOptions o, std::vector<std::string> needles) {
    Engine engine({.threads = 1, .arena_bytes = 16 << 20});
    Store store = Store::open(server_.endpoint(), engine, o);
    Plan plan;
    plan.add("object", offset, length);
    try {
      store.fetch(plan).wait();
    } catch (const Error& e) {
      for (const std::string& needle : needles)
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "'" << needle << "' not in: " << e.what();
      return e;
    }
    ADD_FAILURE() << "fetch succeeded but an error was expected";
    return Error(ErrorKind::kInvalidArgument, "");
  }

  std::ptrdiff_t fds_before_ = testing::open_fd_count();  // before the server: its own descriptors are gone once it stops
  FaultServer server_;
  void TearDown() override {
    server_.stop();
    EXPECT_EQ(testing::open_fd_count(), fds_before_);
  }
};

TEST_F(HttpFaults, ResetMidBodyResumesFromTheByteReached) {
  server_.push_fault(Fault::reset_mid_body(100000));
  Stats stats = fetch_ok(1000, 500000, options());
  EXPECT_EQ(stats.retries, 1u);
  auto log = server_.request_log();
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log[0].header("Range").value_or(""), "bytes=1000-500999");
  // The retry asks only for what is still missing (the reset may land a little before 100000 bytes).
  const std::string second = log[1].header("Range").value_or("");
  ASSERT_EQ(second.rfind("bytes=", 0), 0u) << second;
  const uint64_t resumed_at = std::stoull(second.substr(6));
  EXPECT_GT(resumed_at, 1000u);
  EXPECT_LE(resumed_at, 101000u);
}

TEST_F(HttpFaults, StallEndsInATimeoutAfterTheRetryBudget) {
  for (int i = 0; i < 4; ++i) server_.push_fault(Fault::stall());
  StoreOptions o = options();
  o.http.max_attempts = 2;
  o.http.first_byte_timeout_ms = 300;
  o.http.idle_timeout_ms = 300;
  Error e = fetch_error(0, 1000, o, {"timed out", "after 2 attempts", "bytes 0-999"});
  EXPECT_EQ(e.kind(), ErrorKind::kTimeout);
}

TEST_F(HttpFaults, StallInsideTheBodyTimesOut) {
  for (int i = 0; i < 4; ++i) server_.push_fault(Fault::stall_after_head(5000));
  StoreOptions o = options();
  o.http.max_attempts = 2;
  o.http.first_byte_timeout_ms = 300;
  o.http.idle_timeout_ms = 300;
  Error e = fetch_error(0, 100000, o, {"timed out", "after 2 attempts"});
  EXPECT_EQ(e.kind(), ErrorKind::kTimeout);
}

TEST_F(HttpFaults, BurstOf503IsRetriedThenSucceeds) {
  server_.push_faults({Fault::status_error(503), Fault::status_error(503), Fault::status_error(503)});
  Stats stats = fetch_ok(0, 300000, options());
  EXPECT_EQ(stats.retries, 3u);
}

TEST_F(HttpFaults, Error500ForeverExhaustsTheBudget) {
  for (int i = 0; i < 10; ++i) server_.push_fault(Fault::status_error(500));
  Error e = fetch_error(0, 1000, options(), {"HTTP 500", "after 4 attempts"});
  EXPECT_EQ(e.kind(), ErrorKind::kHttpStatus);
  EXPECT_EQ(e.http_status(), 500);
}

TEST_F(HttpFaults, NotFoundIsNotRetried) {
  server_.push_fault(Fault::status_error(404, "NoSuchKey"));
  Error e = fetch_error(0, 1000, options(), {"HTTP 404"});
  EXPECT_EQ(server_.requests_received(), 1u);
}

TEST_F(HttpFaults, TruncatedBodyIsRetriedAndNeverShort) {
  server_.push_fault(Fault::truncated_body(1000));
  Stats stats = fetch_ok(0, 200000, options());
  EXPECT_EQ(stats.retries, 1u);
  for (int i = 0; i < 10; ++i) server_.push_fault(Fault::truncated_body(10));
  Error e = fetch_error(0, 200000, options(), {"truncated body", "after 4 attempts"});
  EXPECT_EQ(e.kind(), ErrorKind::kIntegrity);
}

TEST_F(HttpFaults, WrongContentRangeIsAnIntegrityError) {
  server_.push_fault(Fault::wrong_content_range(1));
  Error e = fetch_error(100, 1000, options(), {"Content-Range", "bytes 100-1099"});
  EXPECT_EQ(e.kind(), ErrorKind::kIntegrity);
}

TEST_F(HttpFaults, OversizedHeadIsRefused) {
  server_.push_fault(Fault::oversized_head());
  fetch_error(0, 1000, options(), {"bad response from", "HTTP response head"});
}

TEST_F(HttpFaults, GarbageHeadIsRefused) {
  server_.push_fault(Fault::garbage_head());
  fetch_error(0, 1000, options(), {"malformed"});
}

TEST_F(HttpFaults, CloseAfterHeadIsRetried) {
  server_.push_fault(Fault::close_after_head());
  Stats stats = fetch_ok(0, 100000, options());
  EXPECT_EQ(stats.retries, 1u);
}

TEST_F(HttpFaults, IdleKeepAliveCloseIsRetriedWithoutPenalty) {
  Engine engine({.threads = 1, .arena_bytes = 16 << 20});
  Store store = Store::open(server_.endpoint(), engine, options());
  Plan plan;
  plan.add("object", 0, 1000);
  store.fetch(plan).wait();  // leaves one kept-alive connection in the pool
  server_.push_fault(Fault::close_idle());
  store.fetch(plan).wait();
  EXPECT_EQ(engine.stats().retries, 0u);
  EXPECT_EQ(server_.connections_accepted(), 2u);
}

TEST_F(HttpFaults, Full200IsCutToTheRange) {
  server_.push_fault(Fault::full_200());
  fetch_ok(12345, 6789, options());
}

TEST_F(HttpFaults, ObjectChangedMidReadIsAnError) {
  Engine engine({.threads = 1, .arena_bytes = 16 << 20});
  StoreOptions o = options();
  o.part_size = 64 << 10;
  Store store = Store::open(server_.endpoint(), engine, o);
  Plan plan;
  plan.add("object", 0, 1 << 20);  // 16 requests on one connection
  // The first answer pins the ETag; the object is replaced before the second.
  server_.push_faults({Fault::none(), Fault::change_etag()});
  try {
    store.fetch(plan).wait();
    FAIL() << "no error although the object changed mid-read";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIntegrity);
    EXPECT_NE(std::string(e.what()).find("changed during the read"), std::string::npos) << e.what();
  }
  // The second request carried If-Match with the pinned ETag.
  auto log = server_.request_log();
  ASSERT_GE(log.size(), 2u);
  EXPECT_FALSE(log[0].header("If-Match").has_value());
  EXPECT_TRUE(log[1].header("If-Match").has_value());
}

TEST_F(HttpFaults, DroppingABatchCancelsAStalledRead) {
  for (int i = 0; i < 4; ++i) server_.push_fault(Fault::stall());
  StoreOptions o = options();
  o.http.first_byte_timeout_ms = 600'000;  // the read would wait ten minutes without the cancellation
  o.http.idle_timeout_ms = 600'000;
  Engine engine({.threads = 1, .arena_bytes = 16 << 20});
  Store store = Store::open(server_.endpoint(), engine, o);
  Plan plan;
  plan.add("object", 0, 1000);
  {
    FetchBatch batch = store.fetch(plan);
    ASSERT_TRUE(server_.wait_for_requests(1, std::chrono::seconds(10)));
  }  // must return once the read is cancelled, not after its timeout
  EXPECT_EQ(server_.requests_received(), 1u);
  EXPECT_EQ(engine.stats().retries, 0u);
}

TEST_F(HttpFaults, InterimAnswerBeforeTheRealOneIsSkipped) {
  server_.push_fault(Fault::interim_answer());
  Stats stats = fetch_ok(1000, 3000, options());
  EXPECT_EQ(stats.retries, 0u);
  fetch_ok(5000, 100, options());  // the connection is still in step
}

TEST_F(HttpFaults, ChunkedRangedBodyIsRefusedNotWrittenIntoTheItem) {
  server_.push_fault(Fault::chunked_body());
  Error e = fetch_error(0, 5000, options(), {"chunked"});
  EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
}

}  // namespace
}  // namespace ringfetch
