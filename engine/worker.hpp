// Worker: one engine thread that owns one IoLoop (ring) and everything issued on it. Other threads talk to it
// only by post(), which queues a task and wakes the loop; nothing on the data path takes a lock shared between
// workers.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/io_loop.hpp"

namespace ringfetch::engine {

class Worker {
 public:
  static constexpr uint64_t kIdleWaitNs = 500'000'000;   // loop wake-up when nothing happens (no busy loop)
  static constexpr uint64_t kDrainLimitNs = 10'000'000'000;  // longest wait for in-flight ops at shutdown

  // Starts the thread and creates the loop on it (a SINGLE_ISSUER ring belongs to the thread that made it).
  // Returns nullptr and sets *reason when the loop cannot be created.
  static std::unique_ptr<Worker> start(unsigned id, BackendKind kind, const LoopOptions& options,
                                       std::string* reason);
  ~Worker();  // stops and joins
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Thread-safe: runs `task` on the worker thread.
  void post(std::function<void()> task);
  // Thread-safe: runs `task` on the worker thread and waits for it.
  void call(const std::function<void()>& task);
  bool on_worker_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }

  unsigned id() const noexcept { return id_; }
  IoLoop& loop() noexcept { return *loop_; }

  // Scratch memory for gap bytes (contents are garbage; many reads may land in it at once).
  std::span<std::byte> scratch() const noexcept { return scratch_; }
  int32_t scratch_buf_index() const noexcept { return scratch_index_; }
  void set_scratch(std::span<std::byte> memory, int32_t buf_index) {
    scratch_ = memory;
    scratch_index_ = buf_index;
  }

  // Asks the loop to finish (it drains its work first); stop() also joins the thread.
  void request_stop();
  void stop();

 private:
  explicit Worker(unsigned id) : id_(id) {}
  void run();
  bool run_tasks();

  unsigned id_;
  std::unique_ptr<IoLoop> loop_;
  std::mutex mutex_;
  std::vector<std::function<void()>> tasks_;
  bool exited_ = false;  // the loop has ended; guarded by mutex_
  std::atomic<bool> stopping_{false};
  std::span<std::byte> scratch_;
  int32_t scratch_index_ = -1;
  std::thread thread_;
};

}  // namespace ringfetch::engine
