// Errors that must name the right thing, seen through the CLI against the fault server: a range past the end of
// an http:// or s3:// object says "past the object's end" as file:// does; S3's error document is what sizes
// report (a HEAD answer has no body, so a missing bucket read as NoSuchKey and a wrong secret as AccessDenied);
// and, through the library, AWS_CA_BUNDLE is the CA file for S3 over TLS.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"
#include "servers/fault_server.hpp"
#include "servers/run_cli.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::CliResult;
using testing::describe;
using testing::failed_with;
using testing::Fault;
using testing::FaultServer;
using testing::kExitRuntimeError;

constexpr uint64_t kObjectBytes = 3000;

class CliErrors : public ::testing::Test {
 protected:
  std::map<std::string, std::string> environment() const {
    return {{"AWS_ACCESS_KEY_ID", "AKIDERRORS"},
            {"AWS_SECRET_ACCESS_KEY", "errors-secret"},
            {"AWS_REGION", "us-east-1"},
            {"HOME", home_.path().string()}};
  }
  CliResult ringfetch(std::vector<std::string> args) const {
    args.push_back("--endpoint-url");
    args.push_back(server_->endpoint());
    return testing::run_cli(args, environment());
  }
  std::string plan(uint64_t offset, uint64_t length) const {
    const std::filesystem::path path = dir_ / ("plan-" + std::to_string(offset) + ".json");
    testing::write_file(path, "{\"items\":[{\"key\":\"object\",\"offset\":" + std::to_string(offset) +
                                  ",\"length\":" + std::to_string(length) + "}]}");
    return path.string();
  }

  testing::TempDir home_{"ringfetch-cli-errors-home-"};
  testing::TempDir dir_{"ringfetch-cli-errors-"};
  std::unique_ptr<FaultServer> server_ = std::make_unique<FaultServer>(testing::make_pattern(kObjectBytes, 3));
};

TEST_F(CliErrors, RangesPastTheEndOverHttpAndS3SayPastTheObjectsEnd) {
  for (const std::string& root : {server_->endpoint(), std::string("s3://bucket")}) {
    SCOPED_TRACE(root);
    // Starts inside, ends outside: the server's 206 stops at the end.
    EXPECT_TRUE(failed_with(ringfetch({"load", root, "--plan", plan(kObjectBytes - 10, 20)}), kExitRuntimeError,
                            "past the object's end at 3000"));
    // Starts outside: 416.
    EXPECT_TRUE(failed_with(ringfetch({"load", root, "--plan", plan(kObjectBytes + 5, 20)}), kExitRuntimeError,
                            "past the object's end at 3000"));
  }
}

TEST_F(CliErrors, AWrongSecretIsSignatureDoesNotMatchNotAccessDenied) {
  server_->add_rule({.fault = Fault::status_error(403, "SignatureDoesNotMatch")});
  for (const char* command : {"cat", "get"}) {
    std::vector<std::string> args = {command, "s3://bucket/object"};
    if (std::string(command) == "get") args.push_back((dir_ / "out").string());
    EXPECT_TRUE(failed_with(ringfetch(args), kExitRuntimeError, "SignatureDoesNotMatch")) << command;
  }
}

TEST_F(CliErrors, AMissingBucketIsNoSuchBucketNotNoSuchKey) {
  server_->add_rule({.fault = Fault::status_error(404, "NoSuchBucket")});
  EXPECT_TRUE(failed_with(ringfetch({"cat", "s3://no-such-bucket/object"}), kExitRuntimeError, "NoSuchBucket"));
  EXPECT_TRUE(failed_with(ringfetch({"get", "s3://no-such-bucket/object", (dir_ / "out").string()}),
                          kExitRuntimeError, "NoSuchBucket"));
}

TEST_F(CliErrors, AnEmptyObjectStillHasItsSize) {
  FaultServer empty({});  // 416 to any range: the size comes from HEAD instead
  const CliResult r = testing::run_cli(
      {"get", "s3://bucket/empty", (dir_ / "empty").string(), "--endpoint-url", empty.endpoint()}, environment());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(std::filesystem::file_size(dir_ / "empty"), 0u);
}

TEST(S3CaBundle, AwsCaBundleIsTheCaFileForS3OverTls) {
  testing::TempDir home("ringfetch-ca-bundle-home-");
  Engine engine({.threads = 1, .arena_bytes = 1 << 20});
  s3::S3Options options;
  options.endpoints = {"https://127.0.0.1:1"};
  const std::string bundle = (home / "no-such-ca.pem").string();
  options.environment = s3::environment_from({{"AWS_ACCESS_KEY_ID", "AKID"},
                                              {"AWS_SECRET_ACCESS_KEY", "secret"},
                                              {"AWS_CA_BUNDLE", bundle},
                                              {"HOME", home.path().string()}});
  try {
    s3::S3Client::open(engine, options);
    ADD_FAILURE() << "AWS_CA_BUNDLE naming a missing file was not used";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bundle), std::string::npos) << e.what();
  }
  // A CA file given by the caller outranks it.
  HttpOptions http;
  http.ca_file = "/etc/ssl/certs/ca-certificates.crt";
  if (std::filesystem::exists(http.ca_file)) {
    EXPECT_NO_THROW(s3::S3Client::open(engine, options, http));
  }
}

}  // namespace
}  // namespace ringfetch
