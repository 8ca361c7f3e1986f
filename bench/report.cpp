// Summaries, targets, tables, JSON and plot of the head-to-head harness (see report.hpp).
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "workloads.hpp"

namespace ringfetch::bench {
namespace {

constexpr double kBytesPerGB = 1e9;
constexpr double kMicrosPerSecond = 1e6;
constexpr double kNanosPerMicro = 1e3;
constexpr double kP50 = 0.50;
constexpr double kP99 = 0.99;
// Targets of the issue.
constexpr double kRawCpuBound = 1.10;          // ringfetch CPU/GB <= 1.10x raw
constexpr double kCurlCpuBound = 0.60;         // ringfetch CPU/GB <= 0.60x tuned libcurl (whole, 8-16 conns)
constexpr double kNaiveWallBound = 0.50;       // checkpoint partial: ringfetch wall <= 0.5x libcurl per item
constexpr double kLatencyWallBound = 0.50;     // latency partial: ringfetch wall <= 0.5x libcurl one-request-per-item
constexpr double kMillisPerSecond = 1e3;
constexpr double kSmallRateBound = 1.20;       // small 16 conns: req/s >= 1.2x libcurl
constexpr double kSmallCpuBound = 0.60;        // small 16 conns: CPU/request <= 0.6x libcurl
constexpr double kUringCpuBound = 1.10;        // whole http: ringfetch CPU/GB <= 1.10x the uring limit
constexpr double kSmallRawCpuBound = 1.10;     // small 16 conns: CPU/request <= 1.1x the raw client's
constexpr double kColdFirstByteBound = 1.50;   // cold start: ringfetch first byte <= 1.5x libcurl's
constexpr double kAdaptiveGapBound = 1.10;     // gap: adaptive max_gap's wall <= 1.10x the best fixed gap's
constexpr double kHedgedWallBound = 0.50;      // straggler: hedged wall <= 0.5x unhedged
constexpr double kHedgedExtraBound = 0.05;     // straggler: extra bytes (lost hedges + gaps) <= 5% of useful
constexpr double kPercent = 100;
constexpr unsigned kTargetWholeConns[] = {8, 16};
constexpr unsigned kTargetUringConns[] = {1, 8, 16};
constexpr unsigned kTargetSmallConns = 16;

template <typename F>
Spread spread(const std::vector<const RunResult*>& runs, F figure) {
  std::vector<double> values;
  for (const RunResult* r : runs) values.push_back(figure(*r));
  return spread_of(values);
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

// "1.23 [1.20-1.31]"
std::string with_range(const char* format, const Spread& s, bool range) {
  std::string text = fmt(format, s.median);
  if (range) text += " [" + fmt(format, s.min) + "-" + fmt(format, s.max) + "]";
  return text;
}

std::string bytes_text(uint64_t bytes) {
  if (bytes == 0) return "0";
  if (bytes < (1u << 20)) return fmt("%.1fK", static_cast<double>(bytes) / 1024);
  return fmt("%.1fM", static_cast<double>(bytes) / (1u << 20));
}

// A row of the figures of `contender` in `cell`, or nullptr when it did not run (or never succeeded).
const Summary* summary_of(const std::map<std::string, Summary>& cache, const CellReport& cell,
                          const std::string& contender) {
  auto it = cache.find(cell.label() + "/" + contender);
  return it == cache.end() || it->second.reps_ok == 0 ? nullptr : &it->second;
}

std::map<std::string, Summary> summarize_all(const std::vector<CellReport>& cells) {
  std::map<std::string, Summary> out;
  for (const CellReport& cell : cells)
    for (const ContenderRuns& c : cell.contenders) out[cell.label() + "/" + c.contender] = summarize(c);
  return out;
}

TargetCheck ratio_check(const std::string& name, const CellReport& cell, double ours, double theirs, double bound,
                        bool at_most) {
  TargetCheck t{name, cell.label()};
  t.available = theirs > 0 && ours > 0;
  t.ratio = t.available ? ours / theirs : 0;
  t.bound_text = std::string(at_most ? "<= " : ">= ") + fmt("%.2f", bound);
  t.met = t.available && (at_most ? t.ratio <= bound : t.ratio >= bound);
  return t;
}

void whole_targets(const CellReport& cell, const std::map<std::string, Summary>& s, std::vector<TargetCheck>* out) {
  const Summary* rf = summary_of(s, cell, "ringfetch");
  const Summary* raw = summary_of(s, cell, "raw");
  const Summary* curl = summary_of(s, cell, "curl");
  const Summary* uring = summary_of(s, cell, "uring");
  if (rf == nullptr) return;
  const bool https = cell.protocol == Protocol::kHttps;
  if (raw != nullptr) {
    out->push_back(ratio_check(https ? "HTTPS CPU/GB vs raw OpenSSL" : "CPU/GB vs raw", cell,
                               rf->cpu_s_per_gb.median, raw->cpu_s_per_gb.median, kRawCpuBound, true));
  }
  if (uring != nullptr && std::find(std::begin(kTargetUringConns), std::end(kTargetUringConns), cell.connections) !=
                              std::end(kTargetUringConns)) {
    out->push_back(ratio_check("CPU/GB vs uring limit", cell, rf->cpu_s_per_gb.median, uring->cpu_s_per_gb.median,
                               kUringCpuBound, true));
  }
  if (https || curl == nullptr) return;
  const bool in_scope = std::find(std::begin(kTargetWholeConns), std::end(kTargetWholeConns), cell.connections) !=
                        std::end(kTargetWholeConns);
  if (!in_scope) return;
  out->push_back(ratio_check("CPU/GB vs tuned libcurl", cell, rf->cpu_s_per_gb.median, curl->cpu_s_per_gb.median,
                             kCurlCpuBound, true));
  out->push_back(ratio_check("wall GB/s vs tuned libcurl", cell, rf->gb_per_s.median, curl->gb_per_s.median, 1.0,
                             false));
}

void checkpoint_targets(const CellReport& cell, const std::map<std::string, Summary>& s,
                        std::vector<TargetCheck>* out) {
  const Summary* rf = summary_of(s, cell, "ringfetch");
  const Summary* naive = summary_of(s, cell, "curl-naive");
  if (cell.variant != "partial" || rf == nullptr || naive == nullptr) return;
  // Wall time of the same useful bytes: the inverse of GB/s.
  out->push_back(ratio_check("wall time vs libcurl one-request-per-item", cell, 1 / rf->gb_per_s.median,
                             1 / naive->gb_per_s.median, kNaiveWallBound, true));
}

// Against a server with first-byte latency, where one request per item pays that latency per item.
void latency_targets(const CellReport& cell, const std::map<std::string, Summary>& s, std::vector<TargetCheck>* out) {
  const Summary* rf = summary_of(s, cell, "ringfetch");
  const Summary* naive = summary_of(s, cell, "curl-naive");
  if (rf == nullptr || naive == nullptr) return;
  out->push_back(ratio_check("wall time vs libcurl one-request-per-item", cell, rf->wall_s.median,
                             naive->wall_s.median, kLatencyWallBound, true));
}

// A fresh process's time to its first bytes: ringfetch sets up an engine (threads, rings) libcurl does not have.
void cold_targets(const CellReport& cell, const std::map<std::string, Summary>& s, std::vector<TargetCheck>* out) {
  const Summary* rf = summary_of(s, cell, "ringfetch");
  const Summary* curl = summary_of(s, cell, "curl");
  if (cell.variant != "first" || rf == nullptr || curl == nullptr) return;
  out->push_back(ratio_check("cold start: first byte vs libcurl", cell, rf->wall_s.median, curl->wall_s.median,
                             kColdFirstByteBound, true));
}

// The adaptive gap against the best of the fixed ones, at one first-byte delay.
void gap_targets(const CellReport& cell, const std::map<std::string, Summary>& s, std::vector<TargetCheck>* out) {
  const Summary* adaptive = summary_of(s, cell, kAdaptiveGap);
  const Summary* best = nullptr;
  for (const FixedGap& g : kFixedGaps) {
    const Summary* fixed = summary_of(s, cell, g.contender);
    if (fixed != nullptr && (best == nullptr || fixed->wall_s.median < best->wall_s.median)) best = fixed;
  }
  if (adaptive == nullptr || best == nullptr) return;
  out->push_back(ratio_check("wall time, adaptive gap vs best fixed gap", cell, adaptive->wall_s.median,
                             best->wall_s.median, kAdaptiveGapBound, true));
}

// Hedged GETs against stragglers: the wall time they save, and the bytes they cost.
void straggler_targets(const CellReport& cell, const std::map<std::string, Summary>& s,
                       std::vector<TargetCheck>* out) {
  const Summary* hedged = summary_of(s, cell, "ringfetch");
  const Summary* unhedged = summary_of(s, cell, "ringfetch-nohedge");
  if (hedged == nullptr) return;
  if (unhedged != nullptr) {
    out->push_back(ratio_check("wall time, hedged vs unhedged", cell, hedged->wall_s.median,
                               unhedged->wall_s.median, kHedgedWallBound, true));
  }
  TargetCheck t{"extra bytes / useful bytes, hedged", cell.label()};
  t.available = hedged->useful > 0;
  t.ratio = t.available ? hedged->extra_bytes.median / static_cast<double>(hedged->useful) : 0;
  t.bound_text = "<= " + fmt("%.2f", kHedgedExtraBound);
  t.met = t.available && t.ratio <= kHedgedExtraBound;
  out->push_back(t);
}

void small_targets(const CellReport& cell, const std::map<std::string, Summary>& s, std::vector<TargetCheck>* out) {
  const Summary* rf = summary_of(s, cell, "ringfetch");
  const Summary* curl = summary_of(s, cell, "curl");
  const Summary* raw = summary_of(s, cell, "raw");
  if (cell.connections != kTargetSmallConns || rf == nullptr) return;
  if (raw != nullptr) {
    out->push_back(ratio_check("CPU/request vs raw", cell, rf->cpu_us_per_request.median,
                               raw->cpu_us_per_request.median, kSmallRawCpuBound, true));
  }
  if (curl == nullptr) return;
  out->push_back(ratio_check("req/s vs tuned libcurl", cell, rf->requests_per_s.median, curl->requests_per_s.median,
                             kSmallRateBound, false));
  out->push_back(ratio_check("CPU/request vs tuned libcurl", cell, rf->cpu_us_per_request.median,
                             curl->cpu_us_per_request.median, kSmallCpuBound, true));
  out->push_back(ratio_check("p99 latency vs tuned libcurl", cell, rf->p99_us.median, curl->p99_us.median, 1.0,
                             true));
}

void print_bulk_row(std::FILE* out, const CellReport& cell, const std::string& contender, const Summary& s,
                    bool ranges) {
  std::fprintf(out, "%-27s %-16s %-22s %-22s %6llu %9s %9s\n", cell.label().c_str(), contender.c_str(),
               with_range("%.2f", s.gb_per_s, ranges).c_str(), with_range("%.3f", s.cpu_s_per_gb, ranges).c_str(),
               static_cast<unsigned long long>(s.requests), bytes_text(s.over_fetch).c_str(),
               bytes_text(s.copied).c_str());
}

void print_latency_row(std::FILE* out, const CellReport& cell, const std::string& contender, const Summary& s,
                       bool ranges) {
  const auto ms = [](const Spread& v) { return Spread{v.median * kMillisPerSecond, v.min * kMillisPerSecond,
                                                      v.max * kMillisPerSecond}; };
  std::fprintf(out, "%-27s %-16s %-22s %-22s %6llu %9s %9s\n", cell.label().c_str(), contender.c_str(),
               with_range("%.1f", ms(s.wall_s), ranges).c_str(), with_range("%.1f", ms(s.cpu_s), ranges).c_str(),
               static_cast<unsigned long long>(s.requests), bytes_text(s.over_fetch).c_str(),
               bytes_text(s.copied).c_str());
}

void print_fill_row(std::FILE* out, const CellReport& cell, const std::string& contender, const Summary& s,
                    bool ranges) {
  std::fprintf(out, "%-27s %-16s %-22s %-22s %-22s %9s\n", cell.label().c_str(), contender.c_str(),
               with_range("%.2f", s.wall_s, ranges).c_str(), with_range("%.2f", s.gb_per_s, ranges).c_str(),
               with_range("%.3f", s.cpu_s_per_gb, ranges).c_str(), bytes_text(s.copied).c_str());
}

// Fill: its own table, because its wall time includes the first touch of fresh memory, unlike the bulk rows.
void print_fill_table(std::FILE* out, const std::vector<CellReport>& cells) {
  if (std::none_of(cells.begin(), cells.end(), [](const CellReport& c) { return c.is_fill(); })) return;
  std::fprintf(out, "\nFill the caller's memory (whole object into one fresh buffer per repetition: mapped before the "
                    "clock starts, not pre-faulted, no huge-page advice; its first touch - page faults, or the "
                    "pinning of a registration - is timed; median [min-max])\n");
  std::fprintf(out, "%-27s %-16s %-22s %-22s %-22s %9s\n", "cell", "contender", "wall s", "wall GB/s", "CPU s/GB",
               "copied");
  for (const CellReport& cell : cells) {
    if (!cell.is_fill()) continue;
    for (const ContenderRuns& c : cell.contenders) {
      const Summary s = summarize(c);
      if (s.reps_ok == 0) std::fprintf(out, "%-27s %-16s FAILED: %s\n", cell.label().c_str(), c.contender.c_str(),
                                       s.error.c_str());
      else print_fill_row(out, cell, c.contender, s, c.runs.size() > 1);
    }
  }
}

void print_cold_row(std::FILE* out, const CellReport& cell, const std::string& contender, const Summary& s,
                    bool ranges) {
  const auto ms = [](const Spread& v) { return Spread{v.median * kMillisPerSecond, v.min * kMillisPerSecond,
                                                      v.max * kMillisPerSecond}; };
  std::fprintf(out, "%-27s %-16s %-24s %-24s %-22s\n", cell.label().c_str(), contender.c_str(),
               with_range("%.1f", ms(s.wall_s), ranges).c_str(), with_range("%.1f", ms(s.exit_s), ranges).c_str(),
               with_range("%.1f", ms(s.cpu_s), ranges).c_str());
}

void print_cold_table(std::FILE* out, const std::vector<CellReport>& cells) {
  if (std::none_of(cells.begin(), cells.end(), [](const CellReport& c) { return c.is_cold(); })) return;
  std::fprintf(out, "\nCold start (a fresh process per repetition, timed from before posix_spawn; \"ready\" = the child "
                    "has the first item's bytes (first) or the whole object in fresh memory (whole); median [min-max])\n");
  std::fprintf(out, "%-27s %-16s %-24s %-24s %-22s\n", "cell", "contender", "ready ms", "exit ms", "child CPU ms");
  for (const CellReport& cell : cells) {
    if (!cell.is_cold()) continue;
    for (const ContenderRuns& c : cell.contenders) {
      const Summary s = summarize(c);
      if (s.reps_ok == 0) std::fprintf(out, "%-27s %-16s FAILED: %s\n", cell.label().c_str(), c.contender.c_str(),
                                       s.error.c_str());
      else print_cold_row(out, cell, c.contender, s, c.runs.size() > 1);
    }
  }
}

void print_small_row(std::FILE* out, const CellReport& cell, const std::string& contender, const Summary& s,
                     bool ranges) {
  std::fprintf(out, "%-17s %-16s %-22s %-20s %-18s %-20s %6llu %8s %5.1f\n", cell.label().c_str(), contender.c_str(),
               with_range("%.0f", s.requests_per_s, ranges).c_str(),
               with_range("%.1f", s.cpu_us_per_request, ranges).c_str(), with_range("%.0f", s.p50_us, ranges).c_str(),
               with_range("%.0f", s.p99_us, ranges).c_str(), static_cast<unsigned long long>(s.requests),
               bytes_text(s.copied).c_str(), s.switches_per_request);
}

nlohmann::json spread_json(const Spread& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

nlohmann::json run_json(const RunResult& r) {
  nlohmann::json j = {{"ok", r.ok},
                      {"wall_s", r.wall_s},
                      {"cpu_user_s", r.user_s},
                      {"cpu_sys_s", r.sys_s},
                      {"exit_s", r.exit_s},
                      {"requests", r.requests},
                      {"bytes_useful", r.bytes_useful},
                      {"bytes_wire", r.bytes_wire},
                      {"bytes_copied_user", r.bytes_copied},
                      {"voluntary_switches", r.voluntary_switches},
                      {"involuntary_switches", r.involuntary_switches},
                      {"hedges_sent", r.hedges_sent},
                      {"hedges_won", r.hedges_won},
                      {"hedge_bytes_wasted", r.hedge_bytes_wasted},
                      {"extra_bytes", r.extra_bytes()},
                      {"max_gap", r.max_gap}};
  if (!r.error.empty()) j["error"] = r.error;
  if (!r.detail.empty()) j["detail"] = r.detail;
  if (!r.latency_ns.empty()) {
    std::vector<uint64_t> lat = r.latency_ns;
    j["latency_p50_us"] = static_cast<double>(quantile(lat, kP50)) / kNanosPerMicro;
    j["latency_p99_us"] = static_cast<double>(quantile(lat, kP99)) / kNanosPerMicro;
  }
  return j;
}

nlohmann::json summary_json(const Summary& s) {
  return {{"reps_ok", s.reps_ok},
          {"wall_s", spread_json(s.wall_s)},
          {"exit_s", spread_json(s.exit_s)},
          {"cpu_s", spread_json(s.cpu_s)},
          {"gb_per_s", spread_json(s.gb_per_s)},
          {"cpu_s_per_gb", spread_json(s.cpu_s_per_gb)},
          {"requests_per_s", spread_json(s.requests_per_s)},
          {"cpu_us_per_request", spread_json(s.cpu_us_per_request)},
          {"latency_p50_us", spread_json(s.p50_us)},
          {"latency_p99_us", spread_json(s.p99_us)},
          {"requests", s.requests},
          {"bytes_useful", s.useful},
          {"bytes_over_fetched", s.over_fetch},
          {"bytes_copied_user", s.copied},
          {"hedges_sent", spread_json(s.hedges_sent)},
          {"hedges_won", spread_json(s.hedges_won)},
          {"extra_bytes", spread_json(s.extra_bytes)},
          {"max_gap", spread_json(s.max_gap)},
          {"error", s.error}};
}

// Plot data: one row per cell, three columns (median, min, max) per contender; "NaN" where it did not run.
void write_plot_data(const std::string& path, const std::vector<const CellReport*>& cells,
                     const std::vector<std::string>& contenders, Spread Summary::*figure) {
  std::ofstream out(path);
  for (const CellReport* cell : cells) {
    out << '"' << cell->label() << '"';
    for (const std::string& c : contenders) {
      const ContenderRuns* runs = cell->find(c);
      const Summary s = runs != nullptr ? summarize(*runs) : Summary{};
      if (s.reps_ok == 0) {
        out << " NaN NaN NaN";
      } else {
        const Spread& v = s.*figure;
        out << ' ' << v.median << ' ' << v.min << ' ' << v.max;
      }
    }
    out << '\n';
  }
}

std::string histogram_plot(const std::string& data, const std::vector<std::string>& contenders,
                           const std::string& title, const std::string& ylabel) {
  std::string s = "set title '" + title + "'\nset ylabel '" + ylabel + "'\nplot ";
  for (size_t i = 0; i < contenders.size(); ++i) {
    const size_t col = 2 + 3 * i;
    s += (i ? ", '' " : "'" + data + "' ") + std::string("using ") + std::to_string(col) + ":" +
         std::to_string(col + 1) + ":" + std::to_string(col + 2) + (i == 0 ? ":xtic(1)" : "") + " title '" +
         contenders[i] + "'";
  }
  return s + "\n";
}

}  // namespace

std::string CellReport::label() const {
  std::string text = workload;
  if (!variant.empty()) text += " " + variant;
  return text + " " + to_string(protocol) + " c=" + std::to_string(connections);
}

const ContenderRuns* CellReport::find(const std::string& contender) const {
  for (const ContenderRuns& c : contenders)
    if (c.contender == contender) return &c;
  return nullptr;
}

Summary summarize(const ContenderRuns& c) {
  Summary s;
  std::vector<const RunResult*> ok;
  for (const RunResult& r : c.runs) {
    if (r.ok) ok.push_back(&r);
    else if (s.error.empty()) s.error = r.error;
  }
  s.reps_ok = static_cast<unsigned>(ok.size());
  if (ok.empty()) return s;
  const RunResult& last = *ok.back();
  s.requests = last.requests;
  s.useful = last.bytes_useful;
  s.over_fetch = last.bytes_wire > last.bytes_useful ? last.bytes_wire - last.bytes_useful : 0;
  s.copied = last.bytes_copied;
  s.detail = last.detail;
  s.switches_per_request = static_cast<double>(last.voluntary_switches) / std::max<uint64_t>(1, last.requests);
  const auto gb = [](const RunResult& r) { return static_cast<double>(r.bytes_useful) / kBytesPerGB; };
  s.wall_s = spread(ok, [](const RunResult& r) { return r.wall_s; });
  s.exit_s = spread(ok, [](const RunResult& r) { return r.exit_s; });
  s.cpu_s = spread(ok, [](const RunResult& r) { return r.cpu_s(); });
  s.gb_per_s = spread(ok, [&](const RunResult& r) { return gb(r) / r.wall_s; });
  s.cpu_s_per_gb = spread(ok, [&](const RunResult& r) { return r.cpu_s() / gb(r); });
  s.requests_per_s = spread(ok, [](const RunResult& r) { return static_cast<double>(r.requests) / r.wall_s; });
  s.cpu_us_per_request = spread(ok, [](const RunResult& r) {
    return r.cpu_s() * kMicrosPerSecond / static_cast<double>(std::max<uint64_t>(1, r.requests));
  });
  const auto latency = [](const RunResult& r, double q) {
    std::vector<uint64_t> lat = r.latency_ns;
    return static_cast<double>(quantile(lat, q)) / kNanosPerMicro;
  };
  s.p50_us = spread(ok, [&](const RunResult& r) { return latency(r, kP50); });
  s.p99_us = spread(ok, [&](const RunResult& r) { return latency(r, kP99); });
  s.hedges_sent = spread(ok, [](const RunResult& r) { return static_cast<double>(r.hedges_sent); });
  s.hedges_won = spread(ok, [](const RunResult& r) { return static_cast<double>(r.hedges_won); });
  s.extra_bytes = spread(ok, [](const RunResult& r) { return static_cast<double>(r.extra_bytes()); });
  s.max_gap = spread(ok, [](const RunResult& r) { return static_cast<double>(r.max_gap); });
  return s;
}

std::vector<TargetCheck> check_targets(const std::vector<CellReport>& cells) {
  const std::map<std::string, Summary> s = summarize_all(cells);
  std::vector<TargetCheck> out;
  for (const CellReport& cell : cells) {
    if (cell.workload == "whole") whole_targets(cell, s, &out);
    else if (cell.workload == "checkpoint") checkpoint_targets(cell, s, &out);
    else if (cell.workload == "small") small_targets(cell, s, &out);
    else if (cell.workload == "latency") latency_targets(cell, s, &out);
    else if (cell.workload == "cold") cold_targets(cell, s, &out);
    else if (cell.is_gap()) gap_targets(cell, s, &out);
    else if (cell.is_straggler()) straggler_targets(cell, s, &out);
  }
  return out;
}

namespace {

void print_bulk_table(std::FILE* out, const std::vector<CellReport>& cells) {
  const auto bulk = [](const CellReport& c) {
    return !c.is_small() && !c.is_latency() && !c.is_fill() && !c.is_cold() && !c.is_gap() && !c.is_straggler();
  };
  if (std::none_of(cells.begin(), cells.end(), bulk)) return;
  std::fprintf(out, "\nBulk workloads (median [min-max] over repetitions; GB = 1e9 useful bytes; CPU = user+sys of "
                    "the client process)\n");
  std::fprintf(out, "%-27s %-16s %-22s %-22s %6s %9s %9s\n", "cell", "contender", "wall GB/s", "CPU s/GB", "req",
               "overfetch", "copied");
  for (const CellReport& cell : cells) {
    if (!bulk(cell)) continue;
    for (const ContenderRuns& c : cell.contenders) {
      const Summary s = summarize(c);
      if (s.reps_ok == 0) std::fprintf(out, "%-27s %-16s FAILED: %s\n", cell.label().c_str(), c.contender.c_str(),
                                       s.error.c_str());
      else print_bulk_row(out, cell, c.contender, s, c.runs.size() > 1);
    }
  }
  if (std::any_of(cells.begin(), cells.end(), [](const CellReport& c) { return c.protocol == Protocol::kHttps; }))
    std::fprintf(out, "(uring, the io_uring limit, speaks plain HTTP only: no row in https cells)\n");
}

void print_latency_table(std::FILE* out, const std::vector<CellReport>& cells) {
  if (std::none_of(cells.begin(), cells.end(), [](const CellReport& c) { return c.is_latency(); })) return;
  std::fprintf(out, "\nFirst-byte latency (FaultServer delays every response; median [min-max] over repetitions; "
                    "CPU = user+sys of the client process)\n");
  std::fprintf(out, "%-27s %-16s %-22s %-22s %6s %9s %9s\n", "cell", "contender", "wall ms", "CPU ms", "req",
               "overfetch", "copied");
  for (const CellReport& cell : cells) {
    if (!cell.is_latency()) continue;
    for (const ContenderRuns& c : cell.contenders) {
      const Summary s = summarize(c);
      if (s.reps_ok == 0) std::fprintf(out, "%-27s %-16s FAILED: %s\n", cell.label().c_str(), c.contender.c_str(),
                                       s.error.c_str());
      else print_latency_row(out, cell, c.contender, s, c.runs.size() > 1);
    }
  }
}

// One row per first-byte delay, one column per gap: median wall ms; then what the adaptive gap chose.
void print_gap_table(std::FILE* out, const std::vector<CellReport>& cells) {
  if (std::none_of(cells.begin(), cells.end(), [](const CellReport& c) { return c.is_gap(); })) return;
  size_t reps = 0;
  for (const CellReport& cell : cells)
    if (cell.is_gap())
      for (const ContenderRuns& c : cell.contenders) reps = std::max(reps, c.runs.size());
  std::vector<std::string> gaps;
  for (const FixedGap& g : kFixedGaps) gaps.emplace_back(g.contender);
  gaps.emplace_back(kAdaptiveGap);
  std::fprintf(out, "\nGap sweep (the latency workload's items from a FaultServer per first-byte delay; wall ms, median "
                    "of %zu repetitions; every gap has a Store of its own, kept across repetitions and warmed by one "
                    "untimed fetch; gap=auto leaves max_gap unset, \"chose\" is the Stats::max_gap it planned with)\n",
               reps);
  std::fprintf(out, "%-22s", "cell");
  for (const std::string& g : gaps) std::fprintf(out, " %9s", g.c_str());
  std::fprintf(out, "  %-17s %9s %9s %6s\n", "best fixed", "chose", "auto req", "ratio");
  for (const CellReport& cell : cells) {
    if (!cell.is_gap()) continue;
    std::fprintf(out, "%-22s", cell.label().c_str());
    std::string best_name;
    double best = 0;
    for (const std::string& g : gaps) {
      const ContenderRuns* runs = cell.find(g);
      const Summary s = runs != nullptr ? summarize(*runs) : Summary{};
      if (s.reps_ok == 0) {
        std::fprintf(out, " %9s", runs != nullptr ? "FAILED" : "-");
        continue;
      }
      const double ms = s.wall_s.median * kMillisPerSecond;
      std::fprintf(out, " %9.1f", ms);
      if (g != kAdaptiveGap && (best_name.empty() || ms < best)) {
        best_name = g;
        best = ms;
      }
    }
    const ContenderRuns* adaptive = cell.find(kAdaptiveGap);
    const Summary a = adaptive != nullptr ? summarize(*adaptive) : Summary{};
    const std::string best_text = best_name.empty() ? "-" : best_name + " " + fmt("%.1f", best);
    if (a.reps_ok == 0 || best_name.empty()) {
      std::fprintf(out, "  %-17s\n", best_text.c_str());
      continue;
    }
    std::fprintf(out, "  %-17s %9s %9llu %6.2f\n", best_text.c_str(),
                 bytes_text(static_cast<uint64_t>(a.max_gap.median)).c_str(),
                 static_cast<unsigned long long>(a.requests), a.wall_s.median * kMillisPerSecond / best);
  }
  std::fprintf(out, "wall ms min-max over the repetitions\n");
  for (const CellReport& cell : cells) {
    if (!cell.is_gap()) continue;
    std::fprintf(out, "%-22s", cell.label().c_str());
    for (const std::string& g : gaps) {
      const ContenderRuns* runs = cell.find(g);
      const Summary s = runs != nullptr ? summarize(*runs) : Summary{};
      const std::string text = s.reps_ok == 0 ? "-"
                                              : fmt("%.0f", s.wall_s.min * kMillisPerSecond) + "-" +
                                                    fmt("%.0f", s.wall_s.max * kMillisPerSecond);
      std::fprintf(out, " %9s", text.c_str());
    }
    std::fprintf(out, "\n");
  }
  std::fprintf(out, "requests / over-fetched bytes per gap (last repetition)\n");
  for (const CellReport& cell : cells) {
    if (!cell.is_gap()) continue;
    std::fprintf(out, "%-22s", cell.label().c_str());
    for (const std::string& g : gaps) {
      const ContenderRuns* runs = cell.find(g);
      const Summary s = runs != nullptr ? summarize(*runs) : Summary{};
      const std::string text =
          s.reps_ok == 0 ? "-" : std::to_string(s.requests) + "/" + bytes_text(s.over_fetch);
      std::fprintf(out, " %9s", text.c_str());
    }
    std::fprintf(out, "\n");
  }
}

// Hedged GETs against stragglers. Extra requests: hedges sent, over the requests the plan made. Extra bytes: the
// answers of the attempts that lost (hedge_bytes_wasted) plus body bytes beyond the useful ones.
void print_straggler_table(std::FILE* out, const std::vector<CellReport>& cells) {
  if (std::none_of(cells.begin(), cells.end(), [](const CellReport& c) { return c.is_straggler(); })) return;
  std::fprintf(out, "\nStragglers (FaultServer: every N-th answer late; hedged GETs on (ringfetch) and off "
                    "(ringfetch-nohedge); fresh: a new Store per run, warm: one Store kept across runs, warmed by an "
                    "untimed fetch; median [min-max] over repetitions)\n");
  std::fprintf(out, "%-26s %-18s %-24s %6s %11s %10s %10s %18s\n", "cell", "contender", "wall ms", "req",
               "hedges sent", "hedges won", "extra req", "extra bytes");
  for (const CellReport& cell : cells) {
    if (!cell.is_straggler()) continue;
    for (const ContenderRuns& c : cell.contenders) {
      const Summary s = summarize(c);
      if (s.reps_ok == 0) {
        std::fprintf(out, "%-26s %-18s FAILED: %s\n", cell.label().c_str(), c.contender.c_str(), s.error.c_str());
        continue;
      }
      const Spread ms{s.wall_s.median * kMillisPerSecond, s.wall_s.min * kMillisPerSecond,
                      s.wall_s.max * kMillisPerSecond};
      const double requests = static_cast<double>(std::max<uint64_t>(1, s.requests));
      const double useful = static_cast<double>(std::max<uint64_t>(1, s.useful));
      const std::string extra_bytes = bytes_text(static_cast<uint64_t>(s.extra_bytes.median)) + " (" +
                                      fmt("%.2f", s.extra_bytes.median / useful * kPercent) + "%)";
      std::fprintf(out, "%-26s %-18s %-24s %6llu %11.0f %10.0f %9.1f%% %18s\n", cell.label().c_str(),
                   c.contender.c_str(), with_range("%.1f", ms, c.runs.size() > 1).c_str(),
                   static_cast<unsigned long long>(s.requests), s.hedges_sent.median, s.hedges_won.median,
                   s.hedges_sent.median / requests * kPercent, extra_bytes.c_str());
    }
  }
}

void print_small_table(std::FILE* out, const std::vector<CellReport>& cells) {
  if (std::none_of(cells.begin(), cells.end(), [](const CellReport& c) { return c.is_small(); })) return;
  std::fprintf(out, "\nSmall reads (4 KiB each, no coalescing; latency = request issued -> its bytes delivered)\n");
  std::fprintf(out, "%-17s %-16s %-22s %-20s %-18s %-20s %6s %8s %5s\n", "cell", "contender", "req/s",
               "CPU us/req", "p50 us", "p99 us", "req", "copied", "csw/r");
  for (const CellReport& cell : cells) {
    if (!cell.is_small()) continue;
    for (const ContenderRuns& c : cell.contenders) {
      const Summary s = summarize(c);
      if (s.reps_ok == 0) std::fprintf(out, "%-17s %-16s FAILED: %s\n", cell.label().c_str(), c.contender.c_str(),
                                       s.error.c_str());
      else print_small_row(out, cell, c.contender, s, c.runs.size() > 1);
    }
  }
}

}  // namespace

void print_tables(std::FILE* out, const std::vector<CellReport>& cells) {
  print_bulk_table(out, cells);
  print_latency_table(out, cells);
  print_gap_table(out, cells);
  print_straggler_table(out, cells);
  print_fill_table(out, cells);
  print_cold_table(out, cells);
  print_small_table(out, cells);
}

void print_targets(std::FILE* out, const std::vector<TargetCheck>& targets) {
  std::fprintf(out, "\nTargets (ratios of medians, ringfetch / reference)\n");
  for (const TargetCheck& t : targets) {
    std::fprintf(out, "  %-4s %-45s %-27s ratio %5.2f (want %s)\n", t.available ? (t.met ? "MET" : "MISS") : "n/a",
                 t.name.c_str(), t.cell.c_str(), t.ratio, t.bound_text.c_str());
  }
}

void write_json(const std::string& path, const Facts& facts, const BenchOptions& options,
                const std::vector<CellReport>& cells, const std::vector<TargetCheck>& targets) {
  nlohmann::json j;
  j["facts"] = facts;
  j["options"] = {{"reps", options.reps},
                  {"quick", options.quick},
                  {"whole_bytes", options.whole_bytes},
                  {"checkpoint_bytes", options.checkpoint_bytes},
                  {"small_reads", options.small_reads},
                  {"latency_bytes", options.latency_bytes},
                  {"latency_ms", options.latency_ms},
                  {"gap_delays_ms", options.gap_delays_ms},
                  {"straggler_parts", options.straggler_parts},
                  {"straggler_part_bytes", options.straggler_part_bytes},
                  {"straggler_every", options.straggler_every},
                  {"straggler_ms", options.straggler_ms},
                  {"straggler_base_ms", options.straggler_base_ms},
                  {"straggler_connections", options.straggler_connections},
                  {"fill_bytes", options.fill_bytes},
                  {"fill_connections", options.fill_connections},
                  {"cold_first_bytes", options.cold_first_bytes},
                  {"client_cpu", options.client_cpu},
                  {"server_cpu", options.server_cpu},
                  {"command", options.command_line}};
  for (const CellReport& cell : cells) {
    nlohmann::json jc = {{"cell", cell.label()},
                         {"workload", cell.workload},
                         {"variant", cell.variant},
                         {"protocol", to_string(cell.protocol)},
                         {"connections", cell.connections}};
    for (const ContenderRuns& c : cell.contenders) {
      nlohmann::json runs = nlohmann::json::array();
      for (const RunResult& r : c.runs) runs.push_back(run_json(r));
      jc["contenders"][c.contender] = {{"summary", summary_json(summarize(c))}, {"runs", runs}};
    }
    j["cells"].push_back(jc);
  }
  for (const TargetCheck& t : targets) {
    j["targets"].push_back({{"name", t.name}, {"cell", t.cell}, {"ratio", t.ratio}, {"want", t.bound_text},
                            {"available", t.available}, {"met", t.met}});
  }
  std::ofstream out(path);
  out << j.dump(2) << '\n';
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string draw_plot(const std::string& png_path, const std::vector<CellReport>& cells, const Facts& facts) {
  const std::vector<std::string> bulk_contenders = {"ringfetch", "uring", "raw", "curl", "curl-default",
                                                    "curl-naive"};
  const std::vector<std::string> small_contenders = {"ringfetch", "ringfetch-1fetch", "uring", "raw", "curl",
                                                     "curl-default"};
  std::vector<const CellReport*> bulk, small;
  for (const CellReport& c : cells)
    // cold start, the gap sweep and stragglers are in ms, not per GB: tables only
    if (!c.is_cold() && !c.is_gap() && !c.is_straggler()) (c.is_small() ? small : bulk).push_back(&c);
  std::string dir_template = (std::filesystem::temp_directory_path() / "ringfetch-bench-plot-XXXXXX").string();
  if (mkdtemp(dir_template.data()) == nullptr) return "cannot create a temporary directory for the plot data";
  const std::filesystem::path dir = dir_template;
  const std::string cpu = (dir / "bulk_cpu.dat").string(), gbps = (dir / "bulk_gbps.dat").string();
  const std::string small_cpu = (dir / "small_cpu.dat").string(), small_rate = (dir / "small_rate.dat").string();
  write_plot_data(cpu, bulk, bulk_contenders, &Summary::cpu_s_per_gb);
  write_plot_data(gbps, bulk, bulk_contenders, &Summary::gb_per_s);
  write_plot_data(small_cpu, small, small_contenders, &Summary::cpu_us_per_request);
  write_plot_data(small_rate, small, small_contenders, &Summary::requests_per_s);

  const std::string script_path = (dir / "plot.gp").string();
  std::ofstream gp(script_path);
  gp << "set terminal pngcairo size 1800,1300 font 'sans,10'\nset output '" << png_path << "'\n"
     << "set datafile missing 'NaN'\nset style data histogram\nset style histogram errorbars gap 1 lw 1\n"
     << "set style fill solid 0.8 border -1\nset key outside right top vertical\nset grid ytics\nset yrange [0:*]\n"
     << "set xtics rotate by -30 noenhanced\nset bars front\n"
     << "set multiplot layout 2,2 title 'ringfetch vs libcurl vs raw on loopback nginx — " << facts.at("cpu")
     << ", " << facts.at("date") << "; client and nginx on one CPU each; bars = median, whiskers = min/max'\n"
     << histogram_plot(cpu, bulk_contenders, "Bulk: client CPU seconds per GB (lower is better)", "CPU s / GB")
     << histogram_plot(gbps, bulk_contenders, "Bulk: wall GB/s (higher is better)", "GB/s")
     << histogram_plot(small_cpu, small_contenders, "Small 4 KiB reads: client CPU us per request (lower is better)",
                       "CPU us / request")
     << histogram_plot(small_rate, small_contenders, "Small 4 KiB reads: requests/s (higher is better)", "req/s")
     << "unset multiplot\n";
  gp.close();
  const std::string command = "gnuplot '" + script_path + "' 2>&1";
  const int rc = std::system(command.c_str());
  if (rc != 0) return "gnuplot exited with status " + std::to_string(rc) + " (script and data kept in " + dir.string() + ")";
  std::filesystem::remove_all(dir);
  return {};
}

}  // namespace ringfetch::bench
