// Ranged fetches over HTTP and HTTPS against a real nginx on loopback: random plans compared byte for byte,
// counters (requests, user-space copies), the 200-instead-of-206 path, TLS verification, IPv6, readers, errors.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "engine/range_planner.hpp"
#include "http/http_test_env.hpp"
#include "ringfetch/ringfetch.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::HttpTestData;
using testing::http_test_data;

void expect_pattern(const ItemView& item, uint64_t seed) {
  auto expected = testing::pattern_slice(item.offset(), item.size(), seed);
  ASSERT_EQ(item.size(), expected.size());
  ASSERT_EQ(0, std::memcmp(item.bytes().data(), expected.data(), expected.size()))
      << "item " << item.index() << " at offset " << item.offset();
}

// Items of log-spread sizes (1 B .. max_item) separated by log-spread gaps (0 .. max_gap), some overlapping.
Plan random_plan(std::mt19937_64& rng, uint64_t object_size, size_t max_items, uint64_t max_item, uint64_t max_gap) {
  Plan plan;
  std::uniform_real_distribution<double> unit(0, 1);
  uint64_t pos = 0;
  while (plan.size() < max_items) {
    const uint64_t gap = unit(rng) < 0.3 ? 0 : static_cast<uint64_t>(std::pow(double(max_gap), unit(rng)));
    const uint64_t len = std::max<uint64_t>(1, static_cast<uint64_t>(std::pow(double(max_item), unit(rng))));
    if (unit(rng) < 0.05 && pos > 100) pos -= std::min<uint64_t>(pos, len / 2 + 1);  // overlap the previous item
    else pos += gap;
    if (pos + len > object_size) break;
    plan.add("blob", pos, len);
    pos += len;
  }
  return plan;
}

uint64_t planned_requests(const Plan& plan, uint64_t max_gap, uint64_t part_size) {
  std::vector<engine::PlannerItem> items;
  for (const PlanItem& item : plan.items()) items.push_back({0, item.offset, item.length, false});
  engine::PlannerOptions options;
  options.max_gap = max_gap;
  options.part_size = part_size;
  engine::PlanLayout layout;
  EXPECT_TRUE(engine::plan_ranges(items, options, {}, &layout).ok());
  return layout.requests.size();
}

void fetch_and_verify(Store& store, const Plan& plan) {
  size_t delivered = 0;
  for (const ItemView& item : store.fetch(plan)) {
    expect_pattern(item, HttpTestData::kBlobSeed);
    ++delivered;
  }
  EXPECT_EQ(delivered, plan.size());
}

TEST(HttpFetch, RandomPlansMatchTheFileByteForByte) {
  auto& data = http_test_data();
  Engine engine({.threads = 2, .arena_bytes = 192ull << 20});
  StoreOptions options;
  options.max_gap = 1 << 20;
  options.part_size = 8 << 20;
  options.http.connections = 8;
  Store store = Store::open(data.http_root(), engine, options);
  std::mt19937_64 rng(7);
  for (int round = 0; round < 6; ++round) {
    Plan plan = random_plan(rng, HttpTestData::kBlobBytes, round < 3 ? 3000 : 40, 64ull << 20, 64ull << 20);
    engine.reset_stats();
    fetch_and_verify(store, plan);
    EXPECT_EQ(engine.stats().requests, planned_requests(plan, *options.max_gap, *options.part_size));
    EXPECT_EQ(engine.stats().errors, 0u);
  }
}

TEST(HttpFetch, WholeObjectInPartsCopiesUnderOneThousandthInUserSpace) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 192ull << 20});
  StoreOptions options;
  options.part_size = 8 << 20;
  Store store = Store::open(data.http_root(), engine, options);
  Plan plan;
  plan.add("blob", 0, HttpTestData::kBlobBytes);
  fetch_and_verify(store, plan);
  const Stats stats = engine.stats();
  EXPECT_EQ(stats.requests, HttpTestData::kBlobBytes / (8 << 20));
  EXPECT_EQ(stats.bytes_body, HttpTestData::kBlobBytes);
  EXPECT_EQ(stats.bytes_fetched, stats.bytes_requested);
  EXPECT_LT(double(stats.bytes_copied_user), 0.001 * double(stats.bytes_body)) << stats.bytes_copied_user;
}

TEST(HttpFetch, CoalescedGapsAreTheOnlyOverFetch) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 64 << 20});
  StoreOptions options;
  options.max_gap = 4096;
  Store store = Store::open(data.http_root(), engine, options);
  Plan plan;
  plan.add("blob", 0, 1000);
  plan.add("blob", 3000, 1000);    // gap 2000: coalesced
  plan.add("blob", 100000, 10);    // gap > max_gap: new request
  fetch_and_verify(store, plan);
  const Stats stats = engine.stats();
  EXPECT_EQ(stats.requests, 2u);
  EXPECT_EQ(stats.bytes_fetched - stats.bytes_requested, 2000u);
}

TEST(HttpFetch, HttpsRandomPlansMatch) {
  auto& data = http_test_data();
  Engine engine({.threads = 2, .arena_bytes = 128 << 20});
  StoreOptions options;
  options.http.ca_file = data.nginx->ca_file().string();
  options.http.connections = 4;
  Store store = Store::open(data.https_root(), engine, options);
  std::mt19937_64 rng(9);
  for (int round = 0; round < 3; ++round) {
    Plan plan = random_plan(rng, HttpTestData::kBlobBytes, 300, 16ull << 20, 16ull << 20);
    fetch_and_verify(store, plan);
  }
  const Stats stats = engine.stats();
  EXPECT_EQ(stats.errors, 0u);
  // Kept alive across the three fetches; a hedge's losing attempt closes its connection (its answer may still come).
  EXPECT_LE(stats.connections_opened, 4u + stats.hedges_sent);
  EXPECT_EQ(stats.tls_handshakes, stats.connections_opened);
}

// Connections opened after the first handshake resume its TLS session instead of a full handshake.
TEST(HttpFetch, NewTlsConnectionsResumeTheSession) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 32 << 20});
  StoreOptions options;
  options.http.ca_file = data.nginx->ca_file().string();
  options.http.connections = 4;
  options.http.hedge = false;  // a hedge abandoned mid-handshake would be a connection that never resumed
  options.part_size = 1 << 20;
  Store store = Store::open(data.https_root(), engine, options);
  Plan one;
  one.add("blob", 0, 1000);
  fetch_and_verify(store, one);  // one connection, one full handshake
  Plan parallel;
  parallel.add("blob", 0, 32 << 20);  // 32 parts over up to four connections: more connections open
  fetch_and_verify(store, parallel);
  const Stats stats = engine.stats();
  ASSERT_GE(stats.connections_opened, 2u);
  EXPECT_LE(stats.connections_opened, 4u + stats.hedges_sent);
  EXPECT_EQ(stats.tls_handshakes, stats.connections_opened);
  EXPECT_EQ(stats.tls_resumptions, stats.connections_opened - 1);  // all but the very first
}

TEST(HttpFetch, ServerIgnoringRangeStillDeliversTheRightBytes) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 32 << 20});
  Store store = Store::open("http://127.0.0.1:" + std::to_string(data.nginx->no_ranges_port()), engine);
  Plan plan;
  plan.add("small", 0, 100);
  plan.add("small", 500000, 4096);
  plan.add("small", HttpTestData::kSmallBytes - 10, 10);
  size_t n = 0;
  for (const ItemView& item : store.fetch(plan)) {
    expect_pattern(item, HttpTestData::kSmallSeed);
    ++n;
  }
  EXPECT_EQ(n, 3u);
}

TEST(HttpFetch, TlsRejectsWrongHostNameAndUnknownCa) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 8 << 20});
  Plan plan;
  plan.add("small", 0, 10);
  StoreOptions wrong_ca;
  wrong_ca.http.ca_file = data.nginx->other_ca_file().string();
  wrong_ca.http.max_attempts = 1;
  Store unknown_ca = Store::open(data.https_root(), engine, wrong_ca);
  try {
    unknown_ca.fetch(plan).wait();
    FAIL() << "a certificate from an unknown CA was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("certificate verification failed"), std::string::npos) << e.what();
  }
  StoreOptions right_ca;
  right_ca.http.ca_file = data.nginx->ca_file().string();
  Store wrong_host =
      Store::open("https://localhost:" + std::to_string(data.nginx->wrong_host_https_port()), engine, right_ca);
  try {
    wrong_host.fetch(plan).wait();
    FAIL() << "a certificate for another host name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("certificate verification failed"), std::string::npos) << e.what();
  }
  StoreOptions no_verify;
  no_verify.http.verify_tls = false;
  Store unverified =
      Store::open("https://localhost:" + std::to_string(data.nginx->wrong_host_https_port()), engine, no_verify);
  for (const ItemView& item : unverified.fetch(plan)) expect_pattern(item, HttpTestData::kSmallSeed);
}

TEST(HttpFetch, MissingCaFileIsAClearError) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 8 << 20});
  StoreOptions options;
  options.http.ca_file = "/nonexistent/ca.pem";
  try {
    Store::open(data.https_root(), engine, options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ca.pem"), std::string::npos);
  }
}

TEST(HttpFetch, Ipv6LiteralEndpoint) {
  auto& data = http_test_data();
  if (data.nginx->ipv6_port() == 0) GTEST_SKIP() << "no IPv6 loopback here";
  Engine engine({.threads = 1, .arena_bytes = 8 << 20});
  Store store = Store::open("http://[::1]:" + std::to_string(data.nginx->ipv6_port()), engine);
  Plan plan;
  plan.add("small", 1234, 5678);
  for (const ItemView& item : store.fetch(plan)) expect_pattern(item, HttpTestData::kSmallSeed);
}

TEST(HttpFetch, SizeReaderAndKeysNeedingEncoding) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 32 << 20});
  Store store = Store::open(data.http_root(), engine);
  EXPECT_EQ(store.size("small"), HttpTestData::kSmallBytes);
  EXPECT_EQ(store.size("dir with space+plus"), 4096u);
  Reader reader = store.reader("small", {{100, 1000}, {5000, 100}});
  reader.seek(150);
  ItemView a = reader.read(100);
  expect_pattern(a, HttpTestData::kSmallSeed);
  reader.seek(5000);
  std::vector<std::byte> buf(100);
  ASSERT_EQ(reader.readinto(buf), 100u);
  EXPECT_EQ(buf, testing::pattern_slice(5000, 100, HttpTestData::kSmallSeed));
  Reader whole = store.reader("small");
  uint64_t total = 0;
  for (ItemView v = whole.read(1 << 20); v.size() > 0; v = whole.read(1 << 20)) {
    expect_pattern(v, HttpTestData::kSmallSeed);
    total += v.size();
  }
  EXPECT_EQ(total, HttpTestData::kSmallBytes);
}

TEST(HttpFetch, ErrorsNameTheProblem) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 8 << 20});
  Store store = Store::open(data.http_root(), engine);
  Plan missing;
  missing.add("no-such-object", 0, 10);
  try {
    store.fetch(missing).wait();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kHttpStatus);
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_NE(std::string(e.what()).find("no-such-object"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  }
  Plan past_end;
  past_end.add("small", HttpTestData::kSmallBytes + 10, 10);
  try {
    store.fetch(past_end).wait();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not satisfiable"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Store::open("http://", engine), Error);
  try {
    StoreOptions options;
    options.http.max_attempts = 2;
    options.http.backoff_base_ms = 1;
    Store closed = Store::open("http://127.0.0.1:1", engine, options);
    Plan plan;
    plan.add("x", 0, 1);
    closed.fetch(plan).wait();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNetwork);
    EXPECT_NE(std::string(e.what()).find("after 2 attempts"), std::string::npos) << e.what();
  }
}

TEST(HttpFetch, ConnectionsAndDescriptorsAreReleased) {
  auto& data = http_test_data();
  const std::ptrdiff_t before = testing::open_fd_count();
  {
    Engine engine({.threads = 2, .arena_bytes = 32 << 20});
    StoreOptions options;
    options.http.connections = 6;
    options.part_size = 1 << 20;
    Store store = Store::open(data.http_root(), engine, options);
    Plan plan;
    plan.add("blob", 0, 24 << 20);
    fetch_and_verify(store, plan);
  }
  EXPECT_EQ(testing::open_fd_count(), before);
}

// The last reference to a fetch (and with it the store's connection pools) can drop on any engine thread while
// the engine is shutting down; tearing down must never wait on a thread that has already stopped.
TEST(HttpFetch, ShutdownRightAfterAFetchNeverHangs) {
  auto& data = http_test_data();
  for (int round = 0; round < 30; ++round) {
    Engine engine({.threads = 2, .arena_bytes = 8 << 20});
    StoreOptions options;
    options.http.connections = 4;
    options.part_size = 64 << 10;
    Store store = Store::open(data.http_root(), engine, options);
    Plan plan;
    plan.add("small", 0, 256 << 10);
    store.fetch(plan).wait();
  }
}

// A request that cannot be written (here: a header value with CR LF, which would inject a header) fails at once
// and gives its connection slot back, so later calls on the same pool still run instead of waiting forever.
TEST(HttpFetch, UnwritableRequestsFailWithoutLeakingConnectionSlots) {
  auto& data = http_test_data();
  Engine engine({.threads = 1, .arena_bytes = 8 << 20});
  StoreOptions options;
  options.http.connections = 1;
  options.http.headers = {{"X-Note", "a\r\nInjected: yes"}};
  Store store = Store::open(data.http_root(), engine, options);
  Plan plan;
  plan.add("small", 0, 10);
  for (int round = 0; round < 3; ++round) {
    try {
      store.fetch(plan).wait();
      FAIL() << "a header with CR LF was sent";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find("invalid HTTP request"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ringfetch
