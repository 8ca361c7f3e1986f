#include "http/request_timing.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ringfetch::http {

size_t RequestTiming::bucket_of(uint64_t ns) {
  const uint64_t us = std::max<uint64_t>(ns / 1000, 1);
  // Quarter powers of two: 4 * log2(us), from the bit width and the next two bits below the top one.
  const unsigned top = static_cast<unsigned>(std::bit_width(us)) - 1;
  const unsigned quarter = top >= 2 ? static_cast<unsigned>((us >> (top - 2)) & 3) : 0;
  return std::min<size_t>(kBuckets - 1, top * 4 + quarter);
}

uint64_t RequestTiming::bucket_upper_ns(size_t bucket) {
  return static_cast<uint64_t>(std::exp2((static_cast<double>(bucket) + 1) / 4.0) * 1000.0);
}

void RequestTiming::record_first_byte(uint64_t ns) {
  histogram_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  const uint64_t n = samples_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n % kDecayEvery == 0) {
    for (auto& count : histogram_) count.store(count.load(std::memory_order_relaxed) / 2, std::memory_order_relaxed);
  }
}

uint64_t RequestTiming::quantile_ns(uint64_t per_thousand) const {
  uint64_t total = 0;
  for (const auto& count : histogram_) total += count.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const uint64_t rank = std::max<uint64_t>(1, total * per_thousand / 1000);
  uint64_t seen = 0;
  size_t bucket = 0;
  for (; bucket + 1 < kBuckets; ++bucket) {
    seen += histogram_[bucket].load(std::memory_order_relaxed);
    if (seen >= rank) break;
  }
  return bucket_upper_ns(bucket);
}

uint64_t RequestTiming::threshold_ns() const {
  if (!options_.hedge || samples_.load(std::memory_order_relaxed) < kMinSamples) return 0;
  const uint64_t p95 = quantile_ns(950);
  if (p95 == 0) return 0;
  return std::max<uint64_t>(p95, uint64_t{options_.hedge_min_ms} * 1'000'000);
}

void RequestTiming::record_body(uint64_t bytes, uint64_t ns) {
  if (bytes < kMinTimedBody || ns == 0) return;
  const uint64_t rate = static_cast<uint64_t>(static_cast<double>(bytes) * 1e9 / static_cast<double>(ns));
  // An exponential moving average (1/8 new); races between workers lose a sample at worst.
  const uint64_t old = bytes_per_s_.load(std::memory_order_relaxed);
  bytes_per_s_.store(old == 0 ? rate : old - old / 8 + rate / 8, std::memory_order_relaxed);
}

uint64_t RequestTiming::gap_bytes() const {
  const uint64_t rate = bytes_per_s_.load(std::memory_order_relaxed);
  if (rate == 0 || samples_.load(std::memory_order_relaxed) < kMinSamples) return 0;
  // A low quantile, not the median: under load a first byte also waits behind the other connections' bodies (one
  // server, one link), and that queueing is paid whichever way the bytes are asked for; what a merge saves is the
  // latency the server adds to a request, which the quickest answers show.
  const double gap = static_cast<double>(quantile_ns(kGapQuantilePerThousand)) * 1e-9 * static_cast<double>(rate);
  return std::clamp<uint64_t>(static_cast<uint64_t>(gap), 1, kMaxGap);
}

bool RequestTiming::take_budget() {
  // A small allowance on top of the percentage, so that a short load can hedge its first straggler at all.
  constexpr uint64_t kAllowance = 2;
  const uint64_t allowed = requests_.load(std::memory_order_relaxed) * options_.hedge_budget_percent / 100 + kAllowance;
  uint64_t sent = hedges_.load(std::memory_order_relaxed);
  while (sent < allowed) {
    if (hedges_.compare_exchange_weak(sent, sent + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

}  // namespace ringfetch::http
