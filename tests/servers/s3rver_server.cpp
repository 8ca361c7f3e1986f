// Installs, starts and stops s3rver (see s3rver_server.hpp). s3rver is started with `--port 0` and prints
// "S3rver listening on 127.0.0.1:PORT" once bound, so the kernel picks the port and there is no window in which
// another process could take it. Node 20 needs --openssl-legacy-provider: s3rver encrypts ListObjectsV2
// continuation tokens with DES, which OpenSSL 3 only offers through its legacy provider.
#include "servers/s3rver_server.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "servers/loopback.hpp"

namespace ringfetch::testing {
namespace {

constexpr const char* kPackage = "s3rver@3.7.1";
constexpr const char* kVersionField = "\"version\": \"3.7.1\"";
constexpr const char* kListeningLine = "S3rver listening on 127.0.0.1:";
constexpr auto kReadyPollInterval = std::chrono::milliseconds(20);
constexpr std::size_t kLogTailBytes = 4096;
constexpr unsigned long kMaxPort = 65535;
constexpr std::size_t kMaxPortDigits = 5;

std::filesystem::path package_dir(const std::filesystem::path& build_dir) {
  return build_dir / "node_modules" / "s3rver";
}

bool right_version_installed(const std::filesystem::path& build_dir) {
  std::filesystem::path dir = package_dir(build_dir);
  return std::filesystem::exists(dir / "bin" / "s3rver.js") &&
         tail_of_file(dir / "package.json", 1 << 16).find(kVersionField) != std::string::npos;
}

// An exclusive flock on a file, so concurrent test binaries (ctest -j) do not run npm into the same prefix at once.
class InstallLock {
 public:
  explicit InstallLock(const std::filesystem::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("open " + path.string() + ": " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) throw std::runtime_error("flock " + path.string() + ": " + std::strerror(errno));
    }
  }
  ~InstallLock() { ::close(fd_); }  // closing releases the lock
  InstallLock(const InstallLock&) = delete;
  InstallLock& operator=(const InstallLock&) = delete;

 private:
  int fd_ = -1;
};

// The port in "S3rver listening on 127.0.0.1:PORT", or 0 if that line has not been printed yet.
uint16_t parse_listening_port(const std::string& log) {
  std::size_t at = log.find(kListeningLine);
  if (at == std::string::npos) return 0;
  std::size_t begin = at + std::strlen(kListeningLine);
  std::size_t end = log.find_first_not_of("0123456789", begin);
  if (end == std::string::npos || end == begin) return 0;  // line not complete yet
  if (end - begin > kMaxPortDigits) return 0;
  unsigned long port = std::stoul(log.substr(begin, end - begin));
  return port <= kMaxPort ? static_cast<uint16_t>(port) : 0;
}

}  // namespace

std::filesystem::path ensure_s3rver_installed(const std::filesystem::path& build_dir,
                                              std::chrono::milliseconds install_timeout) {
  std::filesystem::path script = package_dir(build_dir) / "bin" / "s3rver.js";
  if (right_version_installed(build_dir)) return script;
  InstallLock lock(build_dir / ".s3rver-install.lock");
  if (right_version_installed(build_dir)) return script;  // another binary installed it while we waited
  std::filesystem::path log = build_dir / "s3rver-npm-install.log";
  int code = run_command(
      ChildSpec{.argv = {"npm", "install", "--no-audit", "--no-fund", "--prefix", build_dir.string(), kPackage},
                .log_file = log},
      install_timeout);
  if (code != 0 || !right_version_installed(build_dir)) {
    throw std::runtime_error(std::string("npm install ") + kPackage + " failed (status " + std::to_string(code) +
                             "), log " + log.string() + ":\n" + tail_of_file(log, kLogTailBytes));
  }
  return script;
}

S3rverServer::S3rverServer(S3rverOptions options) : options_(options), dir_("s3rver-") {
  std::filesystem::path script = ensure_s3rver_installed(test_build_dir(), options_.install_timeout);
  std::filesystem::create_directories(data_dir());
  process_ = std::make_unique<ChildProcess>(
      ChildSpec{.argv = {"node", "--openssl-legacy-provider", script.string(), "--directory", data_dir().string(),
                         "--address", "127.0.0.1", "--port", "0", "--silent"},
                .log_file = dir_.path() / "s3rver.log",
                .parent_death_signal = SIGKILL});
  port_ = wait_until_listening();
}

S3rverServer::~S3rverServer() { stop(); }

void S3rverServer::stop() {
  if (!process_) return;
  process_->terminate(SIGTERM, options_.stop_timeout);
  process_.reset();
}

std::string S3rverServer::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

uint16_t S3rverServer::wait_until_listening() {
  auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  for (;;) {
    uint16_t port = parse_listening_port(tail_of_file(dir_.path() / "s3rver.log", kLogTailBytes));
    if (port != 0 && port_accepts(IpFamily::kV4, port)) return port;
    if (process_->exited()) fail("node " + process_->describe_exit() + " during start");
    if (std::chrono::steady_clock::now() >= deadline) {
      fail("it did not accept connections within " + std::to_string(options_.start_timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(kReadyPollInterval);
  }
}

void S3rverServer::fail(const std::string& why) {
  std::string message = "S3rverServer: s3rver failed to start: " + why + "\n--- output (tail) ---\n" +
                        tail_of_file(dir_.path() / "s3rver.log", kLogTailBytes);
  stop();
  throw std::runtime_error(message);
}

}  // namespace ringfetch::testing
