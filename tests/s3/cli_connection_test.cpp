// The CLI's connection flags against the fault server: a server that accepts and never answers fails within the
// CLI's short default budget (3 attempts of 5 s) and the flags change it (--read-timeout / --cli-read-timeout,
// --max-attempts); several --endpoint-url flags, or a comma-separated list in the flag or in
// AWS_ENDPOINT_URL_S3, spread requests over every endpoint; --no-sign-request sends no Authorization; every
// request names ringfetch in its User-Agent.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "servers/fault_server.hpp"
#include "servers/run_cli.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::CliResult;
using testing::describe;
using testing::Fault;
using testing::FaultServer;

constexpr uint64_t kObjectBytes = 3000;
constexpr uint64_t kSeed = 12;

std::map<std::string, std::string> environment(const testing::TempDir& home,
                                               const std::map<std::string, std::string>& extra = {}) {
  std::map<std::string, std::string> variables = {{"AWS_ACCESS_KEY_ID", "AKIDCONNECTION"},
                                                  {"AWS_SECRET_ACCESS_KEY", "connection-secret"},
                                                  {"AWS_REGION", "us-east-1"},
                                                  {"HOME", home.path().string()}};
  for (const auto& [name, value] : extra) variables[name] = value;
  return variables;
}

std::string as_text(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

class CliConnection : public ::testing::Test {
 protected:
  static std::unique_ptr<FaultServer> server() {
    return std::make_unique<FaultServer>(testing::make_pattern(kObjectBytes, kSeed));
  }
  testing::TempDir home_{"ringfetch-cli-connection-home-"};
};

TEST_F(CliConnection, ASilentServerFailsWithinTheDefaultBudget) {
  auto silent = server();
  silent->add_rule({.fault = Fault::stall()});
  const auto start = std::chrono::steady_clock::now();
  const CliResult r = testing::run_cli({"cat", "s3://bucket/object", "--endpoint-url", silent->endpoint()},
                                       environment(home_));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(testing::failed_with(r, testing::kExitRuntimeError, "timed out"));
  EXPECT_NE(r.err.find("after 3 attempts"), std::string::npos) << describe(r);
  EXPECT_EQ(silent->requests_received(), 3u);
  // 3 x 5 s and backoff; the library's own defaults (5 x 30 s) took 150 s. A bound on a hang, not a speed.
  EXPECT_LT(took, std::chrono::seconds(60));
}

TEST_F(CliConnection, TimeoutAndAttemptFlagsAreHonoured) {
  auto silent = server();
  silent->add_rule({.fault = Fault::stall()});
  for (const char* flag : {"--read-timeout", "--cli-read-timeout"}) {
    const uint64_t before = silent->requests_received();
    const CliResult r = testing::run_cli({"cat", "s3://bucket/object", "--endpoint-url", silent->endpoint(), flag,
                                          "1", "--max-attempts", "2", "--connect-timeout", "1"},
                                         environment(home_));
    EXPECT_TRUE(testing::failed_with(r, testing::kExitRuntimeError, "after 2 attempts"));
    EXPECT_EQ(silent->requests_received() - before, 2u);
  }
  EXPECT_TRUE(testing::failed_with(
      testing::run_cli({"cat", "s3://bucket/object", "--read-timeout", "0"}, environment(home_)),
      testing::kExitUsage, "--read-timeout 0"));
  EXPECT_TRUE(testing::failed_with(
      testing::run_cli({"cat", "s3://bucket/object", "--cli-connect-timeout", "x"}, environment(home_)),
      testing::kExitUsage, "--connect-timeout x"));
}

TEST_F(CliConnection, SeveralEndpointsShareTheRequests) {
  const std::string expected = as_text(testing::make_pattern(kObjectBytes, kSeed));
  {
    auto a = server();
    auto b = server();
    const CliResult r = testing::run_cli({"cat", "s3://bucket/object", "--endpoint-url", a->endpoint(),
                                          "--endpoint-url", b->endpoint()},
                                         environment(home_));
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_TRUE(r.out == expected);
    EXPECT_GE(a->requests_received(), 1u);
    EXPECT_GE(b->requests_received(), 1u);
  }
  {
    auto a = server();
    auto b = server();
    const CliResult r = testing::run_cli(
        {"cat", "s3://bucket/object", "--endpoint-url", a->endpoint() + "," + b->endpoint()}, environment(home_));
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_GE(a->requests_received(), 1u);
    EXPECT_GE(b->requests_received(), 1u);
  }
  {
    auto a = server();
    auto b = server();
    const CliResult r = testing::run_cli(
        {"cat", "s3://bucket/object"},
        environment(home_, {{"AWS_ENDPOINT_URL_S3", a->endpoint() + "," + b->endpoint()}}));
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_TRUE(r.out == expected);
    EXPECT_GE(a->requests_received(), 1u);
    EXPECT_GE(b->requests_received(), 1u);
  }
}

TEST_F(CliConnection, NoSignRequestSendsNoCredentialsAndEveryRequestHasAUserAgent) {
  auto s3 = server();
  testing::TempDir empty_home("ringfetch-cli-connection-nokeys-");
  // No keys anywhere: signing would fail with "no credentials"; --no-sign-request needs none.
  const CliResult r = testing::run_cli({"cat", "s3://bucket/object", "--endpoint-url", s3->endpoint(),
                                        "--no-sign-request"},
                                       {{"HOME", empty_home.path().string()}, {"AWS_REGION", "us-east-1"}});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_FALSE(s3->request_log().empty());
  for (const testing::LoggedRequest& request : s3->request_log()) {
    EXPECT_FALSE(request.header("Authorization")) << request.method << " " << request.target;
    EXPECT_EQ(request.header("User-Agent").value_or("").rfind("ringfetch/", 0), 0u)
        << request.header("User-Agent").value_or("(none)");
  }
}

}  // namespace
}  // namespace ringfetch
