// Tests of the S3 side of the `ringfetch` program (put, ls, get, cat, load, rm) against s3rver, run as a separate
// process (servers/run_cli.hpp) with only the AWS variables s3rver needs in its environment and the endpoint given
// by --endpoint-url, as a user would. Each test has a bucket of its own, made and removed through S3Client; files
// are checked byte for byte against the deterministic pattern of servers/temp_dir.hpp.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"
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

using testing::kExitRuntimeError;
using testing::kExitUsage;
constexpr uint64_t kBigBytes = (20ull << 20) + 12345;  // 5 parts of 5 MiB, the last one short
constexpr uint64_t kBigSeed = 41;
constexpr uint64_t kMaxBucketName = 63;

struct CliS3Env {
  testing::S3rverServer server;
  testing::TempDir home{"ringfetch-cli-s3-home-"};  // an empty HOME: no ~/.aws files
};

CliS3Env& env() {
  static CliS3Env instance;
  return instance;
}

// What the CLI sees: s3rver's account and nothing else, except the engine switches a test run may have set.
std::map<std::string, std::string> cli_environment(const std::string& access_key) {
  std::map<std::string, std::string> variables = {{"AWS_ACCESS_KEY_ID", access_key},
                                                  {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
                                                  {"AWS_REGION", "us-east-1"},
                                                  {"HOME", env().home.path().string()}};
  for (const char* name : {"RINGFETCH_BACKEND", "RINGFETCH_NO_REGISTER"}) {
    if (const char* value = std::getenv(name)) variables[name] = value;
  }
  return variables;
}

s3::S3Options client_options() {
  s3::S3Options options;
  options.endpoints = {env().server.endpoint()};
  options.environment = s3::environment_from(cli_environment("S3RVER"));
  return options;
}

std::string as_string(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}



class CliS3 : public ::testing::Test {
 protected:
  void SetUp() override {
    bucket_ = "rf-cli-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (char& c : bucket_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bucket_ = bucket_.substr(0, kMaxBucketName);
    client_.create_bucket(bucket_);
  }
  void TearDown() override {
    std::vector<std::string> keys;
    for (const s3::ObjectInfo& info : client_.list(bucket_, "")) keys.push_back(info.key);
    if (!keys.empty()) client_.remove_many(bucket_, keys);
    client_.delete_bucket(bucket_);
  }

  // The CLI with `args`, the endpoint flag and s3rver's credentials (or `access_key` instead).
  CliResult ringfetch(std::vector<std::string> args, const std::string& access_key = "S3RVER") {
    args.push_back("--endpoint-url");
    args.push_back(env().server.endpoint());
    return testing::run_cli(args, cli_environment(access_key));
  }
  std::string url(const std::string& key) const { return "s3://" + bucket_ + "/" + key; }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_big_file(const std::string& name) {
    testing::write_pattern_file(dir_ / name, kBigBytes, kBigSeed);
    return path(name);
  }
  std::vector<std::byte> put_pattern(const std::string& key, uint64_t size, uint64_t seed) {
    std::vector<std::byte> data = testing::make_pattern(size, seed);
    client_.upload(bucket_, key, data);
    return data;
  }

  Engine engine_{{.threads = 1, .arena_bytes = 1 << 20}};
  s3::S3Client client_ = s3::S3Client::open(engine_, client_options());
  testing::TempDir dir_{"ringfetch-cli-s3-"};
  std::string bucket_;
};

TEST_F(CliS3, PutOfALargeFileIsMultipartAndListsWithItsSize) {
  const std::string file = write_big_file("shard.bin");
  const CliResult put =
      ringfetch({"put", file, url("ckpt/shard-0"), "--part-size", "5M", "--multipart-threshold", "5M"});
  ASSERT_EQ(put.exit_code, 0) << describe(put);
  EXPECT_NE(put.out.find("upload: " + file + " to " + url("ckpt/shard-0")), std::string::npos) << describe(put);
  EXPECT_NE(put.out.find("in 5 parts"), std::string::npos) << describe(put);
  EXPECT_EQ(client_.head(bucket_, "ckpt/shard-0").size, kBigBytes);

  const CliResult ls = ringfetch({"ls", "s3://" + bucket_ + "/ckpt/"});
  ASSERT_EQ(ls.exit_code, 0) << describe(ls);
  EXPECT_EQ(ls.out, "    " + std::to_string(kBigBytes) + "  ckpt/shard-0\n") << describe(ls);

  const CliResult listed = ringfetch({"ls", "s3://" + bucket_, "--json"});
  ASSERT_EQ(listed.exit_code, 0) << describe(listed);
  ASSERT_EQ(line_count(listed.out), 1u) << describe(listed);
  const json report = json::parse(listed.out);
  EXPECT_EQ(report.at("bucket"), bucket_);
  ASSERT_EQ(report.at("objects").size(), 1u);
  EXPECT_EQ(report.at("objects")[0].at("key"), "ckpt/shard-0");
  EXPECT_EQ(report.at("objects")[0].at("size").get<uint64_t>(), kBigBytes);
  EXPECT_EQ(report.at("total_bytes").get<uint64_t>(), kBigBytes);
}

TEST_F(CliS3, PutBelowTheThresholdIsOnePutAndAPrefixURLTakesTheFileName) {
  testing::write_file(dir_ / "notes.txt", std::string_view("hello, s3"));
  const CliResult put = ringfetch({"put", path("notes.txt"), url("docs/")});
  ASSERT_EQ(put.exit_code, 0) << describe(put);
  EXPECT_NE(put.out.find("in 1 part,"), std::string::npos) << describe(put);
  EXPECT_EQ(client_.head(bucket_, "docs/notes.txt").size, 9u);

  testing::write_file(dir_ / "empty", std::string_view());
  const CliResult empty = ringfetch({"put", path("empty"), url("empty")});
  ASSERT_EQ(empty.exit_code, 0) << describe(empty);
  EXPECT_EQ(client_.head(bucket_, "empty").size, 0u);
}

TEST_F(CliS3, GetWritesTheObjectByteForByte) {
  const std::vector<std::byte> data = put_pattern("ckpt/shard-0", kBigBytes, kBigSeed);
  const CliResult get = ringfetch({"get", url("ckpt/shard-0"), path("copy.bin"), "--part-size", "3M"});
  ASSERT_EQ(get.exit_code, 0) << describe(get);
  EXPECT_NE(get.out.find("download: " + url("ckpt/shard-0") + " to " + path("copy.bin")), std::string::npos)
      << describe(get);
  EXPECT_TRUE(testing::read_file(dir_ / "copy.bin") == as_string(data)) << "the downloaded file differs";

  fs::create_directory(dir_ / "into");
  const CliResult into_directory = ringfetch({"get", url("ckpt/shard-0"), path("into")});
  ASSERT_EQ(into_directory.exit_code, 0) << describe(into_directory);
  EXPECT_TRUE(testing::read_file(dir_ / "into" / "shard-0") == as_string(data)) << "the downloaded file differs";
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "into"), fs::directory_iterator()), 1)
      << "a temporary file was left behind";

  put_pattern("empty", 0, 1);
  const CliResult empty = ringfetch({"get", url("empty"), path("empty")});
  ASSERT_EQ(empty.exit_code, 0) << describe(empty);
  EXPECT_EQ(fs::file_size(dir_ / "empty"), 0u);
}

TEST_F(CliS3, CatWritesTheObjectOrARange) {
  const std::vector<std::byte> data = put_pattern("ckpt/shard-0", kBigBytes, kBigSeed);
  const std::string expected = as_string(data);
  const CliResult small = ringfetch({"cat", url("ckpt/shard-0"), "--range", "1000-1999"});
  ASSERT_EQ(small.exit_code, 0) << describe(small);
  EXPECT_EQ(small.out, expected.substr(1000, 1000));

  const CliResult tail = ringfetch({"cat", url("ckpt/shard-0"), "--range", std::to_string(kBigBytes - 9000000) + "-"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  EXPECT_TRUE(tail.out == expected.substr(kBigBytes - 9000000)) << "a multi-MiB range differs";

  const CliResult whole = ringfetch({"cat", url("ckpt/shard-0")});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  EXPECT_TRUE(whole.out == expected) << "got " << whole.out.size() << " bytes";
}

TEST_F(CliS3, LoadPlanCountsItemsAndBytes) {
  put_pattern("ckpt/a", 6 << 20, 1);
  put_pattern("ckpt/b", 1 << 20, 2);
  const json plan = {{"items",
                      {{{"key", "a"}, {"offset", 0}, {"length", 4096}},
                       {{"key", "a"}, {"offset", 5 << 20}, {"length", 1 << 20}},
                       {{"key", "b"}, {"offset", 100}, {"length", 1000}},
                       {{"key", "b"}, {"offset", 600}, {"length", 1000}}}}};  // overlaps the one before
  testing::write_file(dir_ / "plan.json", plan.dump());
  // One engine thread: see get_command.cpp on shutting down several threads right after a network read.
  const CliResult load =
      ringfetch({"load", "s3://" + bucket_ + "/ckpt", "--plan", path("plan.json"), "--json", "--threads", "1"});
  ASSERT_EQ(load.exit_code, 0) << describe(load);
  ASSERT_EQ(line_count(load.out), 1u) << describe(load);
  const json report = json::parse(load.out);
  EXPECT_EQ(report.at("items").get<uint64_t>(), 4u);
  EXPECT_EQ(report.at("bytes_requested").get<uint64_t>(), 4096u + (1u << 20) + 1500u);
  EXPECT_GE(report.at("requests").get<uint64_t>(), 2u);

  const CliResult table =
      ringfetch({"load", "s3://" + bucket_ + "/ckpt", "--plan", path("plan.json"), "--threads", "1"});
  ASSERT_EQ(table.exit_code, 0) << describe(table);
  EXPECT_NE(table.out.find("plan.json"), std::string::npos) << describe(table);
}

TEST_F(CliS3, RmRemovesObjectsAndAGetAfterwardsNamesTheMissingKey) {
  put_pattern("ckpt/a", 1000, 1);
  put_pattern("ckpt/b", 1000, 2);
  put_pattern("keep", 10, 3);
  const CliResult one = ringfetch({"rm", url("keep")});
  ASSERT_EQ(one.exit_code, 0) << describe(one);
  EXPECT_EQ(one.out, "delete: " + url("keep") + "\n");
  const CliResult both = ringfetch({"rm", url("ckpt/a"), url("ckpt/b")});
  ASSERT_EQ(both.exit_code, 0) << describe(both);
  EXPECT_EQ(line_count(both.out), 2u) << describe(both);

  const CliResult ls = ringfetch({"ls", "s3://" + bucket_});
  ASSERT_EQ(ls.exit_code, 0) << describe(ls);
  EXPECT_EQ(ls.out, "") << describe(ls);

  const CliResult get = ringfetch({"get", url("ckpt/a"), path("a.bin")});
  EXPECT_EQ(get.exit_code, kExitRuntimeError) << describe(get);
  EXPECT_EQ(line_count(get.err), 1u) << describe(get);
  EXPECT_EQ(get.err.rfind("ringfetch: ", 0), 0u) << describe(get);
  EXPECT_NE(get.err.find("NoSuchKey"), std::string::npos) << describe(get);
  EXPECT_NE(get.err.find("ckpt/a"), std::string::npos) << describe(get);
  EXPECT_TRUE(fs::is_empty(dir_.path())) << "a failed get left a file behind";
}

TEST_F(CliS3, MbCreatesABucket) {
  const std::string bucket = bucket_ + "-mb";
  const CliResult made = ringfetch({"mb", "s3://" + bucket});
  ASSERT_EQ(made.exit_code, 0) << describe(made);
  EXPECT_EQ(made.out, "make_bucket: " + bucket + "\n");
  EXPECT_TRUE(client_.list(bucket, "").empty());  // it exists: listing it works
  const CliResult again = ringfetch({"mb", "s3://" + bucket});
  EXPECT_TRUE(failed_with(again, kExitRuntimeError, "BucketAlreadyExists"));
  client_.delete_bucket(bucket);
  EXPECT_TRUE(failed_with(ringfetch({"mb", "s3://" + bucket + "/key"}), kExitUsage, "mb takes a bucket"));
}

TEST_F(CliS3, AnUnknownAccessKeyIsInvalidAccessKeyId) {
  const std::string file = write_big_file("shard.bin");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"ls", "s3://" + bucket_}, {"put", file, url("x")}, {"rm", url("x")}}) {
    const CliResult r = ringfetch(args, "NOT-A-KEY");
    EXPECT_EQ(r.exit_code, kExitRuntimeError) << args[0] << "\n" << describe(r);
    EXPECT_EQ(line_count(r.err), 1u) << describe(r);
    EXPECT_NE(r.err.find("InvalidAccessKeyId"), std::string::npos) << describe(r);
  }
  EXPECT_TRUE(client_.list(bucket_, "").empty());
}

TEST_F(CliS3, AnUnreachableEndpointIsOneLineNamingIt) {
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(testing::pick_free_port(false));
  const CliResult r = testing::run_cli({"ls", "s3://" + bucket_, "--endpoint", endpoint}, cli_environment("S3RVER"));
  EXPECT_EQ(r.exit_code, kExitRuntimeError) << describe(r);
  EXPECT_EQ(line_count(r.err), 1u) << describe(r);
  EXPECT_NE(r.err.find(endpoint.substr(7)), std::string::npos) << describe(r);

  const CliResult bad =
      testing::run_cli({"ls", "s3://" + bucket_, "--endpoint-url", "ftp://x"}, cli_environment("S3RVER"));
  EXPECT_EQ(bad.exit_code, kExitUsage) << describe(bad);  // a URL that cannot be right: the command line's fault
  EXPECT_NE(bad.err.find("ftp://x"), std::string::npos) << describe(bad);
}

TEST_F(CliS3, TheEndpointCanComeFromTheEnvironment) {
  put_pattern("k", 10, 1);
  std::map<std::string, std::string> variables = cli_environment("S3RVER");
  variables["AWS_ENDPOINT_URL"] = env().server.endpoint();
  const CliResult r = testing::run_cli({"ls", "s3://" + bucket_}, variables);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "          10  k\n");
}

TEST_F(CliS3, BadFilesAreRuntimeErrorsAndBadURLsUsageErrorsNamingThem) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
    int exit_code;
  };
  const std::string missing = path("no-such-file");
  const std::vector<Case> cases = {
      {{"put", missing, url("x")}, "cannot open '" + missing + "': No such file or directory", kExitRuntimeError},
      {{"put", dir_.path().string(), url("x")}, "not a regular file", kExitRuntimeError},
      {{"get", url("nothing"), path("no-dir/x")}, "NoSuchKey", kExitRuntimeError},
      // A URL that cannot be right is a mistake in the command line, as for curl and awscli.
      {{"put", missing, "http://host/x"}, "bad object URL 'http://host/x'", kExitUsage},
      {{"ls", "s3:///prefix"}, "no bucket", kExitUsage},
      {{"rm", url("a"), "s3://" + bucket_}, "no key after the bucket", kExitUsage},
      {{"get", url("dir/"), path("x")}, "names no object", kExitUsage},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(failed_with(ringfetch(c.args), c.exit_code, c.expected));
  }
}

TEST(CliS3Usage, MissingArgumentsAndBadFlagsExitTwo) {
  struct Case {
    std::vector<std::string> args;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {{"get", "s3://b/k"}, "missing FILE"},
      {{"put", "file"}, "missing S3_URL"},
      {{"ls"}, "missing S3_URL"},
      {{"rm"}, "missing S3_URL"},
      {{"ls", "s3://b", "--endpoint-url"}, "'--endpoint-url' needs a value"},
      {{"put", "f", "s3://b/k", "--part-size", "lots"}, "--part-size lots"},
      {{"put", "f", "s3://b/k", "--parallel", "0"}, "--parallel 0"},
      {{"get", "s3://b/k", "f", "--no-verify-ssl=yes"}, "takes no value"},
      {{"rm", "s3://b/k", "--json"}, "unknown option '--json'"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(failed_with(testing::run_cli(c.args), kExitUsage, c.expected));
  }
}

TEST(CliS3Usage, EachCommandHasHelpWithTheConnectionFlags) {
  for (const char* command : {"get", "put", "ls", "rm", "cat", "load", "mb", "uploads"}) {
    const CliResult r = testing::run_cli({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(r.out.rfind(std::string("usage: ringfetch ") + command, 0), 0u) << describe(r);
    EXPECT_NE(r.out.find("--endpoint-url"), std::string::npos) << describe(r);
    for (const char* flag : {"--no-sign-request", "--connect-timeout", "--read-timeout", "--max-attempts"}) {
      EXPECT_NE(r.out.find(flag), std::string::npos) << flag << "\n" << describe(r);
    }
    EXPECT_TRUE(r.err.empty()) << describe(r);
  }
}

}  // namespace
}  // namespace ringfetch
