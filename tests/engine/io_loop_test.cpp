// Tests for IoLoop, run against both backends through make_io_loop: file reads and writes (including short reads
// at the end of a file), timeouts, op timeouts and cancellation on a socket that never gets data, overflow of the
// submission queue, cross-thread wake-ups, and (io_uring) registered buffers with READ_FIXED.
#include "engine/io_loop.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "servers/temp_dir.hpp"

namespace ringfetch::engine {
namespace {

using ringfetch::testing::make_pattern;
using ringfetch::testing::TempDir;
using ringfetch::testing::write_file;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kLongNs = 30'000 * kMs;  // long enough never to fire during a test
constexpr int kMaxSpins = 3000;             // run_once(10 ms) rounds before a test gives up (a bound, not a timing)

// One operation and what its callback saw.
struct Op {
  Completion c;
  int calls = 0;
  int32_t result = 0;
  std::vector<int>* order = nullptr;
  int id = 0;

  Op() {
    c.callback = &Op::on_done;
    c.context = this;
  }
  static void on_done(Completion* c) {
    auto* op = static_cast<Op*>(c->context);
    ++op->calls;
    op->result = c->result;
    if (op->order != nullptr) op->order->push_back(op->id);
  }
};

// A file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string backend_name(const ::testing::TestParamInfo<BackendKind>& info) {
  return info.param == BackendKind::kIoUring ? "IoUring" : "Epoll";
}

class IoLoopTest : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    std::string reason;
    loop_ = make_io_loop(GetParam(), {}, &reason);
    if (loop_ == nullptr && GetParam() == BackendKind::kIoUring) GTEST_SKIP() << "io_uring unavailable: " << reason;
    ASSERT_NE(loop_, nullptr) << reason;
    EXPECT_EQ(loop_->kind(), GetParam());
  }

  // Another loop of the parameter's kind (this one exists, so that one can be made too).
  std::unique_ptr<IoLoop> make_loop(const LoopOptions& options) {
    std::string reason;
    auto loop = make_io_loop(GetParam(), options, &reason);
    EXPECT_NE(loop, nullptr) << reason;
    return loop;
  }

  static void run_until(IoLoop& loop, const std::function<bool()>& done) {
    for (int i = 0; i < kMaxSpins && !done(); ++i) loop.run_once(10 * kMs);
    ASSERT_TRUE(done()) << "operation did not complete";
  }

  void read_op(Op* op, int fd, std::byte* buf, uint32_t len, uint64_t offset) {
    op->c.op = Completion::Op::kRead;
    op->c.fd = fd;
    op->c.buf = buf;
    op->c.len = len;
    op->c.offset = offset;
    loop_->submit(&op->c);
  }

  void recv_op(Op* op, int fd, std::byte* buf, uint32_t len, uint64_t timeout_ns) {
    op->c.op = Completion::Op::kRecv;
    op->c.fd = fd;
    op->c.buf = buf;
    op->c.len = len;
    op->c.timeout_ns = timeout_ns;
    loop_->submit(&op->c);
  }

  void timeout_op(Op* op, uint64_t ns) {
    op->c.op = Completion::Op::kTimeout;
    op->c.timeout_ns = ns;
    loop_->submit(&op->c);
  }

  std::unique_ptr<IoLoop> loop_;
  TempDir dir_{"ringfetch-ioloop-"};
};

TEST_P(IoLoopTest, ReadsAFile) {
  const auto data = make_pattern(64 << 10, 1);
  write_file(dir_ / "f", data);
  Fd fd(open((dir_ / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);

  std::vector<std::byte> buf(20000);
  Op op;
  read_op(&op, fd.get(), buf.data(), static_cast<uint32_t>(buf.size()), 1234);
  EXPECT_EQ(loop_->in_flight(), op.calls == 0 ? 1u : 0u);
  run_until(*loop_, [&] { return op.calls > 0; });
  EXPECT_EQ(op.calls, 1);
  ASSERT_EQ(op.result, 20000);
  EXPECT_EQ(std::memcmp(buf.data(), data.data() + 1234, buf.size()), 0);
  EXPECT_EQ(loop_->in_flight(), 0u);
}

TEST_P(IoLoopTest, ShortReadsAtEndOfFile) {
  const auto data = make_pattern(1000, 2);
  write_file(dir_ / "f", data);
  Fd fd(open((dir_ / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);

  std::vector<std::byte> buf(4096);
  Op whole, tail, past;
  read_op(&whole, fd.get(), buf.data(), 4096, 0);
  run_until(*loop_, [&] { return whole.calls > 0; });
  EXPECT_EQ(whole.result, 1000);
  EXPECT_EQ(std::memcmp(buf.data(), data.data(), 1000), 0);

  read_op(&tail, fd.get(), buf.data(), 1000, 600);
  run_until(*loop_, [&] { return tail.calls > 0; });
  EXPECT_EQ(tail.result, 400);
  EXPECT_EQ(std::memcmp(buf.data(), data.data() + 600, 400), 0);

  read_op(&past, fd.get(), buf.data(), 100, 1000);
  run_until(*loop_, [&] { return past.calls > 0; });
  EXPECT_EQ(past.result, 0);
}

TEST_P(IoLoopTest, ReadErrorIsNegativeErrno) {
  std::vector<std::byte> buf(16);
  Op op;
  Fd fd(open((dir_.path()).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  read_op(&op, fd.get(), buf.data(), 16, 0);
  run_until(*loop_, [&] { return op.calls > 0; });
  EXPECT_EQ(op.result, -EISDIR);
}

TEST_P(IoLoopTest, WritesThenReadsBack) {
  Fd fd(open((dir_ / "w").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_GE(fd.get(), 0);
  auto data = make_pattern(5000, 3);
  Op write;
  write.c.op = Completion::Op::kWrite;
  write.c.fd = fd.get();
  write.c.buf = data.data();
  write.c.len = 5000;
  write.c.offset = 100;
  loop_->submit(&write.c);
  run_until(*loop_, [&] { return write.calls > 0; });
  ASSERT_EQ(write.result, 5000);

  std::vector<std::byte> buf(5000);
  Op read;
  read_op(&read, fd.get(), buf.data(), 5000, 100);
  run_until(*loop_, [&] { return read.calls > 0; });
  ASSERT_EQ(read.result, 5000);
  EXPECT_EQ(buf, data);
}

// More operations (each with a linked op timeout on io_uring, two SQEs) than the submission queue holds: the
// overflow waits in the loop's FIFO and every read still completes exactly once with its own bytes.
TEST_P(IoLoopTest, MoreOperationsThanQueueEntries) {
  auto small = make_loop({.entries = 4});
  if (!small) return;
  constexpr int kOps = 40;
  constexpr uint32_t kLen = 1000;
  const auto data = make_pattern(kOps * kLen, 4);
  write_file(dir_ / "f", data);
  Fd fd(open((dir_ / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);

  std::vector<std::byte> buf(data.size());
  std::vector<Op> ops(kOps);
  for (int i = 0; i < kOps; ++i) {
    Op& op = ops[i];
    op.c.op = Completion::Op::kRead;
    op.c.fd = fd.get();
    op.c.buf = buf.data() + i * kLen;
    op.c.len = kLen;
    op.c.offset = static_cast<uint64_t>(i) * kLen;
    op.c.timeout_ns = i % 2 == 0 ? kLongNs : 0;
    small->submit(&op.c);
  }
  run_until(*small, [&] {
    for (const Op& op : ops)
      if (op.calls == 0) return false;
    return true;
  });
  for (const Op& op : ops) {
    EXPECT_EQ(op.calls, 1);
    EXPECT_EQ(op.result, static_cast<int32_t>(kLen));
  }
  EXPECT_EQ(buf, data);
  EXPECT_EQ(small->in_flight(), 0u);
  // Linked timeouts of completed ops must never call back later.
  small->run_once(0);
  for (const Op& op : ops) EXPECT_EQ(op.calls, 1);
}

TEST_P(IoLoopTest, TimeoutFires) {
  Op shorter, longer;
  std::vector<int> order;
  shorter.order = longer.order = &order;
  shorter.id = 1;
  longer.id = 2;
  timeout_op(&longer, kLongNs);
  timeout_op(&shorter, 1 * kMs);
  EXPECT_EQ(loop_->in_flight(), 2u);
  run_until(*loop_, [&] { return shorter.calls > 0; });
  EXPECT_EQ(shorter.result, 0);
  EXPECT_EQ(longer.calls, 0);
  loop_->cancel(&longer.c);
  run_until(*loop_, [&] { return longer.calls > 0; });
  EXPECT_EQ(longer.result, -ECANCELED);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(loop_->in_flight(), 0u);
}

TEST_P(IoLoopTest, ZeroTimeoutFiresAtOnce) {
  Op op;
  timeout_op(&op, 0);
  run_until(*loop_, [&] { return op.calls > 0; });
  EXPECT_EQ(op.result, 0);
}

TEST_P(IoLoopTest, OpTimeoutOnSilentSocketIsEtimedout) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd a(sv[0]), b(sv[1]);
  std::byte buf[64];
  Op op;
  recv_op(&op, a.get(), buf, sizeof buf, 20 * kMs);
  run_until(*loop_, [&] { return op.calls > 0; });
  EXPECT_EQ(op.calls, 1);
  EXPECT_EQ(op.result, -ETIMEDOUT);
  EXPECT_EQ(loop_->in_flight(), 0u);

  // The socket is still usable afterwards, and the timed-out op never calls back again.
  ASSERT_EQ(send(b.get(), "hello", 5, MSG_NOSIGNAL), 5);
  Op again;
  recv_op(&again, a.get(), buf, sizeof buf, kLongNs);
  run_until(*loop_, [&] { return again.calls > 0; });
  EXPECT_EQ(again.result, 5);
  EXPECT_EQ(std::memcmp(buf, "hello", 5), 0);
  EXPECT_EQ(op.calls, 1);
}

TEST_P(IoLoopTest, RecvWithOpTimeoutGetsDataThatArrivesLater) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd a(sv[0]), b(sv[1]);
  std::byte buf[64];
  Op op;
  recv_op(&op, a.get(), buf, sizeof buf, kLongNs);
  loop_->run_once(0);  // submitted and waiting for data
  EXPECT_EQ(op.calls, 0);
  ASSERT_EQ(send(b.get(), "abc", 3, MSG_NOSIGNAL), 3);
  run_until(*loop_, [&] { return op.calls > 0; });
  EXPECT_EQ(op.result, 3);
  EXPECT_EQ(loop_->in_flight(), 0u);
}

TEST_P(IoLoopTest, SendAndRecvOnSocketPair) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd a(sv[0]), b(sv[1]);
  auto data = make_pattern(3000, 5);
  std::vector<std::byte> got(3000);
  Op recv, send;
  recv_op(&recv, a.get(), got.data(), 3000, 0);
  send.c.op = Completion::Op::kSend;
  send.c.fd = b.get();
  send.c.buf = data.data();
  send.c.len = 3000;
  loop_->submit(&send.c);
  run_until(*loop_, [&] { return recv.calls > 0 && send.calls > 0; });
  EXPECT_EQ(send.result, 3000);
  ASSERT_GT(recv.result, 0);
  EXPECT_EQ(std::memcmp(got.data(), data.data(), static_cast<size_t>(recv.result)), 0);
}

TEST_P(IoLoopTest, CancelIsEcanceled) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd a(sv[0]), b(sv[1]);
  std::byte buf1[16], buf2[16];
  Op plain, timed;
  recv_op(&plain, a.get(), buf1, sizeof buf1, 0);
  loop_->run_once(0);
  EXPECT_EQ(loop_->in_flight(), 1u);
  loop_->cancel(&plain.c);
  run_until(*loop_, [&] { return plain.calls > 0; });
  EXPECT_EQ(plain.result, -ECANCELED);

  // An op with its own timeout that the owner cancels reports the cancel, not a timeout.
  recv_op(&timed, a.get(), buf2, sizeof buf2, kLongNs);
  loop_->run_once(0);
  loop_->cancel(&timed.c);
  loop_->cancel(&timed.c);  // a second cancel is a no-op
  run_until(*loop_, [&] { return timed.calls > 0; });
  EXPECT_EQ(timed.result, -ECANCELED);
  EXPECT_EQ(loop_->in_flight(), 0u);

  // Cancelling what is not in flight does nothing.
  loop_->cancel(&plain.c);
  loop_->run_once(0);
  EXPECT_EQ(plain.calls, 1);
  EXPECT_EQ(timed.calls, 1);
}

// On io_uring an op that does not fit in the submission queue waits in the loop's own FIFO; cancelling it there
// completes it at once.
TEST_P(IoLoopTest, CancelBeforeSubmission) {
  auto tiny = make_loop({.entries = 2});
  if (!tiny) return;
  std::vector<std::unique_ptr<Fd>> fds;
  std::byte buf[3][8];
  std::vector<Op> ops(3);
  for (int i = 0; i < 3; ++i) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fds.push_back(std::make_unique<Fd>(sv[0]));
    fds.push_back(std::make_unique<Fd>(sv[1]));
    ops[i].c.op = Completion::Op::kRecv;
    ops[i].c.fd = sv[0];
    ops[i].c.buf = buf[i];
    ops[i].c.len = 8;
    ops[i].c.timeout_ns = i == 2 ? kLongNs : 10 * kMs * static_cast<uint64_t>(i + 1);
    tiny->submit(&ops[i].c);
  }
  tiny->cancel(&ops[2].c);
  run_until(*tiny, [&] { return ops[2].calls > 0; });
  EXPECT_EQ(ops[2].result, -ECANCELED);
  run_until(*tiny, [&] { return ops[0].calls > 0 && ops[1].calls > 0; });
  EXPECT_EQ(ops[0].result, -ETIMEDOUT);
  EXPECT_EQ(ops[1].result, -ETIMEDOUT);
  EXPECT_EQ(tiny->in_flight(), 0u);
}

// A run_once waiting with a long timeout returns when another thread calls wake(). The only clock check is that
// the wait ended before its own timeout, i.e. that the wake-up (not the timeout) ended it.
TEST_P(IoLoopTest, WakeFromAnotherThreadEndsTheWait) {
  for (int round = 0; round < 3; ++round) {
    std::atomic<bool> returned{false};
    std::atomic<int> wakes{0};
    std::thread waker([&] {
      while (!returned.load()) {
        loop_->wake();
        wakes.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    const uint64_t start = monotonic_ns();
    loop_->run_once(kLongNs);
    const uint64_t waited = monotonic_ns() - start;
    returned.store(true);
    waker.join();
    EXPECT_GE(wakes.load(), 1);
    EXPECT_LT(waited, kLongNs) << "run_once slept through wake()";
  }
  // Wake-ups are not work.
  loop_->run_once(0);
  EXPECT_EQ(loop_->in_flight(), 0u);
}

TEST_P(IoLoopTest, RegisteredBuffersAndReadFixed) {
  std::string reason;
  if (GetParam() == BackendKind::kEpoll) {
    EXPECT_FALSE(loop_->register_buffer_slots(4, &reason));
    EXPECT_FALSE(reason.empty());
    std::vector<std::byte> memory(4096);
    reason.clear();
    EXPECT_FALSE(loop_->set_buffer(0, memory, &reason));
    EXPECT_FALSE(reason.empty());
    return;
  }
  ASSERT_TRUE(loop_->register_buffer_slots(4, &reason)) << reason;
  const auto data = make_pattern(256 << 10, 6);
  write_file(dir_ / "f", data);
  Fd fd(open((dir_ / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);

  std::vector<std::byte> memory(300 << 10);
  if (!loop_->set_buffer(2, memory, &reason)) GTEST_SKIP() << "kernel refused registration: " << reason;

  // Two reads at inner addresses of the registered region, with the slot index.
  Op first, second;
  first.c.buf_index = second.c.buf_index = 2;
  read_op(&first, fd.get(), memory.data() + 100, 100000, 5);
  read_op(&second, fd.get(), memory.data() + 200000, 50000, 150000);
  run_until(*loop_, [&] { return first.calls > 0 && second.calls > 0; });
  ASSERT_EQ(first.result, 100000);
  ASSERT_EQ(second.result, 50000);
  EXPECT_EQ(std::memcmp(memory.data() + 100, data.data() + 5, 100000), 0);
  EXPECT_EQ(std::memcmp(memory.data() + 200000, data.data() + 150000, 50000), 0);

  // A READ_FIXED outside the registered memory is refused by the kernel, not done.
  std::vector<std::byte> other(4096);
  Op outside;
  outside.c.buf_index = 2;
  read_op(&outside, fd.get(), other.data(), 4096, 0);
  run_until(*loop_, [&] { return outside.calls > 0; });
  EXPECT_EQ(outside.result, -EFAULT);

  // Once the slot is cleared, READ_FIXED on it fails.
  EXPECT_TRUE(loop_->clear_buffer(2));
  Op cleared;
  cleared.c.buf_index = 2;
  read_op(&cleared, fd.get(), memory.data(), 4096, 0);
  run_until(*loop_, [&] { return cleared.calls > 0; });
  EXPECT_LT(cleared.result, 0);
}

TEST(IoLoopProbe, ProbeIsCachedAndExplainsItself) {
  const UringProbe& probe = probe_io_uring();
  EXPECT_EQ(&probe, &probe_io_uring());
  if (!probe.usable) {
    EXPECT_FALSE(probe.reason.empty());
  }
  std::string reason;
  auto loop = make_io_loop(BackendKind::kIoUring, {}, &reason);
  EXPECT_EQ(loop != nullptr, probe.usable) << reason;
}

TEST(IoLoopClock, MonotonicNeverGoesBack) {
  uint64_t last = monotonic_ns();
  for (int i = 0; i < 1000; ++i) {
    const uint64_t now = monotonic_ns();
    EXPECT_GE(now, last);
    last = now;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, IoLoopTest, ::testing::Values(BackendKind::kIoUring, BackendKind::kEpoll),
                         backend_name);

}  // namespace
}  // namespace ringfetch::engine
