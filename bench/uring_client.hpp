// The "uring limit" contender: the least an io_uring client has to do to move the same bytes, and the yardstick
// ringfetch's CPU per GB is held against. Plain HTTP only (no TLS: the point is the kernel-to-memory path, not the
// cipher). N blocking keep-alive sockets, all driven by one io_uring (liburing); the destination is registered with
// io_uring_register_buffers in chunks of at most 1 GiB; each connection sends its next GET (IORING_OP_SEND) when
// its response ends; the head comes from a 1 KiB probe (IORING_OP_RECV into a small buffer), parsed minimally
// (status, Content-Length, Content-Range start); the body bytes that arrived with the head are copied (counted as
// user-space copies) and every further body byte is read with IORING_OP_READ_FIXED on the socket, straight into its
// final, registered place. What it uses is probed at start; a kernel without it fails the run with a clear error.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "bench_types.hpp"

namespace ringfetch::bench {

// A ring with `memory` registered once, reused by every run whose destination lies inside that memory (as
// ringfetch's Engine keeps its registered arena): registration is paid at construction, not per run.
class UringContender {
 public:
  // Throws std::runtime_error when io_uring, an opcode it needs or the buffer registration is unavailable.
  explicit UringContender(std::span<std::byte> memory);
  ~UringContender();
  UringContender(const UringContender&) = delete;
  UringContender& operator=(const UringContender&) = delete;

  // Runs `job` (job.dest inside the registered memory) and fills the counters of `out`; the caller times it.
  void run(const TransportJob& job, RunResult* out);

  struct Ring;

 private:
  std::unique_ptr<Ring> ring_;
};

// A fresh ring registering job.dest inside the call (so a caller timing it pays the registration, which faults in
// fresh memory), then the run. Errors end up in out->error.
void run_uring(const TransportJob& job, RunResult* out);

}  // namespace ringfetch::bench
