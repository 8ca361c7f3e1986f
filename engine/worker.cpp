// Worker implementation: the loop of one engine thread — run posted tasks, then let the ring run callbacks,
// sleeping in the kernel when idle; at stop, keep running until every operation issued here has completed.
#include "engine/worker.hpp"

#include <future>

namespace ringfetch::engine {
namespace {
thread_local Worker* current_worker = nullptr;
}  // namespace

Worker* Worker::current() noexcept { return current_worker; }

std::unique_ptr<Worker> Worker::start(unsigned id, BackendKind kind, const LoopOptions& options,
                                      std::string* reason) {
  std::unique_ptr<Worker> worker(new Worker(id));
  std::promise<std::string> created;
  Worker* self = worker.get();
  worker->thread_ = std::thread([self, kind, options, &created] {
    std::string why;
    self->loop_ = make_io_loop(kind, options, &why);
    const bool ok = self->loop_ != nullptr;
    created.set_value(ok ? std::string() : (why.empty() ? std::string("unknown error") : why));
    if (ok) {
      current_worker = self;
      self->run();
    }
  });
  std::string why = created.get_future().get();
  if (!why.empty()) {
    worker->thread_.join();
    *reason = why;
    return nullptr;
  }
  return worker;
}

Worker::~Worker() { stop(); }

void Worker::request_stop() {
  stopping_.store(true);
  if (loop_) loop_->wake();
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  request_stop();
  thread_.join();
}

void Worker::post(std::function<void()> task) {
  {
    std::unique_lock lock(mutex_);
    if (exited_) {
      // The loop is gone (engine shutdown): run on the caller, as the loop would have run it before exiting.
      lock.unlock();
      task();
      return;
    }
    tasks_.push_back(std::move(task));
  }
  // A post from the worker itself needs no wake-up: its loop runs queued tasks before it waits again.
  if (!on_worker_thread()) loop_->wake();
}

void Worker::post(PostedTask* task) {
  {
    std::unique_lock lock(mutex_);
    if (exited_) {
      lock.unlock();
      task->run(task);
      return;
    }
    task->next = nullptr;
    if (intrusive_tail_ != nullptr) intrusive_tail_->next = task; else intrusive_head_ = task;
    intrusive_tail_ = task;
  }
  if (!on_worker_thread()) loop_->wake();
}

bool Worker::try_post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (exited_) return false;
    tasks_.push_back(std::move(task));
  }
  if (!on_worker_thread()) loop_->wake();
  return true;
}

void Worker::call(const std::function<void()>& task) {
  if (on_worker_thread()) {
    task();
    return;
  }
  std::promise<void> done;
  post([&] {
    task();
    done.set_value();
  });
  done.get_future().wait();
}

bool Worker::run_tasks() {
  std::vector<std::function<void()>> batch;
  PostedTask* intrusive;
  {
    std::lock_guard lock(mutex_);
    batch.swap(tasks_);
    intrusive = intrusive_head_;
    intrusive_head_ = intrusive_tail_ = nullptr;
  }
  for (auto& task : batch) task();
  const bool ran = !batch.empty() || intrusive != nullptr;
  while (intrusive != nullptr) {
    PostedTask* next = intrusive->next;  // read first: running may reuse the task
    intrusive->run(intrusive);
    intrusive = next;
  }
  return ran;
}

void Worker::run() {
  uint64_t drain_deadline = 0;
  for (;;) {
    bool ran_tasks = run_tasks();
    if (stopping_.load()) {
      if (drain_deadline == 0) drain_deadline = monotonic_ns() + kDrainLimitNs;
      bool idle;
      {
        std::lock_guard lock(mutex_);
        idle = tasks_.empty() && intrusive_head_ == nullptr;
      }
      if ((idle && loop_->in_flight() == 0) || monotonic_ns() > drain_deadline) break;
    }
    loop_->run_once(ran_tasks ? 0 : (stopping_.load() ? 10'000'000 : kIdleWaitNs));
  }
  // From here on post() runs tasks on its caller: another worker still draining may tear down objects that ask this
  // one to clean up (an HTTP pool closing its idle connections), and must not wait for a loop that has ended.
  std::vector<std::function<void()>> late;
  PostedTask* late_intrusive;
  {
    std::lock_guard lock(mutex_);
    exited_ = true;
    late.swap(tasks_);
    late_intrusive = intrusive_head_;
    intrusive_head_ = intrusive_tail_ = nullptr;
  }
  for (auto& task : late) task();
  while (late_intrusive != nullptr) {
    PostedTask* next = late_intrusive->next;
    late_intrusive->run(late_intrusive);
    late_intrusive = next;
  }
}

}  // namespace ringfetch::engine
