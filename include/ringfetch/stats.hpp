// Engine counters. Tests assert on these (requests issued, bytes over-fetched, bytes copied in user space);
// benchmarks time the work they describe.
#pragma once

#include <cstdint>
#include <string>

namespace ringfetch {

struct Stats {
  uint64_t requests = 0;           // read requests put on the wire or issued to a file (retries not included);
                                   // a request the arena could not hold at once is issued in parts, one each
  uint64_t bytes_requested = 0;    // distinct bytes the plans asked for
  uint64_t bytes_fetched = 0;      // bytes read from sources (requested + coalesced gaps + alignment padding)
  uint64_t bytes_body = 0;         // HTTP response body bytes received
  uint64_t bytes_copied_user = 0;  // bytes memcpy'd by ringfetch in user space (HTTP head remnants, bounces)
  uint64_t items = 0;              // items delivered
  uint64_t retries = 0;            // requests retried after a transient failure
  uint64_t errors = 0;             // items that completed with an error
  uint64_t arena_waits = 0;        // times the scheduler waited for views to be released (backpressure)
  uint64_t arena_base_bytes = 0;   // EngineOptions::arena_bytes: memory the engine may hold for work in flight
  uint64_t memory_limit_bytes = 0; // all item memory, views included (EngineOptions::memory_limit)
  uint64_t arena_bytes = 0;        // memory mapped for items now (grows on demand, shrinks back when views drop)
  uint64_t arena_peak_bytes = 0;   // most memory mapped at once
  uint64_t arena_in_use_bytes = 0; // of arena_bytes, allocated to items
  uint64_t bytes_held_by_views = 0;  // of arena_in_use_bytes, owned only by views the caller keeps
  uint64_t connections_opened = 0;  // TCP connections made (keep-alive reuse keeps this low)
  uint64_t tls_handshakes = 0;      // full or resumed TLS handshakes completed
  uint64_t tls_resumptions = 0;     // handshakes that resumed an earlier session
  uint64_t hedges_sent = 0;        // GETs sent a second time because their first byte was late
  uint64_t hedges_won = 0;         // of those, the ones whose second answer came first
  uint64_t hedge_bytes_wasted = 0; // bytes received by the attempts that lost (the body is never read twice)
  uint64_t max_gap = 0;            // the max_gap the last fetch was planned with (measured when left at its default)
  uint64_t slow_connections = 0;    // connections abandoned for answering under HttpOptions::min_throughput_bytes_per_s
  std::string backend;             // "io_uring" or "epoll"
  bool buffers_registered = false;  // arena registered with the kernel (READ_FIXED in use)
  std::string fallback_reason;     // why io_uring or registration is not in use; empty when both are
};

}  // namespace ringfetch
