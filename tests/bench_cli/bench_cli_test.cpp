// Tests of `ringfetch bench`, run as a separate process (servers/run_cli.hpp) against real peers on loopback: a
// file:// directory, nginx (read-only, with --object) and s3rver (reads and uploads). They check that --json
// parses with plausible figures, that the objects the bench creates are gone afterwards (and stay with --keep),
// and that mistakes end in one line on stderr and a non-zero exit. Sizes are a few MiB so that the suite is quick.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"
#include "servers/nginx_server.hpp"
#include "servers/loopback.hpp"
#include "servers/run_cli.hpp"
#include "servers/s3rver_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CliResult;
using testing::describe;
using testing::failed_with;
using testing::line_count;
using testing::run_cli;
using testing::kExitRuntimeError;
using testing::kExitUsage;

constexpr uint64_t kServedBytes = (3 << 20) + 4321;  // the object nginx serves: not a multiple of any part size
constexpr uint64_t kServedSeed = 17;

// The small sizes every run here uses.
std::vector<std::string> small_run(std::vector<std::string> args) {
  for (const char* word : {"--objects", "2", "--size-mib", "2", "--reads", "64", "--reps", "1"}) args.push_back(word);
  return args;
}

// The report parses, has one row per expected pattern label prefix, and every row moved bytes with requests.
json parse_report(const CliResult& r, const std::vector<std::string>& patterns) {
  EXPECT_EQ(line_count(r.out), 1u) << "--json must print one object\n" << describe(r);
  const json report = json::parse(r.out);
  const json& results = report.at("results");
  EXPECT_EQ(results.size(), patterns.size()) << describe(r);
  for (size_t i = 0; i < std::min(results.size(), patterns.size()); ++i) {
    const json& row = results[i];
    EXPECT_EQ(row.at("pattern").get<std::string>().rfind(patterns[i], 0), 0u) << row.dump();
    EXPECT_GT(row.at("bytes").get<uint64_t>(), 0u) << row.dump();
    EXPECT_GT(row.at("requests").get<uint64_t>(), 0u) << row.dump();
    EXPECT_GT(row.at("seconds").get<double>(), 0.0) << row.dump();
    EXPECT_GT(row.at("gbps").get<double>(), 0.0) << row.dump();
    EXPECT_GE(row.at("cpu_seconds").get<double>(), 0.0) << row.dump();
  }
  return report;
}

const json& row_named(const json& report, const std::string& prefix) {
  for (const json& row : report.at("results")) {
    if (row.at("pattern").get<std::string>().rfind(prefix, 0) == 0) return row;
  }
  throw std::runtime_error("no row " + prefix + " in " + report.dump());
}

// ---- file:// ----

TEST(BenchFile, JsonRowsArePlausibleAndTheObjectsAreRemoved) {
  testing::TempDir dir("ringfetch-bench-file-");
  const CliResult r = run_cli(small_run({"bench", "file://" + dir.path().string(), "--json"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json report = parse_report(r, {"whole", "checkpoint", "checkpoint ", "random"});
  EXPECT_EQ(report.at("objects").size(), 2u);
  EXPECT_EQ(report.at("removed").get<size_t>(), 2u);
  EXPECT_FALSE(report.at("kept").get<bool>());
  // Whole objects in 8 MiB parts: all 4 MiB requested, one request per 2 MiB object.
  const json& whole = row_named(report, "whole");
  EXPECT_EQ(whole.at("bytes").get<uint64_t>(), 4u << 20);
  EXPECT_EQ(whole.at("requests").get<uint64_t>(), 2u);
  // Random 4 KiB ranges never coalesce: one request each, and the latency columns are there.
  const json& random = row_named(report, "random");
  EXPECT_EQ(random.at("requests").get<uint64_t>(), 64u);
  EXPECT_EQ(random.at("bytes").get<uint64_t>(), 64u * 4096);
  EXPECT_GT(random.at("latency_p50_ms").get<double>(), 0.0);
  EXPECT_GE(random.at("latency_p99_ms").get<double>(), random.at("latency_p50_ms").get<double>());
  EXPECT_LT(row_named(report, "checkpoint ").at("bytes").get<uint64_t>(),
            row_named(report, "checkpoint").at("bytes").get<uint64_t>());
  EXPECT_TRUE(fs::is_empty(dir.path())) << "the bench left files behind\n" << describe(r);
}

TEST(BenchFile, TablePrintsOneRowPerPatternAndKeepLeavesTheObjects) {
  testing::TempDir dir("ringfetch-bench-file-");
  const CliResult r =
      run_cli(small_run({"bench", "file://" + dir.path().string(), "--patterns", "whole,random", "--keep"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* column : {"pattern", "bytes", "requests", "GB/s", "CPU s/GB", "p50 ms", "p99 ms"}) {
    EXPECT_NE(r.out.find(column), std::string::npos) << column << "\n" << describe(r);
  }
  EXPECT_NE(r.out.find("\nwhole "), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("\nrandom "), std::string::npos) << describe(r);
  EXPECT_EQ(r.out.find("\ncheckpoint"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("kept: 2 objects under ringfetch-bench-"), std::string::npos) << describe(r);
  ASSERT_FALSE(fs::is_empty(dir.path())) << describe(r);
  const fs::path prefix = fs::directory_iterator(dir.path())->path();
  EXPECT_EQ(prefix.filename().string().rfind("ringfetch-bench-", 0), 0u) << prefix;
  EXPECT_EQ(fs::file_size(prefix / "obj-0000"), 2u << 20);
  EXPECT_EQ(fs::file_size(prefix / "obj-0001"), 2u << 20);
}

TEST(BenchFile, InterruptRemovesWhatWasCreated) {
  testing::TempDir dir("ringfetch-bench-file-");
  // Enough work that the signal arrives while it runs.
  testing::RunningCli running({"bench", "file://" + dir.path().string(), "--objects", "4", "--size-mib", "64",
                               "--reps", "50", "--patterns", "whole"});
  while (fs::is_empty(dir.path())) ::usleep(10'000);
  ::usleep(300'000);
  running.signal(SIGINT);
  const CliResult r = running.wait();
  EXPECT_EQ(r.exit_code, 128 + SIGINT) << describe(r);
  EXPECT_NE(r.err.find("interrupted"), std::string::npos) << describe(r);
  EXPECT_TRUE(fs::is_empty(dir.path())) << "the bench left files behind after SIGINT\n" << describe(r);
}

// ---- errors ----

TEST(BenchErrors, UnknownPatternIsAUsageError) {
  testing::TempDir dir("ringfetch-bench-file-");
  EXPECT_TRUE(failed_with(run_cli({"bench", "file://" + dir.path().string(), "--patterns", "whole,sideways"}),
                          kExitUsage, "unknown pattern 'sideways'"));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(BenchErrors, HttpWithoutObjectSaysToNameOne) {
  EXPECT_TRUE(failed_with(run_cli({"bench", "http://127.0.0.1:1/data"}), kExitUsage, "--object KEY"));
}

TEST(BenchErrors, WriteNeedsAnS3Root) {
  testing::TempDir dir("ringfetch-bench-file-");
  EXPECT_TRUE(failed_with(run_cli({"bench", "file://" + dir.path().string(), "--patterns", "write"}), kExitUsage,
                          "the write pattern needs an s3:// root"));
}

TEST(BenchErrors, UnreachableHttpEndpointIsOneRuntimeErrorLine) {
  const std::string root = "http://127.0.0.1:" + std::to_string(testing::pick_free_port(false));
  const CliResult r = run_cli({"bench", root, "--object", "blob", "--connect-timeout", "1", "--max-attempts", "1"});
  EXPECT_TRUE(failed_with(r, kExitRuntimeError, "127.0.0.1")) << describe(r);
}

// ---- nginx ----

class BenchNginx : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>("ringfetch-bench-www-");
    fs::create_directories(dir_->path() / "data");
    testing::write_pattern_file(dir_->path() / "data" / "blob", kServedBytes, kServedSeed);
    nginx_ = std::make_unique<testing::NginxServer>(dir_->path());
  }
  static void TearDownTestSuite() {
    nginx_.reset();
    dir_.reset();
  }
  static inline std::unique_ptr<testing::TempDir> dir_;
  static inline std::unique_ptr<testing::NginxServer> nginx_;
};

TEST_F(BenchNginx, ReadsTheNamedObjectAndCreatesNothing) {
  const std::string root = nginx_->http_endpoint() + "/data";
  const CliResult r = run_cli(small_run({"bench", root, "--object", "blob", "--json", "--part-size", "1M"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json report = parse_report(r, {"whole", "checkpoint", "checkpoint ", "random"});
  EXPECT_TRUE(report.at("created_prefix").is_null());
  EXPECT_EQ(report.at("removed").get<size_t>(), 0u);
  ASSERT_EQ(report.at("objects").size(), 1u);
  EXPECT_EQ(report.at("objects")[0].at("size").get<uint64_t>(), kServedBytes);
  const json& whole = row_named(report, "whole");
  EXPECT_EQ(whole.at("bytes").get<uint64_t>(), kServedBytes);
  EXPECT_EQ(whole.at("requests").get<uint64_t>(), 4u);  // 1 MiB parts of 3 MiB + a little
  EXPECT_EQ(row_named(report, "random").at("requests").get<uint64_t>(), 64u);
  EXPECT_EQ(fs::directory_iterator(dir_->path())->path().filename(), "data");  // nothing new in the document root
}

TEST_F(BenchNginx, CompareReadsTheSameRangesWithLibcurl) {
  // The libcurl reader is built with the benchmarks only (not in the sanitizer flavours).
  if (!fs::exists(fs::path(RINGFETCH_TEST_BUILD_DIR) / "bench" / "ringfetch-curl-reader")) {
    GTEST_SKIP() << "ringfetch-curl-reader not built (RINGFETCH_BUILD_BENCH=OFF)";
  }
  const std::string root = nginx_->http_endpoint() + "/data";
  const CliResult r = run_cli(small_run(
      {"bench", root, "--object", "blob", "--json", "--part-size", "1M", "--patterns", "whole,random", "--compare"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json report = parse_report(r, {"whole", "libcurl whole", "random", "libcurl random"});
  // The same ranges: the same bytes, and one GET per range for libcurl (the whole pattern's parts, the random reads).
  EXPECT_EQ(row_named(report, "libcurl whole").at("bytes"), row_named(report, "whole").at("bytes"));
  EXPECT_EQ(row_named(report, "libcurl whole").at("requests").get<uint64_t>(), 4u);
  EXPECT_EQ(row_named(report, "libcurl random").at("requests").get<uint64_t>(), 64u);
}

TEST(BenchErrors, CompareIsForHttpRootsOnly) {
  testing::TempDir dir("ringfetch-bench-compare-");
  EXPECT_TRUE(failed_with(run_cli({"bench", "file://" + dir.path().string(), "--compare"}), kExitUsage,
                          "--compare applies to http(s):// roots only"));
}

TEST_F(BenchNginx, AMissingObjectIsOneRuntimeErrorLine) {
  const CliResult r = run_cli({"bench", nginx_->http_endpoint() + "/data", "--object", "absent"});
  EXPECT_TRUE(failed_with(r, kExitRuntimeError, "absent")) << describe(r);
}

// ---- s3rver ----

struct S3Env {
  testing::S3rverServer server;
  testing::TempDir home{"ringfetch-bench-home-"};  // an empty HOME: no ~/.aws files
};

S3Env& s3_env() {
  static S3Env instance;
  return instance;
}

std::map<std::string, std::string> s3_cli_environment() {
  std::map<std::string, std::string> variables = {{"AWS_ACCESS_KEY_ID", "S3RVER"},
                                                  {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
                                                  {"AWS_REGION", "us-east-1"},
                                                  {"HOME", s3_env().home.path().string()}};
  for (const char* name : {"RINGFETCH_BACKEND", "RINGFETCH_NO_REGISTER"}) {
    if (const char* value = std::getenv(name)) variables[name] = value;
  }
  return variables;
}

class BenchS3 : public ::testing::Test {
 protected:
  void SetUp() override {
    s3::S3Options options;
    options.endpoints = {s3_env().server.endpoint()};
    options.environment = s3::environment_from(s3_cli_environment());
    client_.emplace(s3::S3Client::open(engine_, options));
    client_->create_bucket(kBucket);
  }
  void TearDown() override {
    std::vector<std::string> keys;
    for (const s3::ObjectInfo& info : client_->list(kBucket, "")) keys.push_back(info.key);
    if (!keys.empty()) client_->remove_many(kBucket, keys);
    client_->delete_bucket(kBucket);
  }
  CliResult bench(std::vector<std::string> args) {
    args.push_back("--endpoint-url");
    args.push_back(s3_env().server.endpoint());
    return testing::run_cli(args, s3_cli_environment());
  }
  std::vector<s3::ObjectInfo> listed(const std::string& prefix = "") { return client_->list(kBucket, prefix); }

  static constexpr const char* kBucket = "rf-bench";
  Engine engine_{EngineOptions{.threads = 1}};
  std::optional<s3::S3Client> client_;
};

TEST_F(BenchS3, WriteAndReadPatternsThenNothingIsLeft) {
  const CliResult r = bench(small_run({"bench", std::string("s3://") + kBucket + "/runs", "--json",
                                       "--concurrency", "2"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json report = parse_report(r, {"write", "whole", "checkpoint", "checkpoint ", "random"});
  const json& write = row_named(report, "write");
  EXPECT_EQ(write.at("bytes").get<uint64_t>(), 4u << 20);
  EXPECT_EQ(write.at("requests").get<uint64_t>(), 2u);  // 2 MiB objects: one PUT each
  EXPECT_EQ(report.at("removed").get<size_t>(), 2u);
  EXPECT_TRUE(listed().empty()) << "left behind: " << listed().front().key;
}

TEST_F(BenchS3, MultipartWritesAndKeepLeavesTheObjectsUnderTheRootPrefix) {
  const CliResult r = bench({"bench", std::string("s3://") + kBucket + "/runs/", "--patterns", "write,whole",
                             "--objects", "2", "--size-mib", "17", "--reps", "1", "--keep", "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json report = parse_report(r, {"write", "whole"});
  EXPECT_GE(row_named(report, "write").at("requests").get<uint64_t>(), 6u);  // 17 MiB in 8 MiB parts: 3 each
  EXPECT_TRUE(report.at("kept").get<bool>());
  const std::string prefix = report.at("created_prefix").get<std::string>();
  const std::vector<s3::ObjectInfo> objects = listed();
  ASSERT_EQ(objects.size(), 2u);
  for (const s3::ObjectInfo& object : objects) {
    EXPECT_EQ(object.key.rfind("runs/" + prefix, 0), 0u) << object.key;
    EXPECT_EQ(object.size, 17u << 20);
  }
  // Unique per object: the two objects' ETags (MD5 based) differ.
  EXPECT_NE(objects[0].etag, objects[1].etag);
}

TEST_F(BenchS3, InterruptDuringUploadsRemovesWhatLanded) {
  // s3rver takes tens of MB/s: many write runs keep the bench uploading when the signal comes.
  std::vector<std::string> args = {"bench", std::string("s3://") + kBucket + "/runs", "--patterns", "write",
                                   "--objects", "4", "--size-mib", "8", "--reps", "100", "--endpoint-url",
                                   s3_env().server.endpoint()};
  testing::RunningCli running(args, s3_cli_environment());
  while (listed().empty()) ::usleep(20'000);
  running.signal(SIGINT);
  const CliResult r = running.wait();
  EXPECT_EQ(r.exit_code, 128 + SIGINT) << describe(r);
  EXPECT_NE(r.err.find("removed"), std::string::npos) << describe(r);
  EXPECT_TRUE(listed().empty()) << "left behind: " << listed().front().key << "\n" << describe(r);
}

TEST_F(BenchS3, ReadsNamedObjectsWithoutCreatingAny) {
  const std::vector<std::byte> data = testing::make_pattern(3 << 20, 5);
  client_->put(kBucket, "given/blob", data);
  const CliResult r = bench(small_run({"bench", std::string("s3://") + kBucket + "/given", "--object", "blob",
                                       "--patterns", "whole,random", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json report = parse_report(r, {"whole", "random"});
  EXPECT_TRUE(report.at("created_prefix").is_null());
  ASSERT_EQ(listed().size(), 1u);
}

TEST_F(BenchS3, UnreachableEndpointIsOneRuntimeErrorLine) {
  const CliResult r = testing::run_cli(
      small_run({"bench", std::string("s3://") + kBucket, "--endpoint-url",
                 "http://127.0.0.1:" + std::to_string(testing::pick_free_port(false)), "--connect-timeout", "1",
                 "--max-attempts", "1"}),
      s3_cli_environment());
  EXPECT_TRUE(failed_with(r, kExitRuntimeError, "127.0.0.1")) << describe(r);
}

}  // namespace
}  // namespace ringfetch
