// LatencyServer (see latency_server.hpp). Two pipes: the child writes its port (0 on failure, then a message) on
// `ready`, and blocks reading `control` until the parent closes it (or dies: EOF then too, and PR_SET_PDEATHSIG
// as a second guard), then stops the FaultServer and exits.
#include "latency_server.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <vector>

#include "cpu_affinity.hpp"
#include "servers/fault_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch::bench {
namespace {

constexpr size_t kMaxChildMessageBytes = 512;

bool write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Reads up to `size` bytes until EOF; returns how many arrived.
size_t read_up_to(int fd, void* data, size_t size) {
  auto* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, p + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

[[noreturn]] void serve(const LatencyServerOptions& o, pid_t parent, int ready_fd, int control_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  int code = 0;
  try {
    if (o.cpu >= 0) {
      const std::string error = pin_self(o.cpu);
      if (!error.empty()) throw std::runtime_error(error);
    }
    testing::FaultServerOptions options;
    options.first_byte_delay = o.first_byte_delay;
    options.straggler_every = o.straggler_every;
    options.straggler_delay = o.straggler_delay;
    options.max_logged_requests = 0;  // nobody reads the log here
    testing::FaultServer server(testing::make_pattern(o.object_bytes, o.object_seed), options);
    const uint16_t port = server.port();
    write_all(ready_fd, &port, sizeof port);
    ::close(ready_fd);
    char sink[16];
    while (read_up_to(control_fd, sink, sizeof sink) > 0) {
    }
    server.stop();
  } catch (const std::exception& e) {
    const uint16_t failed = 0;
    write_all(ready_fd, &failed, sizeof failed);
    write_all(ready_fd, e.what(), std::min(std::strlen(e.what()), kMaxChildMessageBytes));
    code = 1;
  }
  ::_exit(code);
}

}  // namespace

LatencyServer::LatencyServer(const LatencyServerOptions& options) : options_(options) {
  int ready[2];
  int control[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(control, O_CLOEXEC) != 0) {
    ::close(ready[0]);
    ::close(ready[1]);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::close(ready[0]);
    ::close(control[1]);
    serve(options_, parent, ready[1], control[0]);
  }
  ::close(ready[1]);
  ::close(control[0]);
  control_fd_ = control[1];
  if (pid_ < 0) {
    ::close(ready[0]);
    ::close(control_fd_);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  uint16_t port = 0;
  const size_t got = read_up_to(ready[0], &port, sizeof port);
  std::string message;
  if (got != sizeof port || port == 0) {
    char text[kMaxChildMessageBytes];
    message.assign(text, read_up_to(ready[0], text, sizeof text));
  }
  ::close(ready[0]);
  if (got != sizeof port || port == 0) {
    ::close(control_fd_);
    ::waitpid(pid_, nullptr, 0);
    throw std::runtime_error("latency server failed to start" + (message.empty() ? "" : ": " + message));
  }
  port_ = port;
}

LatencyServer::~LatencyServer() {
  if (control_fd_ >= 0) ::close(control_fd_);
  if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
}

std::string LatencyServer::describe() const {
  return "FaultServer (one epoll thread, object in memory) in child process " + std::to_string(pid_) + ", " +
         (options_.cpu >= 0 ? "pinned to CPU " + std::to_string(options_.cpu) : std::string("not pinned")) +
         ", first_byte_delay " + std::to_string(options_.first_byte_delay.count()) + " ms" +
         (options_.straggler_every == 0
              ? std::string()
              : ", 1 answer in " + std::to_string(options_.straggler_every) + " (a straggler) " +
                    std::to_string(options_.straggler_delay.count()) + " ms later") +
         ", object " +
         (options_.object_bytes >= (1u << 20) ? std::to_string(options_.object_bytes >> 20) + " MiB"
                                              : std::to_string(options_.object_bytes >> 10) + " KiB") +
         "; scheduling class inherited from the client";
}

}  // namespace ringfetch::bench
