// Stopwatch, clock and quantiles (see measure.hpp).
#include "measure.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <ctime>

namespace ringfetch::bench {
namespace {

constexpr double kMicrosPerSecond = 1e6;
constexpr double kNanosPerSecond = 1e9;

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / kMicrosPerSecond; }

rusage self_usage() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage;
}

}  // namespace

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void Stopwatch::start() {
  const rusage usage = self_usage();
  user_start_s_ = seconds(usage.ru_utime);
  sys_start_s_ = seconds(usage.ru_stime);
  voluntary_start_ = usage.ru_nvcsw;
  involuntary_start_ = usage.ru_nivcsw;
  wall_start_ns_ = now_ns();
  running_ = true;
}

void Stopwatch::pause() {
  if (!running_) return;
  const uint64_t wall_end = now_ns();
  const rusage usage = self_usage();
  wall_s_ += static_cast<double>(wall_end - wall_start_ns_) / kNanosPerSecond;
  user_s_ += seconds(usage.ru_utime) - user_start_s_;
  sys_s_ += seconds(usage.ru_stime) - sys_start_s_;
  voluntary_ += static_cast<uint64_t>(usage.ru_nvcsw - voluntary_start_);
  involuntary_ += static_cast<uint64_t>(usage.ru_nivcsw - involuntary_start_);
  running_ = false;
}

void Stopwatch::report(RunResult* out) const {
  out->wall_s = wall_s_;
  out->user_s = user_s_;
  out->sys_s = sys_s_;
  out->voluntary_switches = voluntary_;
  out->involuntary_switches = involuntary_;
}

uint64_t quantile(std::vector<uint64_t>& values, double q) {
  if (values.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  const size_t index = std::min(values.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

Spread spread_of(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return Spread{median, values.front(), values.back()};
}

}  // namespace ringfetch::bench
