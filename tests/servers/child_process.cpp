// Child processes for the harness (see child_process.hpp). Everything the child does between fork and exec is
// async-signal-safe (the test binary has other threads, e.g. a FaultServer): argv, the log fd and /dev/null are
// prepared before fork, and exec failure travels back through a close-on-exec pipe so it is a clear error here
// rather than a silent early exit.
#include "servers/child_process.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace ringfetch::testing {
namespace {

constexpr auto kReapPollInterval = std::chrono::milliseconds(5);
// After SIGKILL the kernel tears the process down promptly; this only bounds a pathological wait.
constexpr auto kAfterKillWait = std::chrono::seconds(10);
constexpr mode_t kLogMode = 0644;
// Signals whose disposition or mask the child must not inherit from the test binary.
constexpr int kResetSignals[] = {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2};

std::string errno_text(const std::string& what, int err) { return what + ": " + std::strerror(err); }

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// In the child, after fork: only async-signal-safe calls. Never returns.
[[noreturn]] void exec_child(char* const* argv, int log_fd, int null_fd, int error_pipe, int death_signal,
                             pid_t parent) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, death_signal);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  for (int sig : kResetSignals) ::signal(sig, SIG_DFL);
  if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(log_fd, STDOUT_FILENO) < 0 || ::dup2(log_fd, STDERR_FILENO) < 0) {
    int err = errno;
    (void)!::write(error_pipe, &err, sizeof err);
    ::_exit(127);
  }
  // Keep the error pipe (close-on-exec) and drop every other inherited descriptor.
  if (error_pipe > STDERR_FILENO + 1) {
    ::close_range(STDERR_FILENO + 1, static_cast<unsigned>(error_pipe) - 1, 0);
  }
  ::close_range(static_cast<unsigned>(error_pipe) + 1, ~0u, 0);
  ::execv(argv[0], argv);
  int err = errno;
  (void)!::write(error_pipe, &err, sizeof err);
  ::_exit(127);
}

// Reads the errno the child sent if exec failed; 0 once exec succeeded (the pipe closed on exec).
int read_exec_error(int fd) {
  int err = 0;
  for (;;) {
    ssize_t n = ::read(fd, &err, sizeof err);
    if (n < 0 && errno == EINTR) continue;
    return n == static_cast<ssize_t>(sizeof err) ? err : 0;
  }
}

}  // namespace

std::filesystem::path find_executable(std::string_view name) {
  if (name.find('/') != std::string_view::npos) return std::filesystem::path(name);
  const char* path_env = std::getenv("PATH");
  std::string_view dirs = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    std::size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return std::filesystem::absolute(candidate);
  }
  throw std::runtime_error("'" + std::string(name) + "' not found on PATH");
}

ChildProcess::ChildProcess(const ChildSpec& spec) {
  if (spec.argv.empty()) throw std::runtime_error("ChildProcess: empty argv");
  std::vector<std::string> args = spec.argv;
  args[0] = find_executable(args[0]).string();
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  Fd log(::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, kLogMode));
  if (log.get() < 0) throw std::runtime_error(errno_text("open " + spec.log_file.string(), errno));
  Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) throw std::runtime_error(errno_text("open /dev/null", errno));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2", errno));
  Fd pipe_read(pipe_fds[0]);
  Fd pipe_write(pipe_fds[1]);

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(errno_text("fork", errno));
  if (pid == 0) exec_child(argv.data(), log.get(), null_fd.get(), pipe_write.get(), spec.parent_death_signal, parent);

  pid_ = pid;
  ::setpgid(pid, pid);  // also done in the child; whichever runs first wins, so a kill(-pid) never misses
  pipe_write.reset();
  if (int err = read_exec_error(pipe_read.get()); err != 0) {
    terminate(SIGKILL, std::chrono::milliseconds(0));
    throw std::runtime_error(errno_text("exec " + args[0], err));
  }
}

ChildProcess::~ChildProcess() { terminate(SIGKILL, std::chrono::milliseconds(0)); }

bool ChildProcess::exited() {
  if (wait_status_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) wait_status_ = status;
  if (r < 0) wait_status_ = 0;  // ECHILD: somebody else reaped it; treat as gone
  return wait_status_.has_value();
}

bool ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exited()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kReapPollInterval);
  }
  return true;
}

std::string ChildProcess::describe_exit() const {
  if (!wait_status_) return "running";
  int status = *wait_status_;
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

std::optional<int> ChildProcess::exit_code() const {
  if (!wait_status_ || !WIFEXITED(*wait_status_)) return std::nullopt;
  return WEXITSTATUS(*wait_status_);
}

void ChildProcess::terminate(int signal, std::chrono::milliseconds grace) {
  if (pid_ <= 0 || group_cleaned_) return;
  if (!exited()) {
    ::kill(pid_, signal);
    if (!wait_for_exit(grace)) {
      ::kill(-pid_, SIGKILL);
      wait_for_exit(kAfterKillWait);
    }
  }
  // The group id stays reserved while any member lives, so this cannot hit an unrelated process.
  ::kill(-pid_, SIGKILL);
  group_cleaned_ = true;
}

int run_command(const ChildSpec& spec, std::chrono::milliseconds timeout) {
  ChildProcess child(spec);
  if (!child.wait_for_exit(timeout)) {
    child.terminate(SIGKILL, std::chrono::milliseconds(0));
    throw std::runtime_error("'" + spec.argv[0] + "' did not finish within " + std::to_string(timeout.count()) + " ms");
  }
  std::optional<int> code = child.exit_code();
  if (!code) throw std::runtime_error("'" + spec.argv[0] + "' " + child.describe_exit());
  return *code;
}

}  // namespace ringfetch::testing
