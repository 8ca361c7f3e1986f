#include "http/hedging.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ringfetch::http {

size_t Hedging::bucket_of(uint64_t ns) {
  const uint64_t us = std::max<uint64_t>(ns / 1000, 1);
  // Quarter powers of two: 4 * log2(us), from the bit width and the next two bits below the top one.
  const unsigned top = static_cast<unsigned>(std::bit_width(us)) - 1;
  const unsigned quarter = top >= 2 ? static_cast<unsigned>((us >> (top - 2)) & 3) : 0;
  return std::min<size_t>(kBuckets - 1, top * 4 + quarter);
}

uint64_t Hedging::bucket_upper_ns(size_t bucket) {
  return static_cast<uint64_t>(std::exp2((static_cast<double>(bucket) + 1) / 4.0) * 1000.0);
}

void Hedging::record_first_byte(uint64_t ns) {
  histogram_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  const uint64_t n = samples_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n % kDecayEvery == 0) {
    for (auto& count : histogram_) count.store(count.load(std::memory_order_relaxed) / 2, std::memory_order_relaxed);
  }
}

uint64_t Hedging::threshold_ns() const {
  if (!options_.hedge || samples_.load(std::memory_order_relaxed) < kMinSamples) return 0;
  uint64_t total = 0;
  for (const auto& count : histogram_) total += count.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const uint64_t rank = total - total / 20;  // the p95
  uint64_t seen = 0;
  size_t bucket = 0;
  for (; bucket < kBuckets; ++bucket) {
    seen += histogram_[bucket].load(std::memory_order_relaxed);
    if (seen >= rank) break;
  }
  return std::max<uint64_t>(bucket_upper_ns(bucket), uint64_t{options_.hedge_min_ms} * 1'000'000);
}

bool Hedging::take_budget() {
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
