// run_cli: posix_spawn with both pipes drained through poll (a child that fills one pipe while we block on the
// other would deadlock), then waitpid.
#include "servers/run_cli.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#ifndef RINGFETCH_CLI_PATH
#error "RINGFETCH_CLI_PATH must name the ringfetch binary under test"
#endif

extern char** environ;

namespace ringfetch::testing {
namespace {

constexpr size_t kReadChunk = 64 << 10;

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Drains both pipes until the child closes them (or the deadline passes); returns false on timeout.
bool drain_pipes(int out_fd, int err_fd, CliResult* result) {
  const auto deadline = std::chrono::steady_clock::now() + kCliTimeout;
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&result->out, &result->err};
  int open_count = 2;
  char buffer[kReadChunk];
  while (open_count > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EAGAIN) {
        fds[i].fd = -1;  // poll ignores negative descriptors
        --open_count;
      }
    }
  }
  return true;
}

// "NAME=value" strings and the null-terminated pointer array execve wants, kept together so the pointers stay valid.
struct Environment {
  std::vector<std::string> entries;
  std::vector<char*> pointers;
};

Environment make_environment(const std::map<std::string, std::string>& variables) {
  Environment environment;
  for (const auto& [name, value] : variables) environment.entries.push_back(name + "=" + value);
  for (std::string& entry : environment.entries) environment.pointers.push_back(entry.data());
  environment.pointers.push_back(nullptr);
  return environment;
}

struct Spawned {
  pid_t pid = -1;
  int out_fd = -1;
  int err_fd = -1;
};

Spawned start_cli(const std::vector<std::string>& args, char** envp, const std::string& stdin_path = {}) {
  std::vector<std::string> words = {RINGFETCH_CLI_PATH};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  if (!stdin_path.empty()) posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, stdin_path.c_str(), O_RDONLY, 0);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << strerror(spawned);
    return {};
  }
  set_nonblocking(out_pipe[0]);
  set_nonblocking(err_pipe[0]);
  return {pid, out_pipe[0], err_pipe[0]};
}

CliResult finish_cli(const Spawned& child) {
  CliResult result;
  if (child.pid < 0) return result;
  if (!drain_pipes(child.out_fd, child.err_fd, &result)) {
    kill(child.pid, SIGKILL);
    ADD_FAILURE() << "ringfetch did not finish within " << kCliTimeout.count() << " s; stderr so far: " << result.err;
  }
  close(child.out_fd);
  close(child.err_fd);
  int status = 0;
  struct rusage usage{};
  while (wait4(child.pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.max_rss_kib = static_cast<uint64_t>(usage.ru_maxrss);
  return result;
}

CliResult spawn_cli(const std::vector<std::string>& args, char** envp) { return finish_cli(start_cli(args, envp)); }

}  // namespace

CliResult run_cli(const std::vector<std::string>& args) { return spawn_cli(args, environ); }

CliResult run_cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& environment) {
  Environment child_environment = make_environment(environment);
  return spawn_cli(args, child_environment.pointers.data());
}

CliResult run_cli_with_stdin(const std::vector<std::string>& args, const std::string& input) {
  return finish_cli(start_cli(args, environ, input));
}

RunningCli::RunningCli(const std::vector<std::string>& args) {
  const Spawned child = start_cli(args, environ);
  pid_ = child.pid;
  out_fd_ = child.out_fd;
  err_fd_ = child.err_fd;
}

RunningCli::RunningCli(const std::vector<std::string>& args, const std::map<std::string, std::string>& environment) {
  Environment child_environment = make_environment(environment);
  const Spawned child = start_cli(args, child_environment.pointers.data());
  pid_ = child.pid;
  out_fd_ = child.out_fd;
  err_fd_ = child.err_fd;
}

RunningCli::~RunningCli() {
  if (pid_ < 0) return;
  kill(pid_, SIGKILL);
  wait();
}

void RunningCli::signal(int signal_number) const {
  if (pid_ >= 0) kill(pid_, signal_number);
}

CliResult RunningCli::wait() {
  const CliResult result = finish_cli({pid_, out_fd_, err_fd_});
  pid_ = -1;
  return result;
}

std::string describe(const CliResult& result) {
  return "exit " + std::to_string(result.exit_code) + "\n--- stdout ---\n" + result.out + "\n--- stderr ---\n" +
         result.err;
}

size_t line_count(const std::string& text) { return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')); }

::testing::AssertionResult failed_with(const CliResult& result, int exit_code, std::string_view expected) {
  if (result.exit_code != exit_code) {
    return ::testing::AssertionFailure() << "exit status " << result.exit_code << ", wanted " << exit_code << "\n"
                                         << describe(result);
  }
  if (line_count(result.err) != 1) return ::testing::AssertionFailure() << "not one line on stderr\n" << describe(result);
  if (result.err.find(expected) == std::string::npos) {
    return ::testing::AssertionFailure() << "expected '" << expected << "'\n" << describe(result);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ringfetch::testing
