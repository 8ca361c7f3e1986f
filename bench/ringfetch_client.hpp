// The ringfetch contender, through the public API only: one Engine for the whole benchmark (its arena is faulted
// in once, at start, and reused by every run), and per run a fresh Store (so its connections are set up inside
// the timed run, as the other contenders' are) and one fetch of the workload's items. Three ways to consume:
//   kViews        iterate the batch in plan order, keeping each ItemView (bulk workloads)
//   kCallback     Store::fetch(plan, on_item): items as they complete, each timestamped (small reads)
//   kPerRequest   one single-item fetch per read, `connections` of them outstanding (small reads; times each read
//                 directly, at the price of planning every read on its own)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "bench_types.hpp"
#include "ringfetch/ringfetch.hpp"
#include "workloads.hpp"

namespace ringfetch::bench {

enum class RingfetchMode { kViews, kCallback, kPerRequest };

struct RingfetchJob {
  Protocol protocol = Protocol::kHttp;
  ServerEndpoint server;
  const Workload* workload = nullptr;
  unsigned connections = 1;
  RingfetchMode mode = RingfetchMode::kViews;
  // Empty: items land in the engine's arena. Else object-sized caller memory: every item is given
  // destination[offset, offset + length) as its Plan destination, and the run registers the memory with the
  // engine (Engine::register_memory, inside the timed run: what a loader filling fresh tensors pays).
  std::span<std::byte> destination;
};

class RingfetchContender {
 public:
  // threads: engine threads (rings). arena_bytes: enough for the largest workload's items held at once.
  RingfetchContender(unsigned threads, uint64_t arena_bytes);
  ~RingfetchContender();

  // One timed run: wall and CPU (the fetched bytes are checked, untimed, before they are dropped), requests and
  // bytes from engine.stats(), latencies for kCallback / kPerRequest.
  RunResult run(const RingfetchJob& job);

  // "io_uring, registered buffers" or the fallback reason.
  std::string describe() const;

 private:
  std::unique_ptr<Engine> engine_;
};

}  // namespace ringfetch::bench
