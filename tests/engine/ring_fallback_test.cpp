// A ring that cannot start must not break the default: run as an unprivileged user (no CAP_IPC_LOCK) under a
// tight RLIMIT_MEMLOCK, `ringfetch demo` falls back to smaller rings, or to epoll when no ring starts, says so in
// one line and still verifies every byte. Needs root (to drop to another user with setpriv); skipped otherwise.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "servers/temp_dir.hpp"

#ifndef RINGFETCH_CLI_PATH
#error "RINGFETCH_CLI_PATH must name the ringfetch binary under test"
#endif

namespace ringfetch {
namespace {

struct DemoRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
  std::string first_line;
};

// The demo as user `nobody` with `ulimit -l KIB`, the backend left to the engine.
DemoRun demo_as_nobody(unsigned memlock_kib, const std::string& tmp) {
  const std::string command = "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "
                              "--bounding-set=-all env -u RINGFETCH_BACKEND -u RINGFETCH_NO_REGISTER TMPDIR=" +
                              tmp + " sh -c 'ulimit -l " + std::to_string(memlock_kib) + " && exec " +
                              RINGFETCH_CLI_PATH + " demo --size-mib 8' 2>&1";
  DemoRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) run.output.append(buffer, n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.first_line = run.output.substr(0, run.output.find('\n'));
  return run;
}

class RingFallback : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs root and setpriv";
    ::chmod(tmp_.path().c_str(), 0777);
  }
  testing::TempDir tmp_{"ringfetch-ring-fallback-", "/tmp"};
};

TEST_F(RingFallback, ATightMemlockLimitShrinksTheRingsAndTheDemoStillVerifies) {
  const DemoRun run = demo_as_nobody(64, tmp_.path().string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("verified: every byte"), std::string::npos) << run.output;
  // The one logged line: smaller rings where the kernel charges ring memory to RLIMIT_MEMLOCK, else epoll.
  const bool smaller = run.first_line.find("using rings of") != std::string::npos;
  const bool epoll = run.first_line.find("using the epoll backend") != std::string::npos;
  EXPECT_TRUE(smaller || epoll || run.first_line.rfind("dataset:", 0) == 0) << run.output;
  EXPECT_EQ(run.output.find("cannot start engine thread"), std::string::npos) << run.output;
}

TEST_F(RingFallback, NoMemlockAtAllFallsBackToEpoll) {
  const DemoRun run = demo_as_nobody(0, tmp_.path().string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("verified: every byte"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("cannot start engine thread"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("Backend::kAuto"), std::string::npos) << "C++ advice shown by the CLI\n" << run.output;
}

}  // namespace
}  // namespace ringfetch
