// Runs the `ringfetch` program under test (RINGFETCH_CLI_PATH) as a separate process with its stdout, stderr and
// exit status captured, for the CLI tests of every layer. A run that does not finish within kCliTimeout is killed
// and fails the test.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ringfetch::testing {

// The CLI's exit statuses: 1 when the work failed, 2 when the command line is wrong.
inline constexpr int kExitRuntimeError = 1;
inline constexpr int kExitUsage = 2;

inline constexpr auto kCliTimeout = std::chrono::seconds(180);  // the 64 MiB demo takes a few seconds

struct CliResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
  uint64_t max_rss_kib = 0;  // the process's peak resident set (getrusage's ru_maxrss)
};

// Runs the CLI with `args` in the test's own environment.
CliResult run_cli(const std::vector<std::string>& args);
// Runs the CLI with `args` and exactly `environment` as its environment (nothing is inherited).
CliResult run_cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& environment);

// The CLI started in the background, for tests that signal it while it runs. Its output is collected by wait();
// a run still going at destruction is killed.
class RunningCli {
 public:
  explicit RunningCli(const std::vector<std::string>& args);
  // With exactly `environment` as its environment.
  RunningCli(const std::vector<std::string>& args, const std::map<std::string, std::string>& environment);
  ~RunningCli();
  RunningCli(const RunningCli&) = delete;
  RunningCli& operator=(const RunningCli&) = delete;

  int pid() const noexcept { return pid_; }
  void signal(int signal_number) const;
  // Collects stdout and stderr until the program ends (or kCliTimeout passes), then its exit status.
  CliResult wait();

 private:
  int pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
};

// Runs the CLI with `args` and the file `input` as its stdin.
CliResult run_cli_with_stdin(const std::vector<std::string>& args, const std::string& input);

// "exit N", then stdout and stderr, for failure messages.
std::string describe(const CliResult& result);

// Lines in `text` (newline count).
size_t line_count(const std::string& text);

// The command failed the way the CLI promises: exit status `exit_code` and exactly one line on stderr, which
// contains `expected`.
::testing::AssertionResult failed_with(const CliResult& result, int exit_code, std::string_view expected);

}  // namespace ringfetch::testing
