// The epoll backend of IoLoop, for hosts that refuse io_uring. File reads and writes are plain pread/pwrite done
// at submit time (they do not block on readiness); socket operations are tried at once and otherwise wait for
// readiness; timeouts are a deadline heap consulted around epoll_wait. Same completions, same callbacks. In steady
// state nothing here allocates: the heap is a vector that keeps its capacity, its entries are indexed from the
// completions themselves, and an fd's waiter entry stays when the fd goes idle (fd numbers are reused).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <algorithm>
#include <ctime>
#include <utility>
#include <unordered_map>
#include <vector>

#include "engine/io_loop.hpp"

namespace ringfetch::engine {
namespace {

constexpr int kMaxEpollEvents = 64;

// A binary min-heap of completions by deadline; each knows its slot, so removal is O(log n) without a search.
class DeadlineHeap {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  bool empty() const { return heap_.empty(); }
  Completion* top() const { return heap_.front(); }
  void push(Completion* c) {
    heap_.push_back(c);
    place(heap_.size() - 1, c);
    sift_up(heap_.size() - 1);
  }
  void remove(Completion* c) {
    const size_t i = c->deadline_slot;
    assert(i < heap_.size() && heap_[i] == c);
    Completion* last = heap_.back();
    heap_.pop_back();
    c->deadline_slot = kNone;
    if (i == heap_.size()) return;  // it was the last
    place(i, last);
    sift_up(i);
    sift_down(last->deadline_slot);
  }

 private:
  void place(size_t i, Completion* c) {
    heap_[i] = c;
    c->deadline_slot = static_cast<uint32_t>(i);
  }
  void sift_up(size_t i) {
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (heap_[parent]->deadline_ns <= heap_[i]->deadline_ns) return;
      Completion* above = heap_[parent];
      place(parent, heap_[i]);
      place(i, above);
      i = parent;
    }
  }
  void sift_down(size_t i) {
    for (;;) {
      size_t least = i;
      for (size_t child : {2 * i + 1, 2 * i + 2})
        if (child < heap_.size() && heap_[child]->deadline_ns < heap_[least]->deadline_ns) least = child;
      if (least == i) return;
      Completion* below = heap_[least];
      place(least, heap_[i]);
      place(i, below);
      i = least;
    }
  }
  std::vector<Completion*> heap_;
};

class EpollLoop final : public IoLoop {
 public:
  bool init(std::string* reason) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      *reason = std::string("epoll/eventfd setup failed: ") + strerror(errno);
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    return true;
  }

  ~EpollLoop() override {
    if (epoll_fd_ >= 0) close(epoll_fd_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  BackendKind kind() const override { return BackendKind::kEpoll; }

  void submit(Completion* c) override {
    assert(!c->in_flight);
    c->in_flight = true;
    c->cancel_requested = false;
    ++in_flight_;
    switch (c->op) {
      case Completion::Op::kRead:
      case Completion::Op::kWrite:
        c->result = file_io(c);
        complete(c);
        return;
      case Completion::Op::kTimeout:
        c->deadline_ns = monotonic_ns() + c->timeout_ns;
        deadlines_.push(c);
        return;
      case Completion::Op::kConnect:
        start_connect(c);
        return;
      case Completion::Op::kRecv:
      case Completion::Op::kSend:
        if (attempt_socket_io(c)) complete(c);
        else wait_for(c);
        return;
      case Completion::Op::kWake:
        assert(false && "kWake is internal to the io_uring backend");
        return;
    }
  }

  void cancel(Completion* c) override {
    if (!c->in_flight || c->cancel_requested) return;
    c->cancel_requested = true;
    if (forget(c)) {
      c->result = -ECANCELED;
      complete(c);
    }
  }

  int run_once(uint64_t timeout_ns) override {
    int ran = run_completed();
    if (ran > 0) timeout_ns = 0;
    if (!deadlines_.empty()) {
      uint64_t now = monotonic_ns();
      uint64_t first = deadlines_.top()->deadline_ns;
      timeout_ns = std::min(timeout_ns, first > now ? first - now : 0);
    }
    epoll_event events[kMaxEpollEvents];
    int timeout_ms = static_cast<int>((timeout_ns + 999999) / 1000000);
    int n = epoll_wait(epoll_fd_, events, kMaxEpollEvents, timeout_ms);
    for (int i = 0; i < n; ++i) on_ready(events[i].data.fd, events[i].events);
    expire_deadlines();
    ran += run_completed();
    return ran;
  }

  void wake() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  bool register_buffer_slots(unsigned, std::string* reason) override {
    *reason = "the epoll backend has no registered buffers";
    return false;
  }
  bool set_buffer(unsigned, std::span<std::byte>, std::string* reason) override {
    *reason = "the epoll backend has no registered buffers";
    return false;
  }
  bool clear_buffer(unsigned) override { return true; }

  size_t in_flight() const override { return in_flight_; }

 private:
  struct FdWaiters {
    Completion* in = nullptr;
    Completion* out = nullptr;
    uint32_t armed = 0;
  };

  static int32_t file_io(Completion* c) {
    ssize_t n;
    do {
      n = c->op == Completion::Op::kRead ? pread(c->fd, c->buf, c->len, static_cast<off_t>(c->offset))
                                         : pwrite(c->fd, c->buf, c->len, static_cast<off_t>(c->offset));
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : static_cast<int32_t>(n);
  }

  // Returns true when the op finished (c->result set), false when it must wait for readiness.
  static bool attempt_socket_io(Completion* c) {
    ssize_t n = c->op == Completion::Op::kRecv ? recv(c->fd, c->buf, c->len, MSG_DONTWAIT)
                                                : send(c->fd, c->buf, c->len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      c->result = static_cast<int32_t>(n);
      return true;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
    c->result = -errno;
    return true;
  }

  void start_connect(Completion* c) {
    int flags = fcntl(c->fd, F_GETFL);
    if (!(flags & O_NONBLOCK)) fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
    if (connect(c->fd, reinterpret_cast<sockaddr*>(&c->addr), c->addr_len) == 0) {
      c->result = 0;
      complete(c);
    } else if (errno == EINPROGRESS) {
      wait_for(c);
    } else {
      c->result = -errno;
      complete(c);
    }
  }

  static bool finish_connect(Completion* c) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    c->result = -err;
    return true;
  }

  bool is_input(const Completion* c) const { return c->op == Completion::Op::kRecv; }

  void wait_for(Completion* c) {
    FdWaiters& w = waiters_[c->fd];
    (is_input(c) ? w.in : w.out) = c;
    rearm(c->fd, w);
    if (c->timeout_ns != 0) {
      c->deadline_ns = monotonic_ns() + c->timeout_ns;
      deadlines_.push(c);
    }
  }

  void rearm(int fd, FdWaiters& w) {
    uint32_t want = (w.in ? EPOLLIN : 0u) | (w.out ? EPOLLOUT : 0u);
    if (want == w.armed) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = fd;
    if (want == 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    else epoll_ctl(epoll_fd_, w.armed == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
    w.armed = want;  // an idle fd keeps its entry: erasing and re-making it would allocate per operation
  }

  void on_ready(int fd, uint32_t events) {
    if (fd == wake_fd_) {
      uint64_t value;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &value, sizeof(value));
      return;
    }
    auto it = waiters_.find(fd);
    if (it == waiters_.end()) return;
    FdWaiters& w = it->second;
    const bool error = events & (EPOLLERR | EPOLLHUP);
    if (w.in && (events & EPOLLIN || error) && attempt_socket_io(w.in)) {
      Completion* c = std::exchange(w.in, nullptr);
      drop_deadline(c);
      complete(c);
    }
    if (w.out && (events & EPOLLOUT || error)) {
      Completion* c = w.out;
      bool done = c->op == Completion::Op::kConnect ? finish_connect(c) : attempt_socket_io(c);
      if (done) {
        w.out = nullptr;
        drop_deadline(c);
        complete(c);
      }
    }
    rearm(fd, w);
  }

  void drop_deadline(Completion* c) {
    if (c->deadline_ns == 0) return;
    if (c->deadline_slot != DeadlineHeap::kNone) deadlines_.remove(c);
    c->deadline_ns = 0;
  }

  // Removes a pending op from every wait structure. Returns false if it was not pending here.
  bool forget(Completion* c) {
    bool found = c->deadline_ns != 0;
    drop_deadline(c);
    auto it = waiters_.find(c->fd);
    if (it != waiters_.end() && (it->second.in == c || it->second.out == c)) {
      (it->second.in == c ? it->second.in : it->second.out) = nullptr;
      rearm(c->fd, it->second);
      found = true;
    }
    return found;
  }

  void expire_deadlines() {
    uint64_t now = monotonic_ns();
    while (!deadlines_.empty() && deadlines_.top()->deadline_ns <= now) {
      Completion* c = deadlines_.top();
      deadlines_.remove(c);
      c->deadline_ns = 0;
      forget(c);
      c->result = c->op == Completion::Op::kTimeout ? 0 : -ETIMEDOUT;
      complete(c);
    }
  }

  void complete(Completion* c) {
    c->next = nullptr;
    if (completed_tail_ != nullptr) completed_tail_->next = c; else completed_head_ = c;
    completed_tail_ = c;
  }

  int run_completed() {
    int ran = 0;
    while (Completion* c = completed_head_) {
      completed_head_ = c->next;
      if (completed_head_ == nullptr) completed_tail_ = nullptr;
      c->next = nullptr;
      c->in_flight = false;
      c->deadline_ns = 0;
      --in_flight_;
      c->callback(c);
      ++ran;
    }
    return ran;
  }

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::unordered_map<int, FdWaiters> waiters_;
  DeadlineHeap deadlines_;
  Completion* completed_head_ = nullptr;
  Completion* completed_tail_ = nullptr;
  size_t in_flight_ = 0;
};

}  // namespace

std::unique_ptr<IoLoop> make_uring_loop(const LoopOptions& options, std::string* reason);

std::unique_ptr<IoLoop> make_io_loop(BackendKind kind, const LoopOptions& options, std::string* reason) {
  if (kind == BackendKind::kIoUring) return make_uring_loop(options, reason);
  auto loop = std::make_unique<EpollLoop>();
  if (!loop->init(reason)) return nullptr;
  return loop;
}

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace ringfetch::engine
