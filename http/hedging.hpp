// Hedged requests: S3's first-byte times have a long tail, so a GET whose first byte is later than the recent p95
// (never earlier than HttpOptions::hedge_min_ms) is sent once more on another connection; the first answer wins and
// the other attempt is abandoned before it reads any body, so no byte is delivered twice. A budget keeps hedges to
// a few percent of requests. One Hedging per router (endpoint set), shared by its workers: counters are atomics and
// first-byte times go into a decaying log-scale histogram, so the p95 costs a scan of a few dozen buckets.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "ringfetch/options.hpp"

namespace ringfetch::http {

class Hedging {
 public:
  explicit Hedging(const HttpOptions& options) : options_(options) {}

  // How long after its request went out a GET still without its first byte is hedged; 0: not now (hedging off, or
  // too few first-byte times measured yet to know what late is).
  uint64_t threshold_ns() const;
  void record_first_byte(uint64_t ns);
  void count_request() { requests_.fetch_add(1, std::memory_order_relaxed); }
  // True (and counted) when the budget allows one more hedge.
  bool take_budget();

  static constexpr uint64_t kMinSamples = 8;

 private:
  static constexpr size_t kBuckets = 96;   // 2^(i/4) microseconds: 1 µs .. ~16 min
  static constexpr uint64_t kDecayEvery = 2048;  // samples between halvings: the histogram follows recent times
  static size_t bucket_of(uint64_t ns);
  static uint64_t bucket_upper_ns(size_t bucket);

  const HttpOptions& options_;
  std::array<std::atomic<uint32_t>, kBuckets> histogram_{};
  std::atomic<uint64_t> samples_{0};  // since the start (decides decay); the histogram holds a decayed count
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> hedges_{0};
};

}  // namespace ringfetch::http
