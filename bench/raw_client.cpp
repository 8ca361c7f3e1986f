// Raw epoll (+ OpenSSL) client, see raw_client.hpp. Deliberately minimal: no retries, no timeouts beyond one
// bound on the whole wait, no header handling beyond what finding the body needs. It is the yardstick, not a
// client anyone should ship.
#include "raw_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "measure.hpp"

namespace ringfetch::bench {
namespace {

constexpr size_t kHeadProbeBytes = 1024;      // as ringfetch's head probe: bounds the copy of early body bytes
constexpr int kWaitTimeoutMs = 30'000;        // no progress for this long: the run fails
constexpr int kMaxEvents = 64;
constexpr int kTlsReadChunkMax = 1 << 30;

struct Connection {
  enum class State { kIdle, kHead, kBody };
  int fd = -1;
  SSL* ssl = nullptr;
  State state = State::kIdle;
  size_t request = 0;
  uint64_t sent_ns = 0;
  char head[kHeadProbeBytes + 1];
  size_t head_len = 0;
  std::byte* body = nullptr;
  uint64_t body_len = 0;
  uint64_t body_got = 0;

  ~Connection() {
    if (ssl != nullptr) SSL_free(ssl);
    if (fd >= 0) close(fd);
  }
};

// Bytes read (> 0), 0 at EOF, kWouldBlock, or kFailed.
constexpr ssize_t kWouldBlock = -1;
constexpr ssize_t kFailed = -2;

class RawClient {
 public:
  RawClient(const TransportJob& job, RunResult* out) : job_(job), out_(out) {}
  ~RawClient() {
    if (epoll_fd_ >= 0) close(epoll_fd_);
    if (tls_ != nullptr) SSL_CTX_free(tls_);
  }

  void run() {
    if (job_.record_latency) out_->latency_ns.assign(job_.requests.size(), 0);
    if (!setup()) return;
    for (auto& c : connections_) {
      if (next_ < job_.requests.size() && !send_next(*c)) return;
    }
    event_loop();
  }

 private:
  bool fail(const std::string& why) {
    if (out_->error.empty()) out_->error = "raw: " + why;
    return false;
  }

  bool setup() {
    if (job_.protocol == Protocol::kHttps && !make_tls_context()) return false;
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return fail(std::string("epoll_create1: ") + std::strerror(errno));
    const size_t count = std::min<size_t>(job_.connections, std::max<size_t>(1, job_.requests.size()));
    for (size_t i = 0; i < count; ++i) {
      connections_.push_back(std::make_unique<Connection>());
      if (!open(*connections_.back())) return false;
    }
    return true;
  }

  bool make_tls_context() {
    tls_ = SSL_CTX_new(TLS_client_method());
    if (tls_ == nullptr) return fail("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION);
    SSL_CTX_set_verify(tls_, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(tls_, job_.server.ca_file.c_str(), nullptr) != 1) return fail("CA file");
    return true;
  }

  // Blocking connect and handshake (connection setup is timed but is not the point), then non-blocking.
  bool open(Connection& c) {
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(job_.server.port(job_.protocol));
    inet_pton(AF_INET, job_.server.host.c_str(), &addr.sin_addr);
    if (c.fd < 0 || connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return fail(std::string("connect: ") + std::strerror(errno));
    }
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (tls_ != nullptr && !handshake(c)) return false;
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) return fail("epoll_ctl");
    return true;
  }

  bool handshake(Connection& c) {
    c.ssl = SSL_new(tls_);
    SSL_set_fd(c.ssl, c.fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.ssl), job_.server.host.c_str());
    if (SSL_connect(c.ssl) != 1) {
      char text[256];
      ERR_error_string_n(ERR_get_error(), text, sizeof(text));
      return fail(std::string("TLS handshake: ") + text);
    }
    out_->detail = std::string(SSL_get_version(c.ssl)) + " " + SSL_get_cipher_name(c.ssl);
    return true;
  }

  bool send_all(Connection& c, const std::string& text) {
    size_t sent = 0;
    while (sent < text.size()) {
      ssize_t n;
      if (c.ssl != nullptr) {
        size_t written = 0;
        n = SSL_write_ex(c.ssl, text.data() + sent, text.size() - sent, &written) == 1
                ? static_cast<ssize_t>(written) : -1;
      } else {
        n = send(c.fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
      }
      if (n <= 0) return fail("send failed (a small request on an idle connection should never block)");
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  bool send_next(Connection& c) {
    const ByteSpan& r = job_.requests[next_];
    c.request = next_++;
    c.state = Connection::State::kHead;
    c.head_len = 0;
    c.body = job_.dest.data() + r.offset;
    c.body_len = r.length;
    c.body_got = 0;
    std::string request = "GET " + job_.path + " HTTP/1.1\r\nHost: " + job_.server.host + ":" +
                          std::to_string(job_.server.port(job_.protocol)) + "\r\nRange: bytes=" +
                          std::to_string(r.offset) + "-" + std::to_string(r.offset + r.length - 1) + "\r\n\r\n";
    c.sent_ns = now_ns();
    ++out_->requests;
    return send_all(c, request);
  }

  ssize_t read_some(Connection& c, void* buf, size_t len) {
    if (c.ssl != nullptr) {
      size_t got = 0;
      const int chunk = static_cast<int>(std::min<size_t>(len, kTlsReadChunkMax));
      if (SSL_read_ex(c.ssl, buf, static_cast<size_t>(chunk), &got) == 1) return static_cast<ssize_t>(got);
      const int error = SSL_get_error(c.ssl, 0);
      if (error == SSL_ERROR_WANT_READ) return kWouldBlock;
      return error == SSL_ERROR_ZERO_RETURN ? 0 : kFailed;
    }
    const ssize_t n = recv(c.fd, buf, len, 0);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : kFailed;
  }

  // Returns false on failure. Reads until the socket is drained (a short plain read means it is) or the response
  // ends (the next one cannot have arrived: its request was only just sent).
  bool on_readable(Connection& c) {
    const size_t completed_before = completed_;
    while (c.state != Connection::State::kIdle && completed_ == completed_before) {
      const bool in_head = c.state == Connection::State::kHead;
      void* buf = in_head ? static_cast<void*>(c.head + c.head_len) : static_cast<void*>(c.body + c.body_got);
      const size_t want = in_head ? kHeadProbeBytes - c.head_len : c.body_len - c.body_got;
      const ssize_t n = read_some(c, buf, want);
      if (n == kWouldBlock) return true;
      if (n == 0) return fail("connection closed by the server");
      if (n < 0) return fail("read failed");
      if (!(in_head ? on_head_bytes(c, static_cast<size_t>(n)) : on_body_bytes(c, static_cast<size_t>(n)))) {
        return false;
      }
      if (c.ssl == nullptr && static_cast<size_t>(n) < want) return true;
    }
    return true;
  }

  bool on_head_bytes(Connection& c, size_t n) {
    c.head_len += n;
    c.head[c.head_len] = '\0';
    const char* end = static_cast<const char*>(memmem(c.head, c.head_len, "\r\n\r\n", 4));
    if (end == nullptr) return c.head_len < kHeadProbeBytes ? true : fail("response head over 1 KiB");
    const size_t head_bytes = static_cast<size_t>(end - c.head) + 4;
    if (std::strncmp(c.head, "HTTP/1.1 206", 12) != 0) return fail(std::string("unexpected status: ") + c.head);
    const char* length = strcasestr(c.head, "\r\ncontent-length:");
    if (length == nullptr || length > end) return fail("no Content-Length");
    if (std::strtoull(length + 17, nullptr, 10) != c.body_len) return fail("Content-Length != range length");
    const size_t leftover = c.head_len - head_bytes;
    if (leftover > c.body_len) return fail("more bytes than the response");
    std::memcpy(c.body, c.head + head_bytes, leftover);
    out_->bytes_copied += leftover;
    c.state = Connection::State::kBody;
    return on_body_bytes(c, leftover);
  }

  bool on_body_bytes(Connection& c, size_t n) {
    c.body_got += n;
    out_->bytes_wire += n;
    if (c.body_got < c.body_len) return true;
    if (job_.record_latency) out_->latency_ns[c.request] = now_ns() - c.sent_ns;
    ++completed_;
    c.state = Connection::State::kIdle;
    return next_ < job_.requests.size() ? send_next(c) : true;
  }

  void event_loop() {
    epoll_event events[kMaxEvents];
    while (completed_ < job_.requests.size()) {
      const int n = epoll_wait(epoll_fd_, events, kMaxEvents, kWaitTimeoutMs);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fail(n == 0 ? "no progress for 30 s" : std::string("epoll_wait: ") + std::strerror(errno));
        return;
      }
      for (int i = 0; i < n; ++i) {
        if (!on_readable(*static_cast<Connection*>(events[i].data.ptr))) return;
      }
    }
    out_->ok = true;
  }

  const TransportJob& job_;
  RunResult* out_;
  SSL_CTX* tls_ = nullptr;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Connection>> connections_;
  size_t next_ = 0;
  size_t completed_ = 0;
};

}  // namespace

void run_raw(const TransportJob& job, RunResult* out) {
  RawClient client(job, out);
  client.run();
}

}  // namespace ringfetch::bench
