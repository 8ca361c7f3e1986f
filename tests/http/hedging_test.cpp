// Hedged GETs against our fault server's straggler mode (every N-th answer's first byte held back): late requests
// are sent again, the first answer wins, the loser is abandoned before it reads a body byte (so no byte arrives
// twice), and the budget caps the extra requests.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "ringfetch/ringfetch.hpp"
#include "servers/fault_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

constexpr uint64_t kPart = 16 << 10;
constexpr uint64_t kSeed = 51;

struct LoadRun {
  Stats stats;
  double seconds = 0;
  uint64_t server_requests = 0;
};

// Fetches `parts` parts of kPart bytes, one request each, from a fault server that delays every `every`-th answer
// by `delay`, and checks every byte.
LoadRun fetch_with_stragglers(uint64_t parts, uint64_t every, std::chrono::milliseconds delay, bool hedge) {
  const std::vector<std::byte> object = testing::make_pattern(parts * kPart, kSeed);
  testing::FaultServerOptions server_options;
  server_options.straggler_every = every;
  server_options.straggler_delay = delay;
  testing::FaultServer server(object, server_options);
  Engine engine({.threads = 1, .arena_bytes = 16 << 20});
  StoreOptions options;
  options.http.connections = 8;
  options.http.hedge = hedge;
  options.http.hedge_min_ms = 20;
  options.part_size = kPart;
  options.max_gap = 0;
  Store store = Store::open(server.endpoint(), engine, options);
  Plan plan;
  plan.add("object", 0, object.size());
  const auto start = std::chrono::steady_clock::now();
  for (const ItemView& item : store.fetch(plan)) EXPECT_EQ(0, std::memcmp(item.bytes().data(), object.data(), object.size()));
  LoadRun run;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.stats = engine.stats();
  run.server_requests = server.requests_received();
  return run;
}

TEST(Hedging, StragglersAreHedgedTheFirstAnswerWinsAndNoByteArrivesTwice) {
  const LoadRun run = fetch_with_stragglers(200, 33, std::chrono::milliseconds(500), true);
  std::printf("200 requests, every 33rd answer 500 ms late, hedged: %.3f s, %llu hedges, %llu won\n", run.seconds,
              static_cast<unsigned long long>(run.stats.hedges_sent),
              static_cast<unsigned long long>(run.stats.hedges_won));
  EXPECT_GE(run.stats.hedges_sent, 1u);
  EXPECT_GE(run.stats.hedges_won, 1u);
  EXPECT_EQ(run.stats.errors, 0u);
  // A hedge is at most one more request at the server, and the losers read no body: the body bytes are the
  // object's.
  EXPECT_LE(run.server_requests, 200u + run.stats.hedges_sent);
  EXPECT_EQ(run.stats.bytes_body, 200 * kPart);
  EXPECT_EQ(run.stats.requests, 200u);
}

TEST(Hedging, TheBudgetCapsExtraRequests) {
  // Half of all answers late: hedging every one of them would double the load.
  const LoadRun run = fetch_with_stragglers(120, 2, std::chrono::milliseconds(60), true);
  EXPECT_LE(run.stats.hedges_sent, 120u * 5 / 100 + 2);
  // A hedge still waiting for a connection when its rival answers never reaches the server.
  EXPECT_LE(run.server_requests, 120u + run.stats.hedges_sent);
  EXPECT_GE(run.server_requests, 120u);
  EXPECT_EQ(run.stats.bytes_body, 120 * kPart);
}

TEST(Hedging, OffMeansNoSecondRequest) {
  const LoadRun run = fetch_with_stragglers(200, 33, std::chrono::milliseconds(500), false);
  std::printf("200 requests, every 33rd answer 500 ms late, not hedged: %.3f s\n", run.seconds);
  EXPECT_EQ(run.stats.hedges_sent, 0u);
  EXPECT_EQ(run.server_requests, 200u);
}

}  // namespace
}  // namespace ringfetch
