// Starts and stops a private nginx (see nginx_server.hpp). Readiness means two things: nginx wrote its pid file
// (it does so only after binding every listen socket, so an interloper on one of our ports cannot fool us) and every
// port accepts a connection. Ports are picked free just before start; if another process takes one in between,
// nginx exits with "Address already in use" and we retry with fresh ports.
#include "servers/nginx_server.hpp"

#include <unistd.h>

#include <sstream>
#include <stdexcept>
#include <thread>

#include "servers/loopback.hpp"

namespace ringfetch::testing {
namespace {

constexpr const char* kNginxBinary = "/usr/sbin/nginx";
constexpr const char* kOpenssl = "openssl";
constexpr int kMaxStartAttempts = 3;
constexpr auto kReadyPollInterval = std::chrono::milliseconds(10);
constexpr auto kOpensslTimeout = std::chrono::seconds(30);
constexpr std::size_t kLogTailBytes = 4096;
constexpr int kWorkerConnections = 1024;
constexpr const char* kCertValidDays = "30";
// nginx's graceful stop waits for open requests; bound it so a stalled client cannot hold the test up.
constexpr const char* kWorkerShutdownTimeout = "5s";

// An OpenSSL config of our own, so the result does not depend on /etc/ssl/openssl.cnf.
constexpr const char* kOpensslConfig = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_localhost]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
[leaf_wrong_host]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example
)";

// A path as an nginx config string literal.
std::string quoted(const std::filesystem::path& path) {
  std::string out = "\"";
  for (char c : path.string()) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string listen_lines(uint16_t port, bool ipv6, const char* flags) {
  std::string out = "    listen 127.0.0.1:" + std::to_string(port) + flags + ";\n";
  if (ipv6) out += "    listen [::1]:" + std::to_string(port) + flags + ";\n";
  return out;
}

class CertificateMaker {
 public:
  explicit CertificateMaker(const std::filesystem::path& dir) : dir_(dir), config_(dir / "openssl.cnf") {
    write_file(config_, kOpensslConfig);
  }

  // Self-signed CA: <name>.crt / <name>.key.
  std::filesystem::path make_ca(const std::string& name, const std::string& common_name) {
    run({kOpenssl, "req", "-x509", "-config", config_.string(), "-extensions", "ca_ext", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(name), "-out", cert(name), "-days", kCertValidDays,
         "-subj", "/CN=" + common_name});
    return cert(name);
  }

  // Leaf signed by CA `ca`, extensions from config section `section`.
  void make_leaf(const std::string& name, const std::string& common_name, const std::string& ca,
                 const std::string& section, const std::string& serial) {
    std::string csr = (dir_ / (name + ".csr")).string();
    run({kOpenssl, "req", "-new", "-config", config_.string(), "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(name), "-out", csr, "-subj", "/CN=" + common_name});
    run({kOpenssl, "x509", "-req", "-in", csr, "-CA", cert(ca), "-CAkey", key(ca), "-set_serial", serial, "-days",
         kCertValidDays, "-extfile", config_.string(), "-extensions", section, "-out", cert(name)});
  }

  std::string cert(const std::string& name) const { return (dir_ / (name + ".crt")).string(); }
  std::string key(const std::string& name) const { return (dir_ / (name + ".key")).string(); }

 private:
  void run(std::vector<std::string> argv) {
    std::filesystem::path log = dir_ / "openssl.log";
    int code = run_command(ChildSpec{.argv = argv, .log_file = log}, kOpensslTimeout);
    if (code != 0) {
      throw std::runtime_error("openssl " + argv[1] + " failed with status " + std::to_string(code) + ":\n" +
                               tail_of_file(log, kLogTailBytes));
    }
  }

  std::filesystem::path dir_;
  std::filesystem::path config_;
};

}  // namespace

NginxServer::NginxServer(std::filesystem::path root, NginxOptions options)
    : root_(std::filesystem::absolute(std::move(root))), options_(std::move(options)), dir_("nginx-") {
  make_certificates();
  for (int attempt = 1;; ++attempt) {
    Ports ports = pick_ports();
    if (start(ports) == StartResult::kReady) {
      ports_ = ports;
      return;
    }
    if (attempt == kMaxStartAttempts) {
      fail("its ports were taken by another process " + std::to_string(attempt) + " times");
    }
  }
}

NginxServer::~NginxServer() { stop(); }

void NginxServer::stop() {
  if (!process_) return;
  process_->terminate(SIGQUIT, options_.stop_timeout);
  process_.reset();
}

std::string NginxServer::http_endpoint() const { return "http://127.0.0.1:" + std::to_string(ports_.http); }
std::string NginxServer::https_endpoint() const { return "https://localhost:" + std::to_string(ports_.https); }

void NginxServer::make_certificates() {
  CertificateMaker maker(dir_.path());
  ca_file_ = maker.make_ca("ca", "ringfetch test CA");
  other_ca_file_ = maker.make_ca("other-ca", "ringfetch unrelated CA");
  maker.make_leaf("localhost", "localhost", "ca", "leaf_localhost", "2");
  maker.make_leaf("wrong-host", "wrong.example", "ca", "leaf_wrong_host", "3");
}

NginxServer::Ports NginxServer::pick_ports() const {
  Ports ports;
  ports.ipv6 = options_.enable_ipv6 && ipv6_loopback_available();
  ports.http = pick_free_port(ports.ipv6);
  // The kernel hands out ephemeral ports in a varying order; insist on four distinct ones.
  do ports.https = pick_free_port(ports.ipv6);
  while (ports.https == ports.http);
  do ports.wrong_host_https = pick_free_port(ports.ipv6);
  while (ports.wrong_host_https == ports.http || ports.wrong_host_https == ports.https);
  do ports.no_ranges = pick_free_port(ports.ipv6);
  while (ports.no_ranges == ports.http || ports.no_ranges == ports.https || ports.no_ranges == ports.wrong_host_https);
  return ports;
}

std::string NginxServer::config_text(const Ports& ports) const {
  const std::filesystem::path& d = dir_.path();
  std::ostringstream c;
  c << "# Written by ringfetch's test harness (tests/servers/nginx_server.cpp).\n"
    << "daemon off;\nmaster_process on;\nworker_processes 1;\n";
  // As root, nginx would switch workers to `nobody`, who cannot read a 0700 test directory.
  if (::geteuid() == 0) c << "user root;\n";
  c << "pid " << quoted(d / "nginx.pid") << ";\n"
    << "lock_file " << quoted(d / "nginx.lock") << ";\n"
    << "error_log " << quoted(d / "error.log") << " notice;\n"
    << "worker_shutdown_timeout " << kWorkerShutdownTimeout << ";\n"
    << "events { worker_connections " << kWorkerConnections << "; }\n"
    << "http {\n"
    << "  access_log off;\n"
    << "  client_body_temp_path " << quoted(d / "client_body") << ";\n"
    << "  proxy_temp_path " << quoted(d / "proxy") << ";\n"
    << "  fastcgi_temp_path " << quoted(d / "fastcgi") << ";\n"
    << "  uwsgi_temp_path " << quoted(d / "uwsgi") << ";\n"
    << "  scgi_temp_path " << quoted(d / "scgi") << ";\n"
    << "  types { }\n  default_type application/octet-stream;\n"
    << "  sendfile on;\n  keepalive_requests 100000;\n  keepalive_timeout " << options_.keepalive_timeout.count()
    << "ms;\n  server_tokens off;\n"
    << "  root " << quoted(root_) << ";\n"
    << "  server {\n" << listen_lines(ports.http, ports.ipv6, "") << "  }\n"
    << "  server {\n" << listen_lines(ports.https, ports.ipv6, " ssl") << "    server_name localhost;\n"
    << "    ssl_certificate " << quoted(d / "localhost.crt") << ";\n"
    << "    ssl_certificate_key " << quoted(d / "localhost.key") << ";\n  }\n"
    << "  server {\n" << listen_lines(ports.wrong_host_https, ports.ipv6, " ssl") << "    server_name wrong.example;\n"
    << "    ssl_certificate " << quoted(d / "wrong-host.crt") << ";\n"
    << "    ssl_certificate_key " << quoted(d / "wrong-host.key") << ";\n  }\n"
    << "  server {\n" << listen_lines(ports.no_ranges, ports.ipv6, "") << "    max_ranges 0;\n  }\n"
    << options_.extra_http_config << "\n"
    << "}\n";
  return c.str();
}

NginxServer::StartResult NginxServer::start(const Ports& ports) {
  const std::filesystem::path& d = dir_.path();
  std::filesystem::remove(d / "nginx.pid");
  std::filesystem::remove(d / "error.log");
  write_file(d / "nginx.conf", config_text(ports));
  // SIGTERM on our death is nginx's fast shutdown: the master takes its workers down with it.
  std::vector<std::string> argv = {kNginxBinary, "-p", d.string() + "/", "-e", (d / "error.log").string(),
                                   "-c", (d / "nginx.conf").string()};
  process_ = std::make_unique<ChildProcess>(
      ChildSpec{.argv = argv, .log_file = d / "stderr.log", .parent_death_signal = SIGTERM});
  auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  while (!ready(ports)) {
    if (process_->exited()) {
      if (tail_of_file(d / "error.log", kLogTailBytes).find("Address already in use") != std::string::npos) {
        process_.reset();
        return StartResult::kAddressInUse;
      }
      fail("nginx " + process_->describe_exit() + " during start");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      fail("its ports did not accept connections within " + std::to_string(options_.start_timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(kReadyPollInterval);
  }
  return StartResult::kReady;
}

bool NginxServer::ready(const Ports& ports) const {
  std::string pid_text = tail_of_file(dir_.path() / "nginx.pid", kLogTailBytes);
  if (pid_text != std::to_string(process_->pid()) + "\n") return false;
  for (uint16_t port : {ports.http, ports.https, ports.wrong_host_https, ports.no_ranges}) {
    if (!port_accepts(IpFamily::kV4, port)) return false;
    if (ports.ipv6 && !port_accepts(IpFamily::kV6, port)) return false;
  }
  return true;
}

void NginxServer::fail(const std::string& why) {
  const std::filesystem::path& d = dir_.path();
  std::string message = "NginxServer: nginx failed to start: " + why + "\n--- error.log (tail) ---\n" +
                        tail_of_file(d / "error.log", kLogTailBytes) + "--- stderr (tail) ---\n" +
                        tail_of_file(d / "stderr.log", kLogTailBytes);
  stop();
  throw std::runtime_error(message);
}

}  // namespace ringfetch::testing
