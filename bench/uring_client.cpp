// The "uring limit" contender (see uring_client.hpp). Deliberately minimal, like the raw client: no retries, one
// bound on the whole wait, no header handling beyond what finding the body needs.
#include "uring_client.hpp"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "measure.hpp"

namespace ringfetch::bench {
namespace {

constexpr size_t kHeadProbeBytes = 1024;       // as ringfetch's and the raw client's head probe
constexpr uint64_t kChunkBytes = 1ull << 30;   // the kernel's limit for one registered buffer
constexpr unsigned kRingEntries = 256;         // two operations in flight per connection at most
constexpr unsigned kMaxConnections = kRingEntries / 2;
constexpr long long kWaitTimeoutS = 30;        // no completion for this long: the run fails

enum class Op : uint64_t { kSend = 0, kRecvHead = 1, kReadBody = 2 };

// user_data: connection index (bits 0-15), operation (16-23), bytes a send must complete (32-63). The send's
// length travels with it because its completion may come after the connection has moved on to its next request.
uint64_t pack(size_t connection, Op op, uint64_t send_len = 0) {
  return connection | (static_cast<uint64_t>(op) << 16) | (send_len << 32);
}
size_t connection_of(uint64_t data) { return data & 0xffff; }
Op op_of(uint64_t data) { return static_cast<Op>((data >> 16) & 0xff); }
uint64_t send_len_of(uint64_t data) { return data >> 32; }

std::string errno_text(int error) { return std::strerror(error < 0 ? -error : error); }

struct Connection {
  int fd = -1;
  size_t request = 0;
  uint64_t sent_ns = 0;
  std::string request_text;  // must outlive its send
  char head[kHeadProbeBytes + 1];
  size_t head_len = 0;
  bool in_body = false;
  std::byte* body = nullptr;
  uint64_t body_len = 0;
  uint64_t body_got = 0;

  ~Connection() {
    if (fd >= 0) close(fd);
  }
};

// The opcodes the client issues; a kernel without one of them cannot run it, and says which.
void require_opcodes(io_uring* ring) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) throw std::runtime_error("uring: io_uring probe unavailable (kernel older than 5.6)");
  const std::pair<int, const char*> needed[] = {
      {IORING_OP_SEND, "IORING_OP_SEND"}, {IORING_OP_RECV, "IORING_OP_RECV"},
      {IORING_OP_READ_FIXED, "IORING_OP_READ_FIXED"}};
  std::string missing;
  for (const auto& [op, name] : needed)
    if (!io_uring_opcode_supported(probe, op)) missing += std::string(missing.empty() ? "" : ", ") + name;
  io_uring_free_probe(probe);
  if (!missing.empty()) throw std::runtime_error("uring: the kernel's io_uring lacks " + missing);
}

}  // namespace

// The ring and the registered memory, as chunks of at most 1 GiB (buffer index = chunk).
struct UringContender::Ring {
  io_uring ring{};
  std::byte* base = nullptr;
  uint64_t bytes = 0;
  std::string setup;  // how the ring was set up, for the report

  explicit Ring(std::span<std::byte> memory) : base(memory.data()), bytes(memory.size()) {
    // Completions run in this thread when it waits, not as interrupting task work: the cheapest set-up there is
    // (kernel >= 6.1); plain flags otherwise.
    int rc = io_uring_queue_init(kRingEntries, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    setup = "single issuer, deferred task run";
    if (rc == -EINVAL) {
      rc = io_uring_queue_init(kRingEntries, &ring, 0);
      setup = "default flags";
    }
    if (rc < 0) throw std::runtime_error("uring: io_uring_queue_init: " + errno_text(rc));
    try {
      require_opcodes(&ring);
      register_memory();
    } catch (...) {
      io_uring_queue_exit(&ring);
      throw;
    }
  }
  ~Ring() { io_uring_queue_exit(&ring); }

  void register_memory() {
    std::vector<iovec> chunks;
    for (uint64_t at = 0; at < bytes; at += kChunkBytes)
      chunks.push_back({base + at, static_cast<size_t>(std::min(kChunkBytes, bytes - at))});
    const int rc = io_uring_register_buffers(&ring, chunks.data(), static_cast<unsigned>(chunks.size()));
    if (rc < 0) {
      throw std::runtime_error("uring: io_uring_register_buffers of " + std::to_string(bytes >> 20) +
                               " MiB: " + errno_text(rc) + (rc == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : ""));
    }
  }

  bool contains(std::span<const std::byte> span) const {
    return span.data() >= base && span.data() + span.size() <= base + bytes;
  }
  // Registered buffer index of `at`, and how many bytes from `at` stay inside that buffer.
  int buffer_of(const std::byte* at) const { return static_cast<int>(static_cast<uint64_t>(at - base) / kChunkBytes); }
  uint64_t room_at(const std::byte* at) const {
    const uint64_t off = static_cast<uint64_t>(at - base);
    return std::min(bytes, (off / kChunkBytes + 1) * kChunkBytes) - off;
  }
};

namespace {

class UringClient {
 public:
  UringClient(UringContender::Ring& ring, const TransportJob& job, RunResult* out)
      : r_(ring), job_(job), out_(out) {}

  void run() {
    if (job_.record_latency) out_->latency_ns.assign(job_.requests.size(), 0);
    if (!open_connections()) return;
    for (size_t i = 0; i < connections_.size(); ++i)
      if (next_ < job_.requests.size() && !send_next(i)) return;
    loop();
    if (out_->ok) out_->detail = "ring: " + r_.setup;
  }

 private:
  bool fail(const std::string& why) {
    if (out_->error.empty()) out_->error = "uring: " + why;
    return false;
  }

  bool open_connections() {
    if (job_.protocol != Protocol::kHttp) return fail("plain HTTP only (no TLS in this contender)");
    if (!r_.contains(job_.dest)) return fail("destination outside the registered memory");
    if (job_.connections > kMaxConnections) return fail("more than " + std::to_string(kMaxConnections) + " connections");
    const size_t count = std::min<size_t>(job_.connections, std::max<size_t>(1, job_.requests.size()));
    for (size_t i = 0; i < count; ++i) {
      connections_.push_back(std::make_unique<Connection>());
      if (!connect_one(*connections_.back())) return false;
    }
    return true;
  }

  // Blocking connect, as the raw client's; the socket stays blocking: io_uring polls it internally.
  bool connect_one(Connection& c) {
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(job_.server.port(job_.protocol));
    inet_pton(AF_INET, job_.server.host.c_str(), &addr.sin_addr);
    if (c.fd < 0 || connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      return fail("connect: " + errno_text(errno));
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return true;
  }

  // An SQE, submitting what is queued first when the ring is full (it never is at <= kMaxConnections).
  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&r_.ring);
    if (s == nullptr) {
      io_uring_submit(&r_.ring);
      s = io_uring_get_sqe(&r_.ring);
    }
    return s;
  }

  // The GET and the head probe go out together: the probe simply waits for the response.
  bool send_next(size_t index) {
    Connection& c = *connections_[index];
    const ByteSpan& req = job_.requests[next_];
    c.request = next_++;
    c.head_len = 0;
    c.in_body = false;
    c.body = job_.dest.data() + req.offset;
    c.body_len = req.length;
    c.body_got = 0;
    c.request_text = "GET " + job_.path + " HTTP/1.1\r\nHost: " + job_.server.host + ":" +
                     std::to_string(job_.server.port(job_.protocol)) + "\r\nRange: bytes=" +
                     std::to_string(req.offset) + "-" + std::to_string(req.offset + req.length - 1) + "\r\n\r\n";
    io_uring_sqe* send = sqe();
    if (send == nullptr) return fail("submission queue full");
    io_uring_prep_send(send, c.fd, c.request_text.data(), c.request_text.size(), MSG_NOSIGNAL);
    io_uring_sqe_set_data64(send, pack(index, Op::kSend, c.request_text.size()));
    c.sent_ns = now_ns();
    ++out_->requests;
    return queue_head_probe(index);
  }

  bool queue_head_probe(size_t index) {
    Connection& c = *connections_[index];
    io_uring_sqe* recv = sqe();
    if (recv == nullptr) return fail("submission queue full");
    io_uring_prep_recv(recv, c.fd, c.head + c.head_len, kHeadProbeBytes - c.head_len, 0);
    io_uring_sqe_set_data64(recv, pack(index, Op::kRecvHead));
    return true;
  }

  // The rest of the body, read into its final place; never across a registered chunk's end.
  bool queue_body_read(size_t index) {
    Connection& c = *connections_[index];
    std::byte* at = c.body + c.body_got;
    const uint64_t len = std::min(c.body_len - c.body_got, r_.room_at(at));
    io_uring_sqe* read = sqe();
    if (read == nullptr) return fail("submission queue full");
    io_uring_prep_read_fixed(read, c.fd, at, static_cast<unsigned>(len), 0, r_.buffer_of(at));
    io_uring_sqe_set_data64(read, pack(index, Op::kReadBody));
    return true;
  }

  bool on_completion(uint64_t data, int res) {
    const size_t index = connection_of(data);
    switch (op_of(data)) {
      case Op::kSend:
        if (res < 0) return fail("send: " + errno_text(res));
        return static_cast<uint64_t>(res) == send_len_of(data) ? true : fail("short send of a request");
      case Op::kRecvHead:
        if (res <= 0) return fail(res == 0 ? "connection closed by the server" : "recv: " + errno_text(res));
        return on_head_bytes(index, static_cast<size_t>(res));
      case Op::kReadBody:
        if (res <= 0) return fail(res == 0 ? "connection closed mid-body" : "read_fixed: " + errno_text(res));
        return on_body_bytes(index, static_cast<size_t>(res));
    }
    return fail("unknown completion");
  }

  bool on_head_bytes(size_t index, size_t n) {
    Connection& c = *connections_[index];
    c.head_len += n;
    c.head[c.head_len] = '\0';
    const char* end = static_cast<const char*>(memmem(c.head, c.head_len, "\r\n\r\n", 4));
    if (end == nullptr) return c.head_len < kHeadProbeBytes ? queue_head_probe(index) : fail("response head over 1 KiB");
    if (!head_is_valid(c, end)) return false;
    const size_t head_bytes = static_cast<size_t>(end - c.head) + 4;
    const size_t leftover = c.head_len - head_bytes;
    if (leftover > c.body_len) return fail("more bytes than the response");
    std::memcpy(c.body, c.head + head_bytes, leftover);
    out_->bytes_copied += leftover;
    c.in_body = true;
    return on_body_bytes(index, leftover);
  }

  // 206, Content-Length the range's length, Content-Range starting at the range's offset.
  bool head_is_valid(const Connection& c, const char* end) {
    if (std::strncmp(c.head, "HTTP/1.1 206", 12) != 0) return fail(std::string("unexpected status: ") + c.head);
    const char* length = strcasestr(c.head, "\r\ncontent-length:");
    if (length == nullptr || length > end) return fail("no Content-Length");
    if (std::strtoull(length + 17, nullptr, 10) != c.body_len) return fail("Content-Length != range length");
    const char* range = strcasestr(c.head, "\r\ncontent-range:");
    if (range == nullptr || range > end) return fail("no Content-Range");
    const char* start = std::strstr(range, "bytes ");
    if (start == nullptr || std::strtoull(start + 6, nullptr, 10) != job_.requests[c.request].offset)
      return fail("Content-Range does not start at the range's offset");
    return true;
  }

  bool on_body_bytes(size_t index, size_t n) {
    Connection& c = *connections_[index];
    c.body_got += n;
    out_->bytes_wire += n;
    if (c.body_got < c.body_len) return queue_body_read(index);
    if (job_.record_latency) out_->latency_ns[c.request] = now_ns() - c.sent_ns;
    ++completed_;
    return next_ < job_.requests.size() ? send_next(index) : true;
  }

  void loop() {
    __kernel_timespec timeout{.tv_sec = kWaitTimeoutS, .tv_nsec = 0};
    while (completed_ < job_.requests.size()) {
      io_uring_cqe* cqe = nullptr;
      const int rc = io_uring_submit_and_wait_timeout(&r_.ring, &cqe, 1, &timeout, nullptr);
      if (rc == -EINTR) continue;
      if (rc < 0) {
        fail(rc == -ETIME ? "no progress for 30 s" : "io_uring_submit_and_wait_timeout: " + errno_text(rc));
        drain();
        return;
      }
      unsigned seen = 0;
      bool ok = true;
      unsigned head = 0;
      io_uring_for_each_cqe(&r_.ring, head, cqe) {
        ++seen;
        if (ok) ok = on_completion(io_uring_cqe_get_data64(cqe), cqe->res);
      }
      io_uring_cq_advance(&r_.ring, seen);
      if (!ok) {
        drain();
        return;
      }
    }
    reap_leftovers();
  }

  // Completions still queued after the last response (a send's, at most): checked here so that none reaches the
  // next run on this ring.
  void reap_leftovers() {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&r_.ring, &cqe) == 0) {
      const bool ok = on_completion(io_uring_cqe_get_data64(cqe), cqe->res);
      io_uring_cqe_seen(&r_.ring, cqe);
      if (!ok) return;
    }
    out_->ok = true;
  }

  // After a failure: closing the sockets ends what is in flight (shutdown wakes pending reads); reap it all, so
  // that no stale completion reaches the next run on this ring.
  void drain() {
    for (auto& c : connections_) shutdown(c->fd, SHUT_RDWR);
    io_uring_submit(&r_.ring);
    __kernel_timespec brief{.tv_sec = 1, .tv_nsec = 0};
    io_uring_cqe* cqe = nullptr;
    while (io_uring_wait_cqe_timeout(&r_.ring, &cqe, &brief) == 0) io_uring_cqe_seen(&r_.ring, cqe);
  }

  UringContender::Ring& r_;
  const TransportJob& job_;
  RunResult* out_;
  std::vector<std::unique_ptr<Connection>> connections_;
  size_t next_ = 0;
  size_t completed_ = 0;
};

}  // namespace

UringContender::UringContender(std::span<std::byte> memory) : ring_(std::make_unique<Ring>(memory)) {}
UringContender::~UringContender() = default;

void UringContender::run(const TransportJob& job, RunResult* out) {
  UringClient client(*ring_, job, out);
  client.run();
}

void run_uring(const TransportJob& job, RunResult* out) {
  try {
    UringContender contender(job.dest);
    contender.run(job, out);
  } catch (const std::exception& e) {
    out->error = e.what();
  }
}

}  // namespace ringfetch::bench
