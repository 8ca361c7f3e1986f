// Secrets stay secret: every command of the CLI, on success and on its error paths (S3 error answers, a dead
// endpoint, a silent server, a malformed credentials file, a bad flag), run with a known secret key and session
// token, must print neither anywhere (stdout, stderr); the same for the library's error messages.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"
#include "servers/fault_server.hpp"
#include "servers/run_cli.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

using testing::CliResult;
using testing::describe;
using testing::Fault;
using testing::FaultServer;

constexpr char kSecret[] = "SECRETwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kToken[] = "TOKENFwoGZXIvYXdzEJr//////////wEaDEXAMPLESESSIONTOKEN";
constexpr char kKeyId[] = "AKIDSECRETSTEST";

void expect_no_secret(const std::string& text, const std::string& context) {
  EXPECT_EQ(text.find(kSecret), std::string::npos) << "the secret key appears in " << context;
  EXPECT_EQ(text.find(kToken), std::string::npos) << "the session token appears in " << context;
  // Pieces long enough to identify them, in case a message cuts or escapes them.
  EXPECT_EQ(text.find("wJalrXUtnFEMI"), std::string::npos) << "part of the secret appears in " << context;
  EXPECT_EQ(text.find("EXAMPLESESSIONTOKEN"), std::string::npos) << "part of the token appears in " << context;
}

class Secrets : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<FaultServer>(testing::make_pattern(20000, 4), options());
    testing::write_file(dir_ / "small.bin", std::string(1000, 'x'));
    testing::write_file(dir_ / "plan.json", R"({"items":[{"key":"object","offset":0,"length":100}]})");
  }
  static testing::FaultServerOptions options() {
    testing::FaultServerOptions o;
    o.s3_multipart = true;
    return o;
  }
  std::map<std::string, std::string> environment(const std::map<std::string, std::string>& extra = {}) const {
    std::map<std::string, std::string> variables = {{"AWS_ACCESS_KEY_ID", kKeyId},
                                                    {"AWS_SECRET_ACCESS_KEY", kSecret},
                                                    {"AWS_SESSION_TOKEN", kToken},
                                                    {"AWS_REGION", "us-east-1"},
                                                    {"HOME", home_.path().string()}};
    for (const auto& [name, value] : extra) variables[name] = value;
    return variables;
  }
  // Every command, each pointed at `endpoint`.
  std::vector<std::vector<std::string>> commands(const std::string& endpoint) const {
    const std::string e = endpoint;
    const std::string out = (dir_ / "out.bin").string();
    return {
        {"cat", "s3://bucket/object", "--endpoint-url", e},
        {"cat", "s3://bucket/object", "--range", "0-9", "--endpoint-url", e},
        {"get", "s3://bucket/object", out, "--endpoint-url", e},
        {"get", "s3://bucket/object", "-", "--endpoint-url", e},
        {"put", (dir_ / "small.bin").string(), "s3://bucket/k", "--endpoint-url", e},
        {"put", (dir_ / "small.bin").string(), "s3://bucket/k", "--multipart-threshold", "0", "--endpoint-url", e},
        {"ls", "s3://bucket/", "--endpoint-url", e},
        {"ls", "s3://bucket/", "--json", "--endpoint-url", e},
        {"rm", "s3://bucket/a", "s3://bucket/b", "--endpoint-url", e},
        {"rm", "s3://bucket/a", "--endpoint-url", e},
        {"mb", "s3://newbucket", "--endpoint-url", e},
        {"uploads", "s3://bucket/", "--endpoint-url", e},
        {"uploads", "s3://bucket/", "--abort", "--endpoint-url", e},
        {"load", "s3://bucket", "--plan", (dir_ / "plan.json").string(), "--json", "--endpoint-url", e},
        {"load", "s3://bucket", "--plan", (dir_ / "plan.json").string(), "--endpoint-url", e, "--bogus-flag"},
    };
  }
  void run_all(const std::string& endpoint, const std::string& situation,
               const std::map<std::string, std::string>& extra = {}, const std::vector<std::string>& flags = {}) {
    for (std::vector<std::string> args : commands(endpoint)) {
      args.insert(args.end(), flags.begin(), flags.end());
      const CliResult r = testing::run_cli(args, environment(extra));
      std::string context = situation + ": ringfetch";
      for (const std::string& word : args) context += " " + word;
      expect_no_secret(r.out, context + " (stdout)");
      expect_no_secret(r.err, context + " (stderr)\n" + describe(r));
    }
  }

  testing::TempDir home_{"ringfetch-secrets-home-"};
  testing::TempDir dir_{"ringfetch-secrets-"};
  std::unique_ptr<FaultServer> server_;
};

TEST_F(Secrets, NoCommandPrintsThemOnSuccess) { run_all(server_->endpoint(), "success"); }

TEST_F(Secrets, NoCommandPrintsThemWhenS3Refuses) {
  server_->add_rule({.fault = Fault::status_error(403, "SignatureDoesNotMatch")});
  run_all(server_->endpoint(), "403 SignatureDoesNotMatch");
  server_->clear_rules();
  server_->add_rule({.fault = Fault::status_error(400, "InvalidToken")});
  run_all(server_->endpoint(), "400 InvalidToken");
  server_->clear_rules();
  server_->add_rule({.fault = Fault::garbage_head()});
  run_all(server_->endpoint(), "garbage answers");
}

TEST_F(Secrets, NoCommandPrintsThemWhenTheServerIsDeadOrSilent) {
  FaultServer dead({});
  const std::string endpoint = dead.endpoint();
  dead.stop();
  run_all(endpoint, "dead endpoint");
  server_->add_rule({.fault = Fault::stall()});
  run_all(server_->endpoint(), "silent server", {}, {"--read-timeout", "1", "--max-attempts", "1"});
}

TEST_F(Secrets, NoCommandPrintsThemWhenTheConfigurationIsWrong) {
  // Credentials from a file with a malformed line next to them, and from a profile that does not exist.
  std::filesystem::create_directories(home_ / ".aws");
  testing::write_file(home_ / ".aws" / "credentials", std::string("[default]\naws_access_key_id = ") + kKeyId +
                                                          "\naws_secret_access_key = " + kSecret +
                                                          "\naws_session_token " + kToken + "\n");
  run_all(server_->endpoint(), "malformed credentials file",
          {{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", ""}, {"AWS_SESSION_TOKEN", ""}});
  run_all(server_->endpoint(), "missing profile", {}, {"--profile", "nope"});
  run_all("ftp://bad", "bad endpoint");
}

TEST_F(Secrets, LibraryErrorsHoldThemNeither) {
  Engine engine({.threads = 1, .arena_bytes = 4 << 20});
  s3::S3Options options;
  options.endpoints = {server_->endpoint()};
  options.environment = s3::environment_from(environment());
  HttpOptions http;
  http.max_attempts = 1;
  http.first_byte_timeout_ms = 500;
  server_->add_rule({.fault = Fault::status_error(403, "AccessDenied")});
  s3::S3Client client = s3::S3Client::open(engine, options, http);
  const auto check = [](const auto& call) {
    try {
      call();
    } catch (const Error& e) {
      expect_no_secret(e.what(), "an Error");
      expect_no_secret(e.s3_code() + e.request_id(), "an Error's code or request id");
    }
  };
  const std::vector<std::byte> body(100);
  check([&] { client.head("bucket", "object"); });
  check([&] { client.put("bucket", "k", body); });
  check([&] { client.put_multipart("bucket", "k", body); });
  check([&] { client.list("bucket", ""); });
  check([&] { client.remove_many("bucket", {"a", "b"}); });
  check([&] { client.list_multipart_uploads("bucket", ""); });
  StoreOptions store_options;
  store_options.s3 = options;
  store_options.http = http;
  Store store = Store::open("s3://bucket", engine, store_options);
  check([&] { store.size("object"); });
  Plan plan;
  plan.add("object", 0, 10);
  check([&] { store.fetch(plan).wait(); });
  const Stats stats = engine.stats();
  expect_no_secret(stats.backend + stats.fallback_reason, "the engine's stats");
}

}  // namespace
}  // namespace ringfetch
