// A real nginx on loopback for the HTTP tests, started and stopped by the test itself. It runs as our child with a
// private prefix directory holding its config, logs, pid file, temp paths and TLS material, so it needs nothing from
// /etc/nginx, /var/lib/nginx or /var/log/nginx and works as root or not. It serves one document root on several
// ports, each a different peer for the client to meet:
//   http_port()              plain HTTP/1.1, Range support, sendfile, long keep-alive
//   https_port()             the same over TLS, certificate for DNS:localhost + IP:127.0.0.1 + IP:::1 from ca_file()
//   wrong_host_https_port()  TLS with a certificate for `wrong.example` (same CA): host-name mismatch
//   no_ranges_port()         `max_ranges 0`: ignores Range, answers 200 with the whole file
// Every port listens on 127.0.0.1 and, when IPv6 loopback works, on [::1] with the same number, so URLs naming
// `localhost` work whichever address the resolver returns first.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "servers/child_process.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch::testing {

struct NginxOptions {
  // Also listen on [::1] when IPv6 loopback works.
  bool enable_ipv6 = true;
  // Appended verbatim inside `http { }` (e.g. `limit_rate 1m;`); a broken directive makes start fail with the log.
  std::string extra_http_config;
  // nginx's keepalive_timeout: how long an idle kept-alive connection stays open.
  std::chrono::milliseconds keepalive_timeout{75'000};
  // How long every port may take to accept connections before start fails.
  std::chrono::milliseconds start_timeout{10'000};
  // Graceful stop (SIGQUIT) bound before SIGKILL.
  std::chrono::milliseconds stop_timeout{5'000};
};

class NginxServer {
 public:
  // Generates the TLS material, writes nginx.conf and starts nginx; returns once every port accepts connections.
  // Throws std::runtime_error on failure, with nginx's exit status and the tail of its error log.
  explicit NginxServer(std::filesystem::path root, NginxOptions options = {});
  // stop(), then the private directory is removed.
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  // Graceful stop (SIGQUIT), SIGKILL of nginx's process group after options.stop_timeout; reaps. Idempotent.
  void stop();

  uint16_t http_port() const noexcept { return ports_.http; }
  uint16_t https_port() const noexcept { return ports_.https; }
  uint16_t wrong_host_https_port() const noexcept { return ports_.wrong_host_https; }
  uint16_t no_ranges_port() const noexcept { return ports_.no_ranges; }
  // Port of the plain HTTP server on [::1] (== http_port()), or 0 when IPv6 loopback is unavailable.
  uint16_t ipv6_port() const noexcept { return ports_.ipv6 ? ports_.http : 0; }

  // "http://127.0.0.1:PORT" and "https://localhost:PORT".
  std::string http_endpoint() const;
  std::string https_endpoint() const;

  // PEM of the CA that signed both server certificates; pass it to the client as its CA file.
  const std::filesystem::path& ca_file() const noexcept { return ca_file_; }
  // PEM of an unrelated CA: verifying the servers against it must fail ("unknown CA").
  const std::filesystem::path& other_ca_file() const noexcept { return other_ca_file_; }
  const std::filesystem::path& root() const noexcept { return root_; }
  // The private prefix directory (nginx.conf, error.log, certificates).
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  // pid of the nginx master (also its process-group id); -1 once stopped.
  pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }

 private:
  struct Ports {
    uint16_t http = 0;
    uint16_t https = 0;
    uint16_t wrong_host_https = 0;
    uint16_t no_ranges = 0;
    bool ipv6 = false;
  };
  enum class StartResult { kReady, kAddressInUse };

  void make_certificates();
  Ports pick_ports() const;
  std::string config_text(const Ports& ports) const;
  StartResult start(const Ports& ports);
  bool ready(const Ports& ports) const;
  [[noreturn]] void fail(const std::string& why);

  std::filesystem::path root_;
  NginxOptions options_;
  TempDir dir_;
  std::filesystem::path ca_file_;
  std::filesystem::path other_ca_file_;
  Ports ports_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace ringfetch::testing
