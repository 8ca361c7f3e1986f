// Measuring a run: a stopwatch that accumulates wall time and this process's CPU time (getrusage RUSAGE_SELF,
// user + sys, all threads) over one or more timed sections, so that untimed work in the middle of a run (checking
// the fetched bytes) is left out; a monotonic clock; and percentiles of per-request latencies.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bench_types.hpp"

namespace ringfetch::bench {

uint64_t now_ns();

class Stopwatch {
 public:
  void start();
  void pause();
  void resume() { start(); }
  void stop() { pause(); }
  // Copies the accumulated figures into `out` (wall, user, sys, context switches).
  void report(RunResult* out) const;

 private:
  bool running_ = false;
  uint64_t wall_start_ns_ = 0;
  double user_start_s_ = 0;
  double sys_start_s_ = 0;
  long voluntary_start_ = 0;
  long involuntary_start_ = 0;
  double wall_s_ = 0;
  double user_s_ = 0;
  double sys_s_ = 0;
  uint64_t voluntary_ = 0;
  uint64_t involuntary_ = 0;
};

// The q-quantile (0 <= q <= 1, nearest rank) of `values`, which it sorts; 0 when empty.
uint64_t quantile(std::vector<uint64_t>& values, double q);

// Median, min and max of a set of figures (one per repetition).
struct Spread {
  double median = 0;
  double min = 0;
  double max = 0;
};
Spread spread_of(std::vector<double> values);

}  // namespace ringfetch::bench
