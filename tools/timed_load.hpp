// timed_load: runs one Plan through a Store the way an application would (items consumed in plan order, each
// view dropped as soon as it is used) and measures it: wall time and process CPU time from the fetch call to the
// last item, plus the engine's counters for exactly this load. The table and JSON renderings of a result live
// here too, so `load` and `demo` report loads identically.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "ringfetch/ringfetch.hpp"

namespace ringfetch::cli {

struct LoadResult {
  std::string label;
  Stats stats;              // engine counters of this load alone (reset before it)
  double seconds = 0;       // fetch() called -> last item consumed
  double cpu_seconds = 0;   // user + system CPU of the whole process over the same interval

  uint64_t over_fetch_bytes() const { return stats.bytes_fetched - stats.bytes_requested; }
  double gbps() const;
  double cpu_seconds_per_gb() const;
};

using ItemVisitor = std::function<void(const ItemView&)>;

// Fetches `plan` through `store` and consumes every item. `visit`, when set, sees each item before it is
// dropped (its time is part of the measurement). Resets the engine's stats first. Throws ringfetch::Error for
// a failed item.
LoadResult timed_load(Store& store, const Plan& plan, std::string label, const ItemVisitor& visit = {});

// One row per result, with a header line.
void print_load_table(std::FILE* out, std::span<const LoadResult> results);

// items, bytes_requested, bytes_fetched, bytes_copied_user, requests, seconds, gbps, cpu_seconds, backend.
nlohmann::json load_json(const LoadResult& result);

}  // namespace ringfetch::cli
