// IoLoop: the per-thread completion loop the whole engine runs on, with two backends behind one interface.
// io_uring is the point of the project; epoll (plain pread/recv/send on readiness) covers the places that refuse
// io_uring (container seccomp profiles, kernel.io_uring_disabled). Every operation is a Completion that its
// owner (a file read, a connection) holds for the operation's lifetime: user_data points at it, so a completion
// finds its owner without lookups or allocation.
#pragma once

#include <linux/time_types.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace ringfetch::engine {

struct Completion;
using CompletionCallback = void (*)(Completion*);

struct Completion {
  enum class Op : uint8_t {
    kRead,     // pread(fd, buf, len, offset); READ_FIXED when buf_index >= 0
    kWrite,    // pwrite(fd, buf, len, offset); WRITE_FIXED when buf_index >= 0
    kRecv,     // recv from a socket; READ_FIXED when buf_index >= 0
    kSend,     // send on a socket (MSG_NOSIGNAL)
    kConnect,  // connect(fd, addr) on a non-blocking socket
    kTimeout,  // fires after timeout_ns
    kWake,     // internal: the loop's cross-thread wake-up read
  };
  Op op = Op::kRead;
  int fd = -1;
  std::byte* buf = nullptr;
  uint32_t len = 0;
  int32_t buf_index = -1;  // registered buffer slot, or -1 for plain reads
  uint64_t offset = 0;
  uint64_t timeout_ns = 0;  // kTimeout: the delay; other ops: fail with -ETIMEDOUT when not done in time (0 = none)
  sockaddr_storage addr{};
  socklen_t addr_len = 0;

  // Bytes transferred, or -errno (-ETIMEDOUT for an op timeout, -ECANCELED on cancel or shutdown). Never -EINTR or
  // -EAGAIN: both backends retry those themselves.
  int32_t result = 0;
  CompletionCallback callback = nullptr;
  void* context = nullptr;

  // Backend state; owners must not touch it.
  Completion* next = nullptr;
  __kernel_timespec ts{};
  uint64_t deadline_ns = 0;
  bool in_flight = false;
  bool cancel_requested = false;
  bool timed_out = false;
  Completion* timed_prev = nullptr;  // io_uring backend: list of ops with a deadline
  Completion* timed_next = nullptr;
  uint32_t deadline_slot = UINT32_MAX;  // the epoll backend's place for it in its deadline heap
};

enum class BackendKind { kIoUring, kEpoll };

struct LoopOptions {
  unsigned entries = 256;  // submission queue size
};

// Result of probing the kernel once per process (cached): whether io_uring can be set up here and which of
// the operations and setup flags the engine uses it has. `reason` says why not, when not.
struct UringProbe {
  bool usable = false;
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool sparse_buffers = false;
  std::string reason;
};
const UringProbe& probe_io_uring();

class IoLoop {
 public:
  virtual ~IoLoop() = default;
  virtual BackendKind kind() const = 0;

  // Queues `c`; its callback runs from run_once() on this loop's thread. Never fails: when the submission queue is
  // full the completion waits in an unbounded-by-count intrusive FIFO (bounded by its owners).
  virtual void submit(Completion* c) = 0;

  // Asks the kernel to cancel `c` if it is in flight; `c` then completes with -ECANCELED (or its real result if it
  // raced to completion). No-op for completions not in flight.
  virtual void cancel(Completion* c) = 0;

  // Submits queued work, waits up to timeout_ns for at least one completion (0 = do not wait) and runs callbacks.
  // Returns the number of callbacks run. A wake() from another thread ends the wait early.
  virtual int run_once(uint64_t timeout_ns) = 0;

  // Thread-safe: interrupts a waiting run_once().
  virtual void wake() = 0;

  // Registered-buffer table. Returns false when the kernel refused (the caller then uses plain reads).
  // Slots are small integers shared by every loop of an engine.
  virtual bool register_buffer_slots(unsigned count, std::string* reason) = 0;
  virtual bool set_buffer(unsigned slot, std::span<std::byte> memory, std::string* reason) = 0;
  virtual bool clear_buffer(unsigned slot) = 0;

  // Operations submitted and not yet completed.
  virtual size_t in_flight() const = 0;
};

// Creates a loop of the given kind. Returns nullptr and sets *reason when it cannot.
std::unique_ptr<IoLoop> make_io_loop(BackendKind kind, const LoopOptions& options, std::string* reason);

uint64_t monotonic_ns();

}  // namespace ringfetch::engine
