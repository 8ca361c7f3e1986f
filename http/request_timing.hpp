// RequestTiming: what an endpoint set's answers have shown about time, shared by its workers (atomics only).
//  - First-byte times go into a decaying log-scale histogram (quarter powers of two), so a quantile costs a scan of
//    a few dozen buckets.
//  - Hedged requests: S3's first-byte times have a long tail, so a GET whose first byte is later than the recent
//    p95 (never earlier than HttpOptions::hedge_min_ms) is sent once more on another connection; the first answer
//    wins and the other attempt is abandoned before it reads any body, so no byte is delivered twice. A budget
//    keeps hedges to a few percent of requests.
//  - The adaptive gap: reading a gap of g bytes on a connection costs g / (its throughput); a new request costs a
//    first-byte wait. Reading the gap is cheaper while g < first-byte latency x per-connection throughput, which is
//    the max_gap the planner uses when the caller left it at its default (the p10 first-byte time — queueing behind
//    other connections' bodies inflates the median and is paid either way — and a moving average of body
//    throughput, measured on bodies large enough to time).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "ringfetch/options.hpp"

namespace ringfetch::http {

class RequestTiming {
 public:
  explicit RequestTiming(const HttpOptions& options) : options_(options) {}

  void record_first_byte(uint64_t ns);
  // A body of `bytes` read in `ns` after its head (only bodies of kMinTimedBody or more are used).
  void record_body(uint64_t bytes, uint64_t ns);
  void count_request() { requests_.fetch_add(1, std::memory_order_relaxed); }

  // How long after its request went out a GET still without its first byte is hedged; 0: not now (hedging off, or
  // too few first-byte times measured yet to know what late is).
  uint64_t threshold_ns() const;
  // True (and counted) when the budget allows one more hedge.
  bool take_budget();
  // First-byte latency x per-connection throughput, in bytes (at most kMaxGap); 0 until both were measured.
  uint64_t gap_bytes() const;

  static constexpr uint64_t kMinSamples = 8;
  static constexpr uint64_t kMinTimedBody = 256 << 10;
  static constexpr uint64_t kMaxGap = 64ull << 20;
  static constexpr uint64_t kGapQuantilePerThousand = 100;  // the first-byte quantile the gap is planned with

 private:
  static constexpr size_t kBuckets = 96;         // 2^(i/4) microseconds: 1 µs .. ~16 min
  static constexpr uint64_t kDecayEvery = 2048;  // samples between halvings: the histogram follows recent times
  static size_t bucket_of(uint64_t ns);
  static uint64_t bucket_upper_ns(size_t bucket);
  uint64_t quantile_ns(uint64_t per_thousand) const;  // 0 with no samples

  const HttpOptions& options_;
  std::array<std::atomic<uint32_t>, kBuckets> histogram_{};
  std::atomic<uint64_t> samples_{0};  // since the start (decides decay); the histogram holds a decayed count
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> hedges_{0};
  std::atomic<uint64_t> bytes_per_s_{0};  // moving average of body throughput per connection
};

}  // namespace ringfetch::http
