// A child process for the test harness (nginx, node/s3rver, openssl, npm) that cannot outlive the test binary:
// it runs in its own process group (so its own children, e.g. nginx workers, are killed with it), gets a
// parent-death signal, has stdin from /dev/null and stdout+stderr appended to a log file, and is always reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringfetch::testing {

struct ChildSpec {
  // argv[0] is a path or a name searched on PATH (resolved before fork, so a missing tool is a clear error).
  std::vector<std::string> argv;
  // stdout and stderr are appended here.
  std::filesystem::path log_file;
  // Sent to the child when the thread that started it dies (PR_SET_PDEATHSIG). Start servers from a thread that
  // lives as long as they do (the gtest main thread does).
  int parent_death_signal = SIGKILL;
};

// Absolute path of an executable: `name` itself if it contains '/', else the first match on PATH.
// Throws std::runtime_error if there is none.
std::filesystem::path find_executable(std::string_view name);

class ChildProcess {
 public:
  // Forks and execs; throws std::runtime_error (with errno text) if the program cannot be started.
  explicit ChildProcess(const ChildSpec& spec);
  // Kills the process group with SIGKILL if still running, and reaps the child.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const noexcept { return pid_; }

  // Reaps without blocking; true once the child has exited.
  bool exited();
  // Waits up to `timeout` for the child to exit; true if it has.
  bool wait_for_exit(std::chrono::milliseconds timeout);
  // "exited with status N" / "killed by signal N" / "running".
  std::string describe_exit() const;
  // Exit code if the child exited normally.
  std::optional<int> exit_code() const;

  // Sends `signal` to the child, waits up to `grace` for it to exit, then SIGKILLs the whole process group and
  // reaps. Leftover group members (children of the child) are SIGKILLed in every case. Idempotent.
  void terminate(int signal, std::chrono::milliseconds grace);

 private:
  pid_t pid_ = -1;
  std::optional<int> wait_status_;
  bool group_cleaned_ = false;
};

// Runs a command to completion within `timeout` (SIGKILL after it); returns its exit code.
// Throws std::runtime_error on timeout, on death by signal, or if it cannot start.
int run_command(const ChildSpec& spec, std::chrono::milliseconds timeout);

}  // namespace ringfetch::testing
