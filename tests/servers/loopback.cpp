// Loopback port helpers (see loopback.hpp). Plain blocking sockets: on loopback, connect() to a port with no
// listener fails at once with ECONNREFUSED, so a probe never waits.
#include "servers/loopback.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace ringfetch::testing {
namespace {

// Each attempt asks the kernel for a port; a second family can make one attempt fail, so allow a few.
constexpr int kPickPortAttempts = 64;

class Socket {
 public:
  explicit Socket(int family) : fd_(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in v4_loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

sockaddr_in6 v6_loopback(uint16_t port) {
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  addr.sin6_port = htons(port);
  return addr;
}

// Binds a fresh socket of `family` to loopback:port; returns the bound port, or 0 on failure.
uint16_t bind_loopback(IpFamily family, uint16_t port) {
  if (family == IpFamily::kV4) {
    Socket s(AF_INET);
    sockaddr_in addr = v4_loopback(port);
    socklen_t len = sizeof addr;
    if (s.fd() < 0 || ::bind(s.fd(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return 0;
    if (::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
    return ntohs(addr.sin_port);
  }
  Socket s(AF_INET6);
  sockaddr_in6 addr = v6_loopback(port);
  socklen_t len = sizeof addr;
  if (s.fd() < 0 || ::bind(s.fd(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return 0;
  if (::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin6_port);
}

}  // namespace

bool ipv6_loopback_available() { return bind_loopback(IpFamily::kV6, 0) != 0; }

uint16_t pick_free_port(bool also_ipv6) {
  for (int attempt = 0; attempt < kPickPortAttempts; ++attempt) {
    uint16_t port = bind_loopback(IpFamily::kV4, 0);
    if (port == 0) continue;
    if (!also_ipv6 || bind_loopback(IpFamily::kV6, port) == port) return port;
  }
  throw std::runtime_error("no free loopback TCP port found after " + std::to_string(kPickPortAttempts) + " attempts");
}

bool port_accepts(IpFamily family, uint16_t port) {
  if (family == IpFamily::kV4) {
    Socket s(AF_INET);
    sockaddr_in addr = v4_loopback(port);
    return s.fd() >= 0 && ::connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  Socket s(AF_INET6);
  sockaddr_in6 addr = v6_loopback(port);
  return s.fd() >= 0 && ::connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

}  // namespace ringfetch::testing
