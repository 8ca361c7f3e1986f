// The io_uring backend of IoLoop: one ring per engine thread, set up with SINGLE_ISSUER/DEFER_TASKRUN where the
// kernel has them (found by probing, never by version strings). Op timeouts are deadlines swept by one ring
// timeout that ticks while any timed op is in flight (a linked timeout per op would double the SQEs and arm a
// kernel timer per receive); an expired op is cancelled and reported as -ETIMEDOUT. Cross-thread wake-ups are an
// eventfd read kept armed on the ring, so an idle loop sleeps in the kernel.
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "engine/io_loop.hpp"

namespace ringfetch::engine {
namespace {

constexpr uint64_t kIgnoredUserData = 0;  // CQEs of link timeouts and cancel requests
constexpr unsigned kMaxCqeBatch = 256;
constexpr uint64_t kSweepIntervalNs = 10'000'000;  // timeout granularity

__kernel_timespec to_timespec(uint64_t ns) {
  __kernel_timespec ts{};
  ts.tv_sec = static_cast<int64_t>(ns / 1000000000ull);
  ts.tv_nsec = static_cast<long long>(ns % 1000000000ull);
  return ts;
}

bool has_op(io_uring_probe* probe, int op, std::string* missing) {
  if (io_uring_opcode_supported(probe, op)) return true;
  *missing = "io_uring opcode " + std::to_string(op) + " not supported by this kernel";
  return false;
}

UringProbe run_probe() {
  UringProbe result;
  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(8, &ring, &params);
  if (rc == 0) {
    result.single_issuer = result.defer_taskrun = true;
  } else {
    params = {};
    params.flags = IORING_SETUP_SINGLE_ISSUER;
    rc = io_uring_queue_init_params(8, &ring, &params);
    if (rc == 0) {
      result.single_issuer = true;
    } else {
      params = {};
      rc = io_uring_queue_init_params(8, &ring, &params);
    }
  }
  if (rc != 0) {
    result.reason = std::string("io_uring_setup failed: ") + strerror(-rc) +
                    (rc == -EPERM ? " (io_uring disabled by kernel.io_uring_disabled or a seccomp profile)" : "");
    return result;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  std::string missing;
  bool ops_ok = probe != nullptr && has_op(probe, IORING_OP_READ_FIXED, &missing) &&
                has_op(probe, IORING_OP_WRITE_FIXED, &missing) && has_op(probe, IORING_OP_READ, &missing) &&
                has_op(probe, IORING_OP_WRITE, &missing) && has_op(probe, IORING_OP_RECV, &missing) &&
                has_op(probe, IORING_OP_SEND, &missing) && has_op(probe, IORING_OP_CONNECT, &missing) &&
                has_op(probe, IORING_OP_TIMEOUT, &missing) && has_op(probe, IORING_OP_LINK_TIMEOUT, &missing) &&
                has_op(probe, IORING_OP_ASYNC_CANCEL, &missing);
  if (probe == nullptr) missing = "io_uring probe unavailable";
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!(ring.features & IORING_FEAT_EXT_ARG)) {
    ops_ok = false;
    missing = "io_uring lacks IORING_FEAT_EXT_ARG (kernel older than 5.11)";
  }
  result.sparse_buffers = io_uring_register_buffers_sparse(&ring, 1) == 0;
  io_uring_queue_exit(&ring);
  result.usable = ops_ok;
  if (!ops_ok) result.reason = missing;
  return result;
}

class UringLoop final : public IoLoop {
 public:
  UringLoop() = default;
  UringLoop(const UringLoop&) = delete;
  UringLoop& operator=(const UringLoop&) = delete;

  bool init(const LoopOptions& options, std::string* reason) {
    const UringProbe& probe = probe_io_uring();
    if (!probe.usable) {
      *reason = probe.reason;
      return false;
    }
    io_uring_params params{};
    if (probe.single_issuer) params.flags |= IORING_SETUP_SINGLE_ISSUER;
    if (probe.defer_taskrun) params.flags |= IORING_SETUP_DEFER_TASKRUN;
    params.flags |= IORING_SETUP_CQSIZE;
    params.cq_entries = options.entries * 4;
    int rc = io_uring_queue_init_params(options.entries, &ring_, &params);
    if (rc != 0) {
      *reason = std::string("io_uring_queue_init failed: ") + strerror(-rc);
      return false;
    }
    ring_ready_ = true;
    wake_fd_ = eventfd(0, EFD_CLOEXEC);
    if (wake_fd_ < 0) {
      *reason = std::string("eventfd failed: ") + strerror(errno);
      return false;
    }
    wake_.op = Completion::Op::kWake;
    wake_.fd = wake_fd_;
    wake_.buf = reinterpret_cast<std::byte*>(&wake_value_);
    wake_.len = sizeof(wake_value_);
    wake_.callback = &UringLoop::on_wake;
    wake_.context = this;
    submit(&wake_);
    sweep_.op = Completion::Op::kTimeout;
    sweep_.timeout_ns = kSweepIntervalNs;
    sweep_.callback = &UringLoop::on_sweep;
    sweep_.context = this;
    return true;
  }

  ~UringLoop() override {
    if (ring_ready_) io_uring_queue_exit(&ring_);  // also cancels the armed wake read
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  BackendKind kind() const override { return BackendKind::kIoUring; }

  void submit(Completion* c) override {
    assert(!c->in_flight);
    c->in_flight = true;
    c->cancel_requested = false;
    c->timed_out = false;
    c->next = nullptr;
    ++in_flight_;
    if (c->timeout_ns != 0 && c->op != Completion::Op::kTimeout) track_deadline(c);
    if (unqueued_head_ != nullptr || !try_prepare(c)) push(&unqueued_head_, &unqueued_tail_, c);
  }

  void cancel(Completion* c) override {
    if (!c->in_flight || c->cancel_requested) return;
    c->cancel_requested = true;
    request_cancel(c);
  }

  // Cancels `c` in the kernel, or at once when it has not reached the submission queue yet.
  void request_cancel(Completion* c) {
    if (remove(&unqueued_head_, &unqueued_tail_, c)) {
      c->result = -ECANCELED;
      push(&completed_head_, &completed_tail_, c);
      return;
    }
    io_uring_sqe* sqe = get_sqe_flushing();
    io_uring_prep_cancel(sqe, c, 0);
    io_uring_sqe_set_data64(sqe, kIgnoredUserData);
  }

  int run_once(uint64_t timeout_ns) override {
    flush_unqueued();
    int ran = run_completed();
    if (ran > 0) timeout_ns = 0;
    if (timeout_ns == 0) {
      io_uring_submit_and_get_events(&ring_);
    } else {
      __kernel_timespec ts = to_timespec(timeout_ns);
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    ran += reap();
    flush_unqueued();
    return ran;
  }

  void wake() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  bool register_buffer_slots(unsigned count, std::string* reason) override {
    int rc = io_uring_register_buffers_sparse(&ring_, count);
    if (rc != 0) *reason = std::string("io_uring_register_buffers_sparse: ") + strerror(-rc);
    return rc == 0;
  }

  bool set_buffer(unsigned slot, std::span<std::byte> memory, std::string* reason) override {
    iovec iov{memory.data(), memory.size()};
    __u64 tag = 0;
    int rc = io_uring_register_buffers_update_tag(&ring_, slot, &iov, &tag, 1);
    if (rc < 0) {
      *reason = std::string("io_uring buffer registration refused: ") + strerror(-rc) +
                (rc == -ENOMEM ? " (RLIMIT_MEMLOCK too low? raise `ulimit -l`)" : "");
      return false;
    }
    return true;
  }

  bool clear_buffer(unsigned slot) override {
    iovec iov{nullptr, 0};
    __u64 tag = 0;
    return io_uring_register_buffers_update_tag(&ring_, slot, &iov, &tag, 1) >= 0;
  }

  // The armed wake read and the sweep timer are not work.
  size_t in_flight() const override { return in_flight_ - 1 - (sweep_.in_flight ? 1 : 0); }

 private:
  static void push(Completion** head, Completion** tail, Completion* c) {
    c->next = nullptr;
    if (*tail != nullptr) (*tail)->next = c; else *head = c;
    *tail = c;
  }
  static Completion* pop(Completion** head, Completion** tail) {
    Completion* c = *head;
    if (c != nullptr) {
      *head = c->next;
      if (*head == nullptr) *tail = nullptr;
      c->next = nullptr;
    }
    return c;
  }
  static bool remove(Completion** head, Completion** tail, Completion* c) {
    Completion* prev = nullptr;
    for (Completion* it = *head; it != nullptr; prev = it, it = it->next) {
      if (it != c) continue;
      if (prev != nullptr) prev->next = it->next; else *head = it->next;
      if (*tail == it) *tail = prev;
      it->next = nullptr;
      return true;
    }
    return false;
  }

  io_uring_sqe* get_sqe_flushing() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  bool try_prepare(Completion* c) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return false;
    prepare(sqe, c);
    io_uring_sqe_set_data(sqe, c);
    return true;
  }

  void track_deadline(Completion* c) {
    c->deadline_ns = monotonic_ns() + c->timeout_ns;
    c->timed_prev = nullptr;
    c->timed_next = timed_head_;
    if (timed_head_ != nullptr) timed_head_->timed_prev = c;
    timed_head_ = c;
    if (!sweep_.in_flight) submit(&sweep_);
  }

  void untrack_deadline(Completion* c) {
    if (c->deadline_ns == 0) return;
    if (c->timed_prev != nullptr) c->timed_prev->timed_next = c->timed_next; else timed_head_ = c->timed_next;
    if (c->timed_next != nullptr) c->timed_next->timed_prev = c->timed_prev;
    c->timed_prev = c->timed_next = nullptr;
    c->deadline_ns = 0;
  }

  static void on_sweep(Completion* c) {
    auto* self = static_cast<UringLoop*>(c->context);
    if (c->result == -ECANCELED) return;
    const uint64_t now = monotonic_ns();
    for (Completion* it = self->timed_head_; it != nullptr;) {
      Completion* next = it->timed_next;  // request_cancel may complete `it` (and unlink it) right away
      if (it->deadline_ns <= now && !it->timed_out && !it->cancel_requested) {
        it->timed_out = true;
        self->request_cancel(it);
      }
      it = next;
    }
    if (self->timed_head_ != nullptr) self->submit(&self->sweep_);
  }

  void prepare(io_uring_sqe* sqe, Completion* c) {
    switch (c->op) {
      case Completion::Op::kRead:
        if (c->buf_index >= 0) io_uring_prep_read_fixed(sqe, c->fd, c->buf, c->len, c->offset, c->buf_index);
        else io_uring_prep_read(sqe, c->fd, c->buf, c->len, c->offset);
        break;
      case Completion::Op::kWrite:
        if (c->buf_index >= 0) io_uring_prep_write_fixed(sqe, c->fd, c->buf, c->len, c->offset, c->buf_index);
        else io_uring_prep_write(sqe, c->fd, c->buf, c->len, c->offset);
        break;
      case Completion::Op::kRecv:
        // READ_FIXED on a stream socket ignores the offset and lands straight in registered memory.
        if (c->buf_index >= 0) io_uring_prep_read_fixed(sqe, c->fd, c->buf, c->len, 0, c->buf_index);
        else io_uring_prep_recv(sqe, c->fd, c->buf, c->len, 0);
        break;
      case Completion::Op::kSend:
        io_uring_prep_send(sqe, c->fd, c->buf, c->len, MSG_NOSIGNAL);
        break;
      case Completion::Op::kConnect:
        io_uring_prep_connect(sqe, c->fd, reinterpret_cast<sockaddr*>(&c->addr), c->addr_len);
        break;
      case Completion::Op::kTimeout:
        c->ts = to_timespec(c->timeout_ns);
        io_uring_prep_timeout(sqe, &c->ts, 0, 0);
        break;
      case Completion::Op::kWake:
        io_uring_prep_read(sqe, c->fd, c->buf, c->len, 0);
        break;
    }
  }

  void flush_unqueued() {
    while (unqueued_head_ != nullptr && try_prepare(unqueued_head_)) pop(&unqueued_head_, &unqueued_tail_);
  }

  int reap() {
    int ran = 0;
    for (;;) {
      unsigned count = 0;
      unsigned head;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        if (count == kMaxCqeBatch) break;
        ++count;
        auto* c = static_cast<Completion*>(io_uring_cqe_get_data(cqe));
        if (c == nullptr) continue;
        c->result = cqe->res;
        push(&completed_head_, &completed_tail_, c);
      }
      if (count == 0) break;
      io_uring_cq_advance(&ring_, count);
      ran += run_completed();
    }
    return ran;
  }

  int run_completed() {
    int ran = 0;
    while (Completion* c = pop(&completed_head_, &completed_tail_)) {
      finish(c);
      ++ran;
    }
    return ran;
  }

  void finish(Completion* c) {
    c->in_flight = false;
    --in_flight_;
    untrack_deadline(c);
    // Interrupted or would-block results are the loop's business, never the owner's: the op goes out again (its
    // deadline starts over, bounded by the op's own timeout).
    if ((c->result == -EINTR || c->result == -EAGAIN) && c->op != Completion::Op::kTimeout &&
        c->op != Completion::Op::kWake && !c->cancel_requested && !c->timed_out) {
      submit(c);
      return;
    }
    if (c->op == Completion::Op::kTimeout && c->result == -ETIME) c->result = 0;
    // The sweep cancelled it for its deadline: that is a timeout (unless the owner cancelled it too).
    if (c->timed_out && c->result == -ECANCELED && !c->cancel_requested) c->result = -ETIMEDOUT;
    if (c->op == Completion::Op::kTimeout && c->result == -ECANCELED && !c->cancel_requested) c->result = 0;
    c->callback(c);
  }

  static void on_wake(Completion* c) {
    auto* self = static_cast<UringLoop*>(c->context);
    if (c->result == -ECANCELED) return;
    self->submit(&self->wake_);
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  Completion wake_;
  Completion sweep_;
  Completion* timed_head_ = nullptr;
  Completion* unqueued_head_ = nullptr;
  Completion* unqueued_tail_ = nullptr;
  Completion* completed_head_ = nullptr;
  Completion* completed_tail_ = nullptr;
  size_t in_flight_ = 0;
};

}  // namespace

const UringProbe& probe_io_uring() {
  static const UringProbe probe = run_probe();
  return probe;
}

std::unique_ptr<IoLoop> make_uring_loop(const LoopOptions& options, std::string* reason) {
  auto loop = std::make_unique<UringLoop>();
  if (!loop->init(options, reason)) return nullptr;
  return loop;
}

}  // namespace ringfetch::engine
