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

// "exit N", then stdout and stderr, for failure messages.
std::string describe(const CliResult& result);

// Lines in `text` (newline count).
size_t line_count(const std::string& text);

// The command failed the way the CLI promises: exit status `exit_code` and exactly one line on stderr, which
// contains `expected`.
::testing::AssertionResult failed_with(const CliResult& result, int exit_code, std::string_view expected);

}  // namespace ringfetch::testing
