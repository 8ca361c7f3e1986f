// The ringfetch contender, through the public API only: one Engine for the whole benchmark (its arena is faulted
// in once, at start, and reused by every run), and per run a fresh Store (so its connections are set up inside
// the timed run, as the other contenders' are) and one fetch of the workload's items; or, for the gap sweep, a
// Store kept across runs (see RingfetchJob::keep_store). Three ways to consume:
//   kViews        iterate the batch in plan order, keeping each ItemView (bulk workloads)
//   kCallback     Store::fetch(plan, on_item): items as they complete, each timestamped (small reads)
//   kPerRequest   one single-item fetch per read, `connections` of them outstanding (small reads; times each read
//                 directly, at the price of planning every read on its own)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
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
  // Overrides of the workload's StoreOptions: a max_gap of its own, or none at all (adaptive: the Store plans with
  // what its earlier requests measured), and hedged GETs on or off (HttpOptions::hedge).
  std::optional<uint64_t> max_gap;
  bool adaptive_gap = false;
  bool hedge = true;
  // Non-empty: the Store is kept under this name across runs; its first run opens it and fetches the plan once,
  // untimed (kViews only), and every run times the fetch alone. Empty: a fresh Store per run, opened and closed
  // inside the timed run.
  std::string keep_store;
};

class RingfetchContender {
 public:
  // threads: engine threads (rings). arena_bytes: enough for the largest workload's items held at once.
  RingfetchContender(unsigned threads, uint64_t arena_bytes);
  ~RingfetchContender();

  // One timed run: wall and CPU (the fetched bytes are checked, untimed, before they are dropped), requests, bytes,
  // hedges and the planned max_gap from engine.stats(), latencies for kCallback / kPerRequest.
  RunResult run(const RingfetchJob& job);

  // "io_uring, registered buffers" or the fallback reason.
  std::string describe() const;

 private:
  // The Store kept under job.keep_store, opened and warmed at its first use.
  Store* kept_store(const RingfetchJob& job, const StoreOptions& options, const Plan& plan);

  std::unique_ptr<Engine> engine_;
  std::map<std::string, std::unique_ptr<Store>> kept_stores_;  // closed before the engine goes
};

}  // namespace ringfetch::bench
