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

// A task posted to a worker without allocating: its owner embeds it and keeps it alive until `run` has run.
struct PostedTask {
  void (*run)(PostedTask* task) = nullptr;
  void* context = nullptr;  // the owner's
  PostedTask* next = nullptr;
};

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

  // Thread-safe: runs `task` on the worker thread. After the loop has ended it runs `task` on the caller instead.
  void post(std::function<void()> task);
  // Thread-safe: the same for an intrusive task (no allocation).
  void post(PostedTask* task);
  // Thread-safe: like post, but after the loop has ended drops `task` and returns false.
  bool try_post(std::function<void()> task);
  // Thread-safe: runs `task` on the worker thread and waits for it.
  void call(const std::function<void()>& task);
  bool on_worker_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }
  // The worker whose thread is running the caller, or nullptr on any other thread.
  static Worker* current() noexcept;

  // Registered slots this worker's ring has (worker thread only): a read may use READ_FIXED with a slot only once
  // its ring has it, and arena chunks are registered asynchronously.
  bool slot_ready(int32_t slot) const noexcept {
    return slot >= 0 && static_cast<size_t>(slot) < slots_ready_.size() && slots_ready_[static_cast<size_t>(slot)];
  }
  void set_slot_ready(int32_t slot, bool ready) {
    if (slot < 0) return;
    if (static_cast<size_t>(slot) >= slots_ready_.size()) slots_ready_.resize(static_cast<size_t>(slot) + 1, 0);
    slots_ready_[static_cast<size_t>(slot)] = ready ? 1 : 0;
  }

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
  PostedTask* intrusive_head_ = nullptr;  // guarded by mutex_
  PostedTask* intrusive_tail_ = nullptr;
  bool exited_ = false;  // the loop has ended; guarded by mutex_
  std::atomic<bool> stopping_{false};
  std::span<std::byte> scratch_;
  int32_t scratch_index_ = -1;
  std::vector<uint8_t> slots_ready_;  // worker thread only
  std::thread thread_;
};

}  // namespace ringfetch::engine
