// io_uring refused the way container runtimes refuse it: a seccomp filter that fails io_uring_setup with EPERM
// (Docker's and containerd's default profiles do this). The engine must fall back to epoll and say why, or, when
// io_uring was demanded, fail with an error that says what to do. The filter is installed in a fresh copy of this
// test binary (the probe result is cached per process), which runs the child tests below and reports by exit code.
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "ringfetch/ringfetch.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch {
namespace {

constexpr char kChildVariable[] = "RINGFETCH_SECCOMP_CHILD";

void deny_io_uring_setup() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
  ASSERT_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
  ASSERT_EQ(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program), 0);
}

// What a container without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK looks like to io_uring registration.
void limit_locked_memory() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  ASSERT_EQ(syscall(SYS_capget, &header, data), 0);
  data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
  ASSERT_EQ(syscall(SYS_capset, &header, data), 0);
  rlimit limit{64 << 10, 64 << 10};
  ASSERT_EQ(setrlimit(RLIMIT_MEMLOCK, &limit), 0);
}

bool in_child() { return std::getenv(kChildVariable) != nullptr; }

// Runs this binary again with the filter installed, only the child tests selected; true when they all pass.
bool run_child(const std::string& filter) {
  const pid_t pid = fork();
  if (pid == 0) {
    setenv(kChildVariable, "1", 1);
    unsetenv("RINGFETCH_BACKEND");  // the child decides by what the kernel allows, not by the forced mode
    unsetenv("RINGFETCH_NO_REGISTER");
    const std::string flag = "--gtest_filter=" + filter;
    execl("/proc/self/exe", "seccomp-child", flag.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(SeccompFallback, EpollWhenTheKernelRefusesIoUring) {
  if (in_child()) GTEST_SKIP();
  EXPECT_TRUE(run_child("SeccompChild.*"));
}

TEST(SeccompChild, AutoFallsBackToEpollAndSaysWhy) {
  if (!in_child()) GTEST_SKIP() << "runs in the child process only";
  deny_io_uring_setup();
  testing::TempDir dir("ringfetch-seccomp-");
  testing::write_pattern_file(dir / "blob", 1 << 20, 3);
  Engine engine({.threads = 1, .arena_bytes = 4 << 20});
  const Stats stats = engine.stats();
  EXPECT_EQ(stats.backend, "epoll");
  EXPECT_FALSE(stats.buffers_registered);
  EXPECT_NE(stats.fallback_reason.find("io_uring unavailable"), std::string::npos) << stats.fallback_reason;
  EXPECT_NE(stats.fallback_reason.find("Operation not permitted"), std::string::npos) << stats.fallback_reason;
  Store store = Store::open("file://" + dir.path().string(), engine);
  Plan plan;
  plan.add("blob", 1000, 5000);
  for (const ItemView& item : store.fetch(plan)) {
    EXPECT_EQ(item.size(), 5000u);
    EXPECT_EQ(std::vector<std::byte>(item.bytes().begin(), item.bytes().end()),
              testing::pattern_slice(1000, 5000, 3));
  }
}

TEST(SeccompChild, DemandingIoUringIsAClearError) {
  if (!in_child()) GTEST_SKIP() << "runs in the child process only";
  deny_io_uring_setup();
  try {
    Engine engine({.threads = 1, .arena_bytes = 4 << 20, .backend = Backend::kIoUring});
    FAIL() << "the engine started although io_uring is refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("Operation not permitted"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Backend::kAuto"), std::string::npos) << e.what();
  }
}

TEST(SeccompFallback, PlainReadsWhenRegistrationIsRefused) {
  if (in_child()) GTEST_SKIP();
  EXPECT_TRUE(run_child("MemlockChild.*"));
}

TEST(MemlockChild, RegistrationRefusedMeansPlainReads) {
  if (!in_child()) GTEST_SKIP() << "runs in the child process only";
  limit_locked_memory();
  testing::TempDir dir("ringfetch-memlock-");
  testing::write_pattern_file(dir / "blob", 1 << 20, 4);
  Engine engine({.threads = 1, .arena_bytes = 8 << 20});
  const Stats stats = engine.stats();
  if (stats.backend != "io_uring") GTEST_SKIP() << "registration is only tried on io_uring";
  EXPECT_FALSE(stats.buffers_registered);
  EXPECT_NE(stats.fallback_reason.find("buffer registration refused"), std::string::npos) << stats.fallback_reason;
  Store store = Store::open("file://" + dir.path().string(), engine);
  Plan plan;
  plan.add("blob", 4096, 100000);
  for (const ItemView& item : store.fetch(plan)) {
    EXPECT_EQ(std::vector<std::byte>(item.bytes().begin(), item.bytes().end()),
              testing::pattern_slice(4096, 100000, 4));
  }
}

}  // namespace
}  // namespace ringfetch
