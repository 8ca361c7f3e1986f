// Results of the head-to-head harness and what is made of them: per cell (workload x protocol x connections) and
// contender, the runs of every repetition; their summary (median and min/max over repetitions); the targets of the
// issue, checked on the medians; the printed tables; the JSON file; the gnuplot figure.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench_options.hpp"
#include "bench_types.hpp"
#include "measure.hpp"

namespace ringfetch::bench {

struct ContenderRuns {
  std::string contender;  // ringfetch, ringfetch-1fetch, ringfetch-nohedge, uring, raw, curl, curl-default,
                          // curl-naive; gap=0 ... gap=auto in the gap sweep
  std::vector<RunResult> runs;
};

struct CellReport {
  std::string workload;  // whole, checkpoint, small, latency, fill, cold, gap, straggler
  std::string variant;   // full / partial for checkpoint, partial for latency, the first-byte delay for gap
                         // ("20ms"), fresh / warm (Store) for straggler, else ""
  Protocol protocol = Protocol::kHttp;
  unsigned connections = 1;
  std::vector<ContenderRuns> contenders;

  bool is_small() const { return workload == "small"; }
  bool is_latency() const { return workload == "latency"; }
  bool is_fill() const { return workload == "fill"; }
  bool is_cold() const { return workload == "cold"; }
  bool is_gap() const { return workload == "gap"; }
  bool is_straggler() const { return workload == "straggler"; }
  std::string label() const;  // "whole https c=8", "checkpoint partial http c=8"
  const ContenderRuns* find(const std::string& contender) const;
};

// Figures over the successful repetitions of one contender in one cell. GB = 1e9 useful (requested) bytes.
struct Summary {
  unsigned reps_ok = 0;
  std::string error;       // of the first failed repetition, if any
  Spread wall_s;
  Spread exit_s;           // cold start only
  Spread cpu_s;
  Spread gb_per_s;
  Spread cpu_s_per_gb;
  Spread requests_per_s;
  Spread cpu_us_per_request;
  Spread p50_us;
  Spread p99_us;
  uint64_t requests = 0;   // of the last successful repetition (identical in every one)
  uint64_t useful = 0;
  uint64_t over_fetch = 0; // body bytes received beyond the useful ones (coalesced gaps)
  uint64_t copied = 0;
  double switches_per_request = 0;  // voluntary context switches
  // ringfetch: hedged GETs, bytes beyond the useful ones (gaps + lost hedges), the max_gap the fetch planned with.
  Spread hedges_sent;
  Spread hedges_won;
  Spread extra_bytes;
  Spread max_gap;
  std::string detail;
};
Summary summarize(const ContenderRuns& runs);

struct TargetCheck {
  std::string name;
  std::string cell;
  double ratio = 0;   // ringfetch / reference (or the reverse for "at least" targets; see bound_text)
  std::string bound_text;
  bool available = false;
  bool met = false;
};
std::vector<TargetCheck> check_targets(const std::vector<CellReport>& cells);

void print_tables(std::FILE* out, const std::vector<CellReport>& cells);
void print_targets(std::FILE* out, const std::vector<TargetCheck>& targets);

using Facts = std::map<std::string, std::string>;  // machine and run facts (date, kernel, CPU, versions, pinning)

// Throws std::runtime_error when the file cannot be written.
void write_json(const std::string& path, const Facts& facts, const BenchOptions& options,
                const std::vector<CellReport>& cells, const std::vector<TargetCheck>& targets);
// Returns "" or why gnuplot failed.
std::string draw_plot(const std::string& png_path, const std::vector<CellReport>& cells, const Facts& facts);

}  // namespace ringfetch::bench
