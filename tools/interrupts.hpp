// Interrupts: what Ctrl-C (SIGINT), SIGTERM and SIGHUP do while a command has something to clean up. The signals
// are blocked in the calling thread before the engine starts (so every engine thread inherits the mask) and taken
// by sigwait on a thread of our own, where ordinary code may run: `get` removes its partial file, `put` aborts its
// multipart upload. A second signal ends the process at once, as users expect of a second Ctrl-C. The exit status
// of an interrupted command is 128 + the signal number, as shells report it.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ringfetch::cli {

class InterruptHandler {
 public:
  // on_first runs on the handler's thread when the first signal arrives.
  explicit InterruptHandler(std::function<void(int signal)> on_first);
  ~InterruptHandler();  // stops the thread and restores the signal mask
  InterruptHandler(const InterruptHandler&) = delete;
  InterruptHandler& operator=(const InterruptHandler&) = delete;

  // The first signal received, or 0.
  int signal() const noexcept { return signal_.load(); }
  // 128 + signal(): the exit status of a command ended by it.
  int exit_status() const noexcept { return 128 + signal(); }

 private:
  void wait_for_signals();

  std::function<void(int)> on_first_;
  std::atomic<int> signal_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// A file that is removed when the process is interrupted (the partial file of a download). set() and clear()
// are called by the command; remove_now() by the interrupt handler.
class FileToRemoveOnInterrupt {
 public:
  void set(std::string path);
  void clear();
  void remove_now();

 private:
  std::mutex mutex_;
  std::string path_;
};

// "SIGINT", "SIGTERM", "SIGHUP", else "signal N".
std::string signal_name(int signal);

// Writes "ringfetch: <message>" and a newline to stderr with one write(2), safe from any thread.
void say(const std::string& message);

}  // namespace ringfetch::cli
