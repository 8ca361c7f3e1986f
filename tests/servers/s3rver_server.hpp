// A real S3 peer on loopback for the S3 tests: s3rver 3.7.1 (npm), run by node as our child with a fresh data
// directory. The package is installed once under `<build dir>/node_modules` (npm install, serialized between test
// binaries by a lock file). What s3rver does and does not check is listed in DESIGN.md ("Test servers"); in short it
// checks the access key, the presence of x-amz-content-sha256 and the x-amz-date skew, but not SigV4 signatures.
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

struct S3rverOptions {
  // Node's start-up plus s3rver's module loading; generous for loaded CI machines.
  std::chrono::milliseconds start_timeout{20'000};
  // Bound for SIGTERM before SIGKILL.
  std::chrono::milliseconds stop_timeout{5'000};
  // npm install, first run only.
  std::chrono::milliseconds install_timeout{300'000};
};

// Path of bin/s3rver.js under `<build_dir>/node_modules`, installing s3rver@3.7.1 first if it is missing or another
// version. Throws std::runtime_error with npm's log tail on failure.
std::filesystem::path ensure_s3rver_installed(const std::filesystem::path& build_dir,
                                              std::chrono::milliseconds install_timeout);

class S3rverServer {
 public:
  // Installs if needed, starts s3rver on a kernel-chosen free port of 127.0.0.1 and returns once it accepts.
  // Throws std::runtime_error with node's exit status and output on failure.
  explicit S3rverServer(S3rverOptions options = {});
  // stop(), then the data directory is removed.
  ~S3rverServer();
  S3rverServer(const S3rverServer&) = delete;
  S3rverServer& operator=(const S3rverServer&) = delete;

  // SIGTERM, SIGKILL after options.stop_timeout; reaps. Idempotent.
  void stop();

  // "http://127.0.0.1:PORT".
  std::string endpoint() const;
  uint16_t port() const noexcept { return port_; }
  // s3rver's built-in account.
  std::string access_key() const { return "S3RVER"; }
  std::string secret_key() const { return "S3RVER"; }
  // Where s3rver keeps buckets and objects (for tests that inspect what was stored).
  std::filesystem::path data_dir() const { return dir_.path() / "data"; }
  // pid of node (also its process-group id); -1 once stopped.
  pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }

 private:
  uint16_t wait_until_listening();
  [[noreturn]] void fail(const std::string& why);

  S3rverOptions options_;
  TempDir dir_;
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace ringfetch::testing
