// Command line of ringfetch_bench. Defaults are the full run (5 repetitions, ~3.5 minutes on the 2-core dev VM);
// --quick is one repetition of smaller workloads (< 2 minutes). Filters (--workloads, --contenders, --protocols,
// --conns) narrow a run down, e.g. to one cell under a profiler.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ringfetch::bench {

struct BenchOptions {
  unsigned reps = 5;
  bool quick = false;
  std::string json_file;
  std::string plot_file;
  std::filesystem::path data_dir;
  int client_cpu = 0;
  int server_cpu = 1;
  std::string sched = "fifo";  // client and nginx: fifo, nice (-20) or normal
  uint64_t whole_bytes = 1ull << 30;
  uint64_t checkpoint_bytes = 2ull << 30;
  size_t small_reads = 20'000;
  std::vector<unsigned> whole_connections = {1, 4, 8, 16};
  unsigned checkpoint_connections = 8;
  std::vector<unsigned> small_connections = {1, 16};
  // latency workload: the object the FaultServer holds in memory, its first-byte delay, the connections.
  uint64_t latency_bytes = 256ull << 20;
  uint64_t latency_ms = 20;
  unsigned latency_connections = 8;
  // gap: the latency workload's items (and connections) at each of these first-byte delays, one FaultServer each.
  std::vector<uint64_t> gap_delays_ms = {0, 5, 20, 50};
  // straggler: parts of a small object, one request each, against a FaultServer whose every N-th answer is late.
  uint64_t straggler_parts = 200;
  uint64_t straggler_part_bytes = 64 << 10;
  uint64_t straggler_every = 33;
  uint64_t straggler_ms = 500;       // extra first-byte delay of a straggler
  uint64_t straggler_base_ms = 0;    // first-byte delay of every answer
  unsigned straggler_connections = 8;
  // fill: a whole object written into fresh caller memory every repetition.
  uint64_t fill_bytes = 1ull << 30;
  unsigned fill_connections = 8;
  // cold: fresh processes; the first-byte child reads this much, the whole-load child the fill object.
  uint64_t cold_first_bytes = 4096;
  // Empty: everything.
  std::set<std::string> workloads;   // whole, checkpoint, small, latency, fill, cold, gap, straggler
  // ringfetch, ringfetch-1fetch, ringfetch-nohedge, uring, raw, curl, curl-default, curl-naive; "ringfetch" also
  // keeps the gap sweep's contenders (gap=0 ... gap=auto)
  std::set<std::string> contenders;
  std::set<std::string> protocols;   // http, https
  std::set<unsigned> connections;
  std::string command_line;          // as given, for the report

  bool wants_workload(const std::string& name) const { return workloads.empty() || workloads.count(name) > 0; }
  bool wants_contender(const std::string& name) const { return contenders.empty() || contenders.count(name) > 0; }
  bool wants_protocol(const std::string& name) const { return protocols.empty() || protocols.count(name) > 0; }
  bool wants_connections(unsigned n) const { return connections.empty() || connections.count(n) > 0; }
};

// Parses argv. Returns std::nullopt after printing usage (--help) or an error to stderr (*exit_code set).
std::optional<BenchOptions> parse_options(int argc, char** argv, int* exit_code);

}  // namespace ringfetch::bench
