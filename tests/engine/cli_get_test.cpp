// `ringfetch get` onto what a user may name as FILE: a regular file (replaced atomically, its permission bits
// kept), a symlink (followed; the link stays), a device node or a FIFO (written through, never replaced), '-'
// (stdout); and what Ctrl-C / SIGTERM leave behind (nothing), including partial files of processes that died.
// Device nodes are made with mknod in a private directory (the real /dev is never touched); that part is skipped
// where mknod is not permitted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "servers/fault_server.hpp"
#include "servers/run_cli.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::describe;
using testing::failed_with;
using testing::run_cli;

constexpr uint64_t kBlobBytes = (9 << 20) + 4321;  // more than one 8 MiB piece, not a multiple of anything
constexpr uint64_t kSeed = 31;

std::string as_text(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

mode_t mode_of(const fs::path& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return info.st_mode;
}

// Names in `dir` containing "ringfetch-partial".
std::vector<std::string> partial_files(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().find("ringfetch-partial") != std::string::npos) {
      names.push_back(entry.path().filename().string());
    }
  }
  return names;
}

class CliGetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    blob_ = as_text(testing::make_pattern(kBlobBytes, kSeed));
    fs::create_directories(dir_ / "store");
    testing::write_file(dir_ / "store" / "blob", blob_);
  }
  std::string blob_url() const { return "file://" + (dir_ / "store" / "blob").string(); }
  CliResult get(const fs::path& destination) { return run_cli({"get", blob_url(), destination.string()}); }

  testing::TempDir dir_{"ringfetch-cli-get-"};
  std::string blob_;
};

TEST_F(CliGetTest, ExistingRegularFileIsReplacedAndKeepsItsMode) {
  for (const mode_t mode : {mode_t{0600}, mode_t{0640}, mode_t{0755}}) {
    const fs::path out = dir_ / ("out-" + std::to_string(mode));
    testing::write_file(out, "old contents");
    ASSERT_EQ(::chmod(out.c_str(), mode), 0);
    const CliResult r = get(out);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(testing::read_file(out), blob_);
    EXPECT_TRUE(S_ISREG(mode_of(out)));
    EXPECT_EQ(mode_of(out) & 07777, mode) << "mode changed by the download";
  }
  EXPECT_TRUE(partial_files(dir_.path()).empty());
}

TEST_F(CliGetTest, SymlinkIsFollowedAndStaysALink) {
  fs::create_directories(dir_ / "real");
  const fs::path target = dir_ / "real" / "target.bin";
  testing::write_file(target, "old");
  ASSERT_EQ(::chmod(target.c_str(), 0600), 0);
  fs::create_symlink("real/target.bin", dir_ / "link.bin");           // relative, resolved from the link's dir
  fs::create_symlink(dir_ / "link.bin", dir_ / "link-to-link.bin");  // a chain
  const CliResult r = get(dir_ / "link-to-link.bin");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(S_ISLNK(mode_of(dir_ / "link.bin")));
  EXPECT_TRUE(S_ISLNK(mode_of(dir_ / "link-to-link.bin")));
  EXPECT_EQ(testing::read_file(target), blob_);
  EXPECT_EQ(mode_of(target) & 07777, 0600u);
  EXPECT_TRUE(partial_files(dir_ / "real").empty());

  fs::create_symlink("dangling-target.bin", dir_ / "dangling.bin");  // as a shell redirection: the target is made
  const CliResult dangling = get(dir_ / "dangling.bin");
  ASSERT_EQ(dangling.exit_code, 0) << describe(dangling);
  EXPECT_TRUE(S_ISLNK(mode_of(dir_ / "dangling.bin")));
  EXPECT_EQ(testing::read_file(dir_ / "dangling-target.bin"), blob_);

  fs::create_symlink("loop-b", dir_ / "loop-a");
  fs::create_symlink("loop-a", dir_ / "loop-b");
  EXPECT_TRUE(failed_with(get(dir_ / "loop-a"), testing::kExitRuntimeError, "Too many levels of symbolic links"));
}

TEST_F(CliGetTest, FifoIsWrittenThroughInOrder) {
  const fs::path fifo = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  std::string received;
  std::thread reader([&] {
    const int fd = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buffer[1 << 16];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) received.append(buffer, static_cast<size_t>(n));
    ::close(fd);
  });
  const CliResult r = get(fifo);
  reader.join();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(received == blob_) << "received " << received.size() << " bytes of " << blob_.size();
  EXPECT_TRUE(S_ISFIFO(mode_of(fifo))) << "the FIFO was replaced";
  EXPECT_TRUE(partial_files(dir_.path()).empty());
}

TEST_F(CliGetTest, DeviceNodesAreWrittenThroughNotReplaced) {
  const fs::path null_node = dir_ / "null";
  const fs::path full_node = dir_ / "full";
  if (::mknod(null_node.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0 ||
      ::mknod(full_node.c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0) {
    GTEST_SKIP() << "mknod not permitted here: " << std::strerror(errno);
  }
  const CliResult r = get(null_node);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(S_ISCHR(mode_of(null_node))) << "the device node was replaced by a file";

  // Like /dev/full: every write fails with ENOSPC, and the command must say so rather than succeed.
  EXPECT_TRUE(failed_with(get(full_node), testing::kExitRuntimeError, "No space left on device"));
  EXPECT_TRUE(S_ISCHR(mode_of(full_node))) << "the device node was replaced by a file";
  EXPECT_TRUE(partial_files(dir_.path()).empty());
}

TEST_F(CliGetTest, DashMeansStdout) {
  const CliResult r = run_cli({"get", blob_url(), "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out == blob_) << "stdout has " << r.out.size() << " bytes of " << blob_.size();
  EXPECT_FALSE(fs::exists(dir_ / "-"));
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(CliGetTest, PartialFilesOfDeadProcessesAreRemovedAndOthersKept) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // a pid that no process has now
  const std::string dead = "other.bin.ringfetch-partial-" + std::to_string(child);
  const std::string alive = "other.bin.ringfetch-partial-" + std::to_string(::getpid());
  const std::string not_ours = "notes.ringfetch-partial-draft";
  for (const std::string& name : {dead, alive, not_ours}) testing::write_file(dir_ / name, "x");
  const CliResult r = get(dir_ / "out.bin");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_FALSE(fs::exists(dir_ / dead)) << "stale partial file of a dead process kept";
  EXPECT_TRUE(fs::exists(dir_ / alive)) << "partial file of a running process removed";
  EXPECT_TRUE(fs::exists(dir_ / not_ours));
  EXPECT_NE(r.err.find(dead), std::string::npos) << describe(r);
}

// A download that stalls after the response head, so that the partial file exists and is reserved when the
// signal comes.
void expect_signal_removes_the_partial_file(int signal_number) {
  testing::TempDir dir("ringfetch-cli-get-signal-");
  testing::FaultServer server(testing::make_pattern(kBlobBytes, kSeed));
  server.add_rule({.method = "GET", .fault = testing::Fault::stall_after_head(4096)});
  testing::RunningCli cli({"get", server.endpoint() + "/blob", (dir / "out.bin").string()});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (partial_files(dir.path()).empty() || server.requests_received() < 2) {  // HEAD, then the GET
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no partial file appeared";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  cli.signal(signal_number);
  const CliResult r = cli.wait();
  EXPECT_EQ(r.exit_code, 128 + signal_number) << describe(r);
  EXPECT_NE(r.err.find("interrupted"), std::string::npos) << describe(r);
  EXPECT_TRUE(partial_files(dir.path()).empty()) << "partial file left behind";
  EXPECT_FALSE(fs::exists(dir / "out.bin"));
}

TEST(CliGetSignals, CtrlCRemovesThePartialFile) { expect_signal_removes_the_partial_file(SIGINT); }
TEST(CliGetSignals, SigtermRemovesThePartialFile) { expect_signal_removes_the_partial_file(SIGTERM); }

}  // namespace
}  // namespace ringfetch
