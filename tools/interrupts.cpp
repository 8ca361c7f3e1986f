// InterruptHandler: sigwait on a dedicated thread. pthread_kill of the handler's own thread with SIGTERM (after
// setting stopping_) is how the destructor wakes it: the signal is blocked everywhere, so only sigwait takes it.
#include "interrupts.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

namespace ringfetch::cli {
namespace {

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

InterruptHandler::InterruptHandler(std::function<void(int)> on_first) : on_first_(std::move(on_first)) {
  const sigset_t set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this] { wait_for_signals(); });
}

InterruptHandler::~InterruptHandler() {
  stopping_.store(true);
  pthread_kill(thread_.native_handle(), SIGTERM);
  thread_.join();
  // Signals that arrived after the thread stopped stay pending and take their default action now.
  const sigset_t set = handled_signals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

void InterruptHandler::wait_for_signals() {
  const sigset_t set = handled_signals();
  while (true) {
    int received = 0;
    if (sigwait(&set, &received) != 0) continue;
    if (stopping_.load()) return;
    if (signal_.load() != 0) {
      say("interrupted again; quitting at once");
      std::fflush(nullptr);
      ::_exit(128 + signal_.load());
    }
    signal_.store(received);
    if (on_first_) on_first_(received);
  }
}

void FileToRemoveOnInterrupt::set(std::string path) {
  std::lock_guard lock(mutex_);
  path_ = std::move(path);
}

void FileToRemoveOnInterrupt::clear() {
  std::lock_guard lock(mutex_);
  path_.clear();
}

void FileToRemoveOnInterrupt::remove_now() {
  std::lock_guard lock(mutex_);
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal " + std::to_string(signal);
  }
}

void say(const std::string& message) {
  const std::string line = "ringfetch: " + message + "\n";
  [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace ringfetch::cli
