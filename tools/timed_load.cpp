// timed_load implementation. CPU time comes from getrusage(RUSAGE_SELF), so the engine threads' work (and the
// kernel's, for io_uring reads done inline) is counted along with the consumer's.
#include "timed_load.hpp"

#include <sys/resource.h>

#include <chrono>

#include "byte_units.hpp"
#include "progress_bar.hpp"

namespace ringfetch::cli {
namespace {

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

uint64_t plan_bytes(const Plan& plan) {
  uint64_t total = 0;
  for (const PlanItem& item : plan.items()) total += item.length;
  return total;
}

}  // namespace

double LoadResult::gbps() const {
  return seconds > 0 ? static_cast<double>(stats.bytes_requested) / seconds / kBytesPerGB : 0.0;
}

double LoadResult::cpu_seconds_per_gb() const {
  return stats.bytes_requested > 0 ? cpu_seconds / (static_cast<double>(stats.bytes_requested) / kBytesPerGB) : 0.0;
}

LoadResult timed_load(Store& store, const Plan& plan, std::string label, const ItemVisitor& visit) {
  Engine& engine = store.engine();
  engine.reset_stats();
  ProgressBar progress(plan_bytes(plan));
  uint64_t done_bytes = 0;

  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = process_cpu_seconds();
  {
    FetchBatch batch = store.fetch(plan);
    while (std::optional<ItemView> item = batch.next()) {
      if (visit) visit(*item);
      done_bytes += item->size();
      progress.update(done_bytes);
    }
  }
  LoadResult result;
  result.cpu_seconds = process_cpu_seconds() - cpu_start;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.label = std::move(label);
  result.stats = engine.stats();
  return result;
}

namespace {

// Per-GB figures of a load this small are start-up costs divided by almost nothing (a 10-byte load printed
// 455700 CPU s/GB); the table shows "-" for them instead.
constexpr uint64_t kMinBytesForRates = uint64_t{1} << 20;

std::string rate_text(const LoadResult& r, double value, int decimals) {
  if (r.stats.bytes_requested < kMinBytesForRates) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace

void print_load_table(std::FILE* out, std::span<const LoadResult> results) {
  std::fprintf(out, "%-16s %8s %11s %9s %11s %8s %9s %12s\n", "load", "items", "bytes", "requests", "over-fetch",
               "GB/s", "CPU s/GB", "user copies");
  for (const LoadResult& r : results) {
    std::fprintf(out, "%-16s %8llu %11s %9llu %11s %8s %9s %12s\n", r.label.c_str(),
                 static_cast<unsigned long long>(r.stats.items), human_bytes(r.stats.bytes_requested).c_str(),
                 static_cast<unsigned long long>(r.stats.requests), human_bytes(r.over_fetch_bytes()).c_str(),
                 rate_text(r, r.gbps(), 2).c_str(), rate_text(r, r.cpu_seconds_per_gb(), 3).c_str(),
                 human_bytes(r.stats.bytes_copied_user).c_str());
  }
}

nlohmann::json load_json(const LoadResult& r) {
  return nlohmann::json{
      {"items", r.stats.items},
      {"bytes_requested", r.stats.bytes_requested},
      {"bytes_fetched", r.stats.bytes_fetched},
      {"bytes_copied_user", r.stats.bytes_copied_user},
      {"requests", r.stats.requests},
      {"seconds", r.seconds},
      {"gbps", r.gbps()},
      {"cpu_seconds", r.cpu_seconds},
      {"backend", r.stats.backend},
  };
}

}  // namespace ringfetch::cli
