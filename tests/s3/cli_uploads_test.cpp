// The CLI and multipart uploads that must not be left behind, against the fault server's S3 multipart mode
// (s3rver answers AbortMultipartUpload and ListMultipartUploads with MethodNotAllowed): Ctrl-C or SIGTERM during
// `put` aborts the upload, a second Ctrl-C quits at once, `uploads` lists and aborts what was left, and sizes S3
// refuses are refused before anything is sent.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
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
using testing::FaultServerOptions;

constexpr uint64_t kPartBytes = 5 << 20;           // S3's smallest part
constexpr uint64_t kFileBytes = 8 * kPartBytes + 77;  // 9 parts
constexpr char kBucket[] = "bucket";

FaultServerOptions multipart_mode(std::chrono::milliseconds first_byte_delay = {}) {
  FaultServerOptions options;
  options.s3_multipart = true;
  options.first_byte_delay = first_byte_delay;
  return options;
}

std::map<std::string, std::string> cli_environment(const testing::TempDir& home) {
  return {{"AWS_ACCESS_KEY_ID", "AKIDUPLOADS"},
          {"AWS_SECRET_ACCESS_KEY", "uploads-secret"},
          {"AWS_REGION", "us-east-1"},
          {"HOME", home.path().string()}};
}

bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class CliUploads : public ::testing::Test {
 protected:
  void SetUp() override { testing::write_pattern_file(file_, kFileBytes, 5); }

  std::vector<std::string> put_args(const FaultServer& server) const {
    return {"put", file_.string(), std::string("s3://") + kBucket + "/dir/big.bin", "--part-size", "5M",
            "--parallel", "2", "--endpoint-url", server.endpoint()};
  }
  CliResult ringfetch(const FaultServer& server, std::vector<std::string> args) const {
    args.push_back("--endpoint-url");
    args.push_back(server.endpoint());
    return testing::run_cli(args, cli_environment(home_));
  }

  testing::TempDir home_{"ringfetch-cli-uploads-home-"};
  testing::TempDir dir_{"ringfetch-cli-uploads-"};
  std::filesystem::path file_ = dir_ / "big.bin";
};

void expect_signal_aborts_the_upload(int signal_number, const std::filesystem::path& file,
                                     const std::vector<std::string>& args, FaultServer& server,
                                     const testing::TempDir& home) {
  testing::RunningCli cli(args, cli_environment(home));
  ASSERT_TRUE(wait_until([&] { return !server.parts_received().empty(); })) << "no part arrived";
  cli.signal(signal_number);
  const CliResult r = cli.wait();
  EXPECT_EQ(r.exit_code, 128 + signal_number) << describe(r);
  EXPECT_NE(r.err.find("aborting the upload"), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find("(upload rf-upload-1 aborted)"), std::string::npos) << describe(r);
  EXPECT_EQ(server.uploads_started(), 1u);
  EXPECT_EQ(server.uploads_aborted(), 1u);
  EXPECT_EQ(server.uploads_completed(), 0u);
  EXPECT_TRUE(server.open_upload_ids().empty()) << "the upload was left open on the server";
  EXPECT_LT(server.parts_received().size(), 9u) << "every part was sent although the upload was interrupted";
  (void)file;
}

TEST_F(CliUploads, CtrlCDuringPutAbortsTheMultipartUpload) {
  FaultServer server({}, multipart_mode(std::chrono::milliseconds(150)));
  expect_signal_aborts_the_upload(SIGINT, file_, put_args(server), server, home_);
}

TEST_F(CliUploads, SigtermDuringPutAbortsTheMultipartUpload) {
  FaultServer server({}, multipart_mode(std::chrono::milliseconds(150)));
  expect_signal_aborts_the_upload(SIGTERM, file_, put_args(server), server, home_);
}

TEST_F(CliUploads, ASecondCtrlCQuitsAtOnceWhileAPartHangs) {
  FaultServer server({}, multipart_mode());
  server.add_rule({.method = "PUT", .query = {{"partNumber", "2"}}, .fault = Fault::stall()});
  testing::RunningCli cli(put_args(server), cli_environment(home_));
  ASSERT_TRUE(wait_until([&] { return server.requests_received() >= 3; }));  // initiate, part 1, part 2 (hanging)
  cli.signal(SIGINT);
  // The abort goes out at once, while part 2 still hangs...
  ASSERT_TRUE(wait_until([&] { return server.uploads_aborted() == 1; })) << "no AbortMultipartUpload arrived";
  // ...and the command would now wait for part 2 to time out; a second Ctrl-C does not.
  cli.signal(SIGINT);
  const CliResult r = cli.wait();
  EXPECT_EQ(r.exit_code, 128 + SIGINT) << describe(r);
  EXPECT_NE(r.err.find("quitting at once"), std::string::npos) << describe(r);
  EXPECT_TRUE(server.open_upload_ids().empty());
}

TEST_F(CliUploads, UploadsListsAndAbortsWhatWasLeftUnderAPrefix) {
  FaultServer server({}, multipart_mode());
  // Two uploads left open by a process that could not abort them, and one under another prefix.
  server.add_rule({.method = "PUT", .fault = Fault::status_error(403)});
  server.add_rule({.method = "DELETE", .fault = Fault::status_error(403)});
  {
    Engine engine({.threads = 1, .arena_bytes = 1 << 20});
    s3::S3Options options;
    options.endpoints = {server.endpoint()};
    options.environment = s3::environment_from(cli_environment(home_));
    options.multipart_part_size = 1 << 10;
    s3::S3Client client = s3::S3Client::open(engine, options);
    const std::vector<std::byte> body(4 << 10);
    for (const char* key : {"dir/a.bin", "dir/sub/b.bin", "other/c.bin"}) {
      EXPECT_THROW(client.put_multipart(kBucket, key, body), Error);
    }
  }
  server.clear_rules();
  ASSERT_EQ(server.open_upload_ids().size(), 3u);

  const CliResult listed = ringfetch(server, {"uploads", std::string("s3://") + kBucket + "/dir/"});
  ASSERT_EQ(listed.exit_code, 0) << describe(listed);
  EXPECT_NE(listed.out.find("rf-upload-1  s3://bucket/dir/a.bin"), std::string::npos) << describe(listed);
  EXPECT_NE(listed.out.find("rf-upload-2  s3://bucket/dir/sub/b.bin"), std::string::npos) << describe(listed);
  EXPECT_EQ(listed.out.find("other/c.bin"), std::string::npos) << describe(listed);
  EXPECT_EQ(server.open_upload_ids().size(), 3u) << "listing aborted something";

  const CliResult aborted = ringfetch(server, {"uploads", std::string("s3://") + kBucket + "/dir/", "--abort"});
  ASSERT_EQ(aborted.exit_code, 0) << describe(aborted);
  EXPECT_EQ(testing::line_count(aborted.out), 2u) << describe(aborted);
  EXPECT_EQ(server.open_upload_ids(), std::vector<std::string>{"rf-upload-3"});

  const CliResult json = ringfetch(server, {"uploads", std::string("s3://") + kBucket, "--json"});
  ASSERT_EQ(json.exit_code, 0) << describe(json);
  EXPECT_NE(json.out.find("\"upload_id\":\"rf-upload-3\""), std::string::npos) << describe(json);
}

TEST_F(CliUploads, PartSizesS3RefusesAreRefusedBeforeAnythingIsSent) {
  FaultServer server({}, multipart_mode());
  const std::string url = std::string("s3://") + kBucket + "/k";
  EXPECT_TRUE(testing::failed_with(ringfetch(server, {"put", file_.string(), url, "--part-size", "4M"}),
                                   testing::kExitUsage, "S3 accepts parts of 5 MiB to 5 GiB"));
  EXPECT_TRUE(testing::failed_with(ringfetch(server, {"put", file_.string(), url, "--part-size", "6G"}),
                                   testing::kExitUsage, "S3 accepts parts of 5 MiB to 5 GiB"));
  // 10,113 parts of 5 MiB: a sparse file, so that nothing is written to disk.
  const std::filesystem::path huge = dir_ / "huge.bin";
  const int fd = ::open(huge.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(10112 * kPartBytes + 1)), 0);
  ::close(fd);
  const CliResult too_many = ringfetch(server, {"put", huge.string(), url, "--part-size", "5M"});
  EXPECT_TRUE(testing::failed_with(too_many, testing::kExitUsage, "makes 10113 parts; S3 allows at most 10,000"));
  EXPECT_NE(too_many.err.find("--part-size 6M"), std::string::npos) << describe(too_many);
  EXPECT_EQ(server.requests_received(), 0u) << "a request went out for an upload S3 would refuse";
}

TEST(CliGetPartSize, AbsurdlySmallPartsAreRefused) {
  EXPECT_TRUE(testing::failed_with(testing::run_cli({"get", "file:///tmp/x", "/tmp/y", "--part-size", "100"}),
                                   testing::kExitUsage, "--part-size 100"));
}

}  // namespace
}  // namespace ringfetch
