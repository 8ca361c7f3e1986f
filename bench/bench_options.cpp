// Command-line parsing for ringfetch_bench (see bench_options.hpp).
#include "bench_options.hpp"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace ringfetch::bench {
namespace {

constexpr const char* kUsage = R"(usage: ringfetch_bench [options]
Starts nginx on loopback, writes its data, and runs ringfetch, libcurl (tuned and default), a raw epoll/OpenSSL
client and a minimal io_uring client ("uring", the limit; plain HTTP only) on the same requests, interleaved and repeated. Prints a table; CPU seconds per GB (1 GB = 1e9 useful bytes)
is the headline. The latency workload is served by our FaultServer (a child process) with a first-byte delay
instead, where wall time is the headline. fill writes a whole object into a fresh, not pre-faulted buffer every
repetition (first touch timed); cold times fresh processes of this program to their first 4 KiB item and to a
whole fill-sized load (from before the spawn to the child's report and to its exit). gap sweeps ringfetch's
max_gap over the latency workload's items at several first-byte delays (fixed gaps and the adaptive one, left
unset; every gap keeps one Store, warmed by one untimed fetch, so the adaptive gap has measured something).
straggler fetches many small parts from a FaultServer whose every N-th answer is late, with hedged GETs on
(ringfetch) and off (ringfetch-nohedge).
  --reps N             repetitions of every cell (default 5; the gap workload's short cells run 3x as many)
  --quick              1 repetition; 256 MiB whole object over 1, 8 and 16 connections, 512 MiB checkpoint,
                       5000 small reads (the latency, gap, straggler, fill and cold workloads keep their sizes)
  --json FILE          write every figure as JSON
  --plot FILE.png      draw the figures with gnuplot
  --data-dir DIR       where the served objects are written and kept (default: <build dir>/bench-data)
  --client-cpu N       CPU for this process and its threads (default 0)
  --server-cpu N       CPU for nginx (default 1)
  --sched CLASS        scheduling of the client and nginx: fifo (SCHED_FIFO priority 10, default), nice
                       (nice -20) or normal; above-normal classes keep other work on a shared machine (builds)
                       from disturbing the runs
  --whole-mib N        size of the whole object (default 1024)
  --checkpoint-mib N   size of the checkpoint object (default 2048)
  --small-reads N      number of 4 KiB reads (default 20000)
  --latency-ms N       first-byte delay of the latency workload's server, per response (default 20; S3 has 20-50)
  --latency-mib N      size of the latency workload's object, held in that server's memory (default 256); the
                       gap workload uses the same object, items and connections
  --gap-delays LIST    comma list of first-byte delays in ms of the gap workload, one server each (default
                       0,5,20,50); its gaps are 0, 64K, 1M, 8M, 32M and auto
  --straggler-parts N  requests of the straggler workload: parts of one object, one request each (default 200)
  --straggler-kib N    size of each part (default 64)
  --straggler-every N  every N-th answer of its server is a straggler (default 33, 3%)
  --straggler-ms N     a straggler's extra first-byte delay (default 500)
  --straggler-base-ms N  first-byte delay of every answer of that server (default 0)
  --straggler-conns N  connections of the straggler workload (default 8)
  --fill-mib N         size of the fill workload's object and of the fresh buffer it fills (default 1024, also
                       with --quick: the first touch of fresh memory is what it measures)
  --fill-conns N       connections of the fill workload (default 8)
  --workloads LIST     comma list of whole,checkpoint,small,latency,fill,cold,gap,straggler
  --contenders LIST    comma list of ringfetch,ringfetch-1fetch,ringfetch-nohedge,uring,raw,curl,curl-default,
                       curl-naive (ringfetch keeps the gap sweep's gap=... contenders)
  --protocols LIST     comma list of http,https
  --conns LIST         comma list of connection counts to keep
)";

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kQuickWholeMiB = 256;
constexpr uint64_t kQuickCheckpointMiB = 512;
constexpr size_t kQuickSmallReads = 5000;

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

uint64_t number(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') throw std::invalid_argument(flag + " wants a number, got '" + text + "'");
  return v;
}

void apply_quick(BenchOptions* o) {
  o->reps = 1;
  o->whole_bytes = kQuickWholeMiB * kMiB;
  o->checkpoint_bytes = kQuickCheckpointMiB * kMiB;
  o->small_reads = kQuickSmallReads;
  o->whole_connections = {1, 8, 16};
}

// Applies one flag that takes a value.
void apply(BenchOptions* o, const std::string& flag, const std::string& value) {
  if (flag == "--reps") o->reps = static_cast<unsigned>(number(flag, value));
  else if (flag == "--json") o->json_file = value;
  else if (flag == "--plot") o->plot_file = value;
  else if (flag == "--data-dir") o->data_dir = value;
  else if (flag == "--client-cpu") o->client_cpu = static_cast<int>(number(flag, value));
  else if (flag == "--server-cpu") o->server_cpu = static_cast<int>(number(flag, value));
  else if (flag == "--sched") o->sched = value;
  else if (flag == "--whole-mib") o->whole_bytes = number(flag, value) * kMiB;
  else if (flag == "--checkpoint-mib") o->checkpoint_bytes = number(flag, value) * kMiB;
  else if (flag == "--small-reads") o->small_reads = number(flag, value);
  else if (flag == "--latency-ms") o->latency_ms = number(flag, value);
  else if (flag == "--latency-mib") o->latency_bytes = number(flag, value) * kMiB;
  else if (flag == "--gap-delays") {
    o->gap_delays_ms.clear();
    for (auto& s : split(value)) o->gap_delays_ms.push_back(number(flag, s));
  }
  else if (flag == "--straggler-parts") o->straggler_parts = number(flag, value);
  else if (flag == "--straggler-kib") o->straggler_part_bytes = number(flag, value) << 10;
  else if (flag == "--straggler-every") o->straggler_every = number(flag, value);
  else if (flag == "--straggler-ms") o->straggler_ms = number(flag, value);
  else if (flag == "--straggler-base-ms") o->straggler_base_ms = number(flag, value);
  else if (flag == "--straggler-conns") o->straggler_connections = static_cast<unsigned>(number(flag, value));
  else if (flag == "--fill-mib") o->fill_bytes = number(flag, value) * kMiB;
  else if (flag == "--fill-conns") o->fill_connections = static_cast<unsigned>(number(flag, value));
  else if (flag == "--workloads") for (auto& s : split(value)) o->workloads.insert(s);
  else if (flag == "--contenders") for (auto& s : split(value)) o->contenders.insert(s);
  else if (flag == "--protocols") for (auto& s : split(value)) o->protocols.insert(s);
  else if (flag == "--conns") for (auto& s : split(value)) o->connections.insert(static_cast<unsigned>(number(flag, s)));
  else throw std::invalid_argument("unknown option " + flag);
}

}  // namespace

std::optional<BenchOptions> parse_options(int argc, char** argv, int* exit_code) {
  BenchOptions o;
  o.data_dir = std::filesystem::path(RINGFETCH_TEST_BUILD_DIR) / "bench-data";
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
  try {
    // --quick first, so that explicit flags after or before it still win.
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--quick") o.quick = true;
    if (o.quick) apply_quick(&o);
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--quick") continue;
      if (flag == "--help" || flag == "-h") {
        std::fputs(kUsage, stdout);
        *exit_code = 0;
        return std::nullopt;
      }
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value (or is unknown)");
      apply(&o, flag, argv[++i]);
    }
    if (o.reps == 0) throw std::invalid_argument("--reps must be at least 1");
    if (o.latency_bytes == 0) throw std::invalid_argument("--latency-mib must be at least 1");
    if (o.gap_delays_ms.empty()) throw std::invalid_argument("--gap-delays wants at least one delay");
    if (o.straggler_parts == 0 || o.straggler_part_bytes == 0 || o.straggler_connections == 0)
      throw std::invalid_argument("--straggler-parts, --straggler-kib and --straggler-conns must be at least 1");
    if (o.fill_bytes == 0 || o.fill_connections == 0)
      throw std::invalid_argument("--fill-mib and --fill-conns must be at least 1");
    if (o.sched != "fifo" && o.sched != "nice" && o.sched != "normal")
      throw std::invalid_argument("--sched wants fifo, nice or normal");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringfetch_bench: %s\n%s", e.what(), kUsage);
    *exit_code = 2;
    return std::nullopt;
  }
  return o;
}

}  // namespace ringfetch::bench
