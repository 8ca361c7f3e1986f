// The server of the `latency` workload: our FaultServer (tests/servers/fault_server.hpp) serving one pattern object
// from memory with a first-byte delay, as an object store has (S3: ~20-50 ms before the first byte of every GET).
// The gap and straggler workloads use it too (one per first-byte delay; stragglers on top).
// This kernel has no netem, so the latency has to come from the server. It runs in a child process of its own, as
// nginx does, so that its CPU time is not counted as the client's (getrusage RUSAGE_SELF) and it can sit on the
// server CPU while the client keeps its own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace ringfetch::bench {

struct LatencyServerOptions {
  uint64_t object_bytes = 0;
  uint64_t object_seed = 0;                 // the object is testing::fill_pattern(seed) of that size
  std::chrono::milliseconds first_byte_delay{20};
  uint64_t straggler_every = 0;             // every N-th answer waits straggler_delay more (0: none)
  std::chrono::milliseconds straggler_delay{0};
  int cpu = -1;                             // the child pins itself (and its loop thread) here; -1: not pinned
};

class LatencyServer {
 public:
  // Forks the child and waits until it listens (it builds the object first). Fork it before this process starts
  // any thread. Throws std::runtime_error if the child fails to start.
  explicit LatencyServer(const LatencyServerOptions& options);
  // Tells the child to stop (closes its control pipe) and reaps it.
  ~LatencyServer();
  LatencyServer(const LatencyServer&) = delete;
  LatencyServer& operator=(const LatencyServer&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // One line for the report: delays, object size, pinning.
  std::string describe() const;

 private:
  LatencyServerOptions options_;
  pid_t pid_ = -1;
  int control_fd_ = -1;  // the child exits when it reads EOF here
  uint16_t port_ = 0;
};

}  // namespace ringfetch::bench
