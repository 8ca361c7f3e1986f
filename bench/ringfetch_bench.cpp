// ringfetch_bench: the head-to-head harness. It writes its data, starts its own nginx on loopback (HTTP and HTTPS,
// a private self-signed CA), pins itself and nginx to one CPU each, and runs every contender — ringfetch through its
// public API, libcurl multi (tuned and default, plus one-request-per-item where the workload has items), a raw
// epoll/OpenSSL client, and "uring", a minimal io_uring client (plain HTTP, READ_FIXED into registered memory: the
// limit ringfetch's CPU per GB is held against) — on the same requests, interleaved (the contender order rotates
// every repetition) and repeated. Every destination is pre-faulted once and reused; ringfetch keeps one Engine, so
// its arena is faulted in once, and uring registers the shared destination once. Two workloads differ on purpose:
// fill writes a whole object into a fresh, never-touched buffer per repetition (the first touch is timed), and cold
// start times fresh processes of this program (--cold-start-child, see cold_start.hpp). The latency workload talks
// to our FaultServer instead (a child process on the server CPU, holding its object in memory and delaying every
// response's first byte, as an object store does). So do the gap sweep (one FaultServer per first-byte delay;
// ringfetch alone, with fixed max_gap values and with the adaptive one, each on a Store of its own kept across
// repetitions) and the straggler workload (a FaultServer whose every N-th answer is late; ringfetch with hedged GETs
// on and off). Prints the tables and the targets; optionally writes JSON and a gnuplot figure.
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <curl/curl.h>

#include "bench_options.hpp"
#include "cold_start.hpp"
#include "cpu_affinity.hpp"
#include "curl_client.hpp"
#include "destination_buffer.hpp"
#include "latency_server.hpp"
#include "measure.hpp"
#include "raw_client.hpp"
#include "report.hpp"
#include "ringfetch_client.hpp"
#include "uring_client.hpp"
#include "servers/nginx_server.hpp"
#include "workloads.hpp"

namespace ringfetch::bench {
namespace {

constexpr uint64_t kArenaSlackBytes = 256 * kMiB;  // first-fit waste at chunk ends (< largest item per 1 GiB chunk)
constexpr uint64_t kArenaItemAlign = 64;           // RegisteredArena::kMinAlignment
constexpr unsigned kEngineThreads = 1;             // the client owns one CPU
constexpr unsigned kWarmupConnections = 16;
constexpr uint64_t kMinDestinationBytes = 1 * kMiB;  // when only fill cells run, the shared destination is unused

// The fill workload's memory: mapped afresh for every run, before the clock starts, and neither pre-faulted nor
// advised to use huge pages (what a loader allocating new tensors gets), so that the first touch of every page
// falls inside the timed run, whoever makes it: the client's copy, the kernel's recv, or a registration's pinning.
class FreshBuffer {
 public:
  explicit FreshBuffer(uint64_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of a fresh fill buffer failed");
    data_ = static_cast<std::byte*>(p);
  }
  ~FreshBuffer() { munmap(data_, bytes_); }
  FreshBuffer(const FreshBuffer&) = delete;
  FreshBuffer& operator=(const FreshBuffer&) = delete;
  std::span<std::byte> span() const { return {data_, bytes_}; }

 private:
  std::byte* data_ = nullptr;
  uint64_t bytes_ = 0;
};

struct Workloads {
  Workload whole;
  Workload checkpoint_full;
  Workload checkpoint_partial;
  Workload small;
  Workload latency;
  Workload fill;  // the whole-object parts of a fill_bytes object, each filled in place into fresh memory
  Workload straggler;  // small parts, one request each (the gap sweep reuses `latency`)
};

// A cell: one workload, protocol and connection count, and the contenders that run it.
struct Cell {
  CellReport report;
  const Workload* workload = nullptr;
  uint64_t delay_ms = 0;  // gap: the first-byte delay, which picks the server
};

struct Context {
  const BenchOptions& options;
  ServerEndpoint server;          // nginx
  ServerEndpoint latency_server;  // the FaultServer with a first-byte delay (http only)
  std::map<uint64_t, ServerEndpoint> gap_servers;  // by first-byte delay in ms
  ServerEndpoint straggler_server;
  DestinationBuffer& dest;
  RingfetchContender& ringfetch;
  UringContender* uring;  // registers all of `dest` once, as ringfetch's engine registers its arena once

  const ServerEndpoint& server_for(const Cell& cell) const {
    if (cell.report.is_gap()) return gap_servers.at(cell.delay_ms);
    if (cell.report.is_straggler()) return straggler_server;
    return cell.report.workload == "latency" ? latency_server : server;
  }
};

std::string read_first_line_with(const char* path, const char* key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::string command_output(const char* command) {
  std::string out;
  if (FILE* p = popen(command, "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Facts machine_facts() {
  utsname u{};
  uname(&u);
  return {{"date", utc_now()},
          {"kernel", u.release},
          {"cpu", read_first_line_with("/proc/cpuinfo", "model name")},
          {"cpus", std::to_string(usable_cpus())},
          {"nginx", command_output("/usr/sbin/nginx -v 2>&1")},
          {"libcurl", curl_version()},
          {"openssl", OpenSSL_version(OPENSSL_VERSION)},
          {"source", command_output("git -C '" RINGFETCH_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null") +
                         " (plus any uncommitted changes in the working tree)"}};
}

uint64_t arena_bytes_for(const std::vector<const Workload*>& workloads) {
  uint64_t most = 0;
  for (const Workload* w : workloads) {
    uint64_t need = 0;
    for (const ByteSpan& item : w->items) need += (item.length + kArenaItemAlign - 1) / kArenaItemAlign * kArenaItemAlign;
    most = std::max(most, need);
  }
  return most + kArenaSlackBytes;
}

std::vector<std::string> contenders_for(const std::string& workload, const BenchOptions& o) {
  std::vector<std::string> all;
  if (workload == "whole") all = {"ringfetch", "uring", "raw", "curl", "curl-default"};
  if (workload == "checkpoint") all = {"ringfetch", "uring", "raw", "curl", "curl-default", "curl-naive"};
  if (workload == "small") all = {"ringfetch", "ringfetch-1fetch", "uring", "raw", "curl", "curl-default"};
  if (workload == "latency") all = {"ringfetch", "raw", "curl", "curl-naive"};
  if (workload == "fill") all = {"ringfetch", "uring", "raw", "curl"};
  if (workload == "cold") all = {"ringfetch", "raw", "curl"};
  if (workload == "straggler") all = {"ringfetch", "ringfetch-nohedge"};
  std::vector<std::string> kept;
  for (const std::string& c : all)
    if (o.wants_contender(c)) kept.push_back(c);
  if (workload == "gap") {  // all of them ringfetch: kept by "ringfetch" or by their own names
    for (const FixedGap& g : kFixedGaps)
      if (o.wants_contender("ringfetch") || o.wants_contender(g.contender)) kept.emplace_back(g.contender);
    if (o.wants_contender("ringfetch") || o.wants_contender(kAdaptiveGap)) kept.emplace_back(kAdaptiveGap);
  }
  return kept;
}

void add_cell(std::vector<Cell>* cells, const BenchOptions& o, const Workload& w, const std::string& workload,
              const std::string& variant, Protocol protocol, unsigned connections, uint64_t delay_ms = 0) {
  if (!o.wants_workload(workload) || !o.wants_protocol(to_string(protocol)) || !o.wants_connections(connections)) return;
  Cell cell;
  cell.report.workload = workload;
  cell.report.variant = variant;
  cell.report.protocol = protocol;
  cell.report.connections = connections;
  for (const std::string& c : contenders_for(workload, o)) {
    if (c == "uring" && protocol != Protocol::kHttp) continue;  // plain HTTP only; the table says so
    cell.report.contenders.push_back({c, {}});
  }
  cell.workload = &w;
  cell.delay_ms = delay_ms;
  if (!cell.report.contenders.empty()) cells->push_back(std::move(cell));
}

std::vector<Cell> make_cells(const BenchOptions& o, const Workloads& w) {
  std::vector<Cell> cells;
  for (Protocol p : {Protocol::kHttp, Protocol::kHttps})
    for (unsigned c : o.whole_connections) add_cell(&cells, o, w.whole, "whole", "", p, c);
  add_cell(&cells, o, w.checkpoint_full, "checkpoint", "full", Protocol::kHttp, o.checkpoint_connections);
  add_cell(&cells, o, w.checkpoint_partial, "checkpoint", "partial", Protocol::kHttp, o.checkpoint_connections);
  for (unsigned c : o.small_connections) add_cell(&cells, o, w.small, "small", "", Protocol::kHttp, c);
  add_cell(&cells, o, w.latency, "latency", "partial", Protocol::kHttp, o.latency_connections);
  for (uint64_t d : o.gap_delays_ms)
    add_cell(&cells, o, w.latency, "gap", std::to_string(d) + "ms", Protocol::kHttp, o.latency_connections, d);
  add_cell(&cells, o, w.straggler, "straggler", "fresh", Protocol::kHttp, o.straggler_connections);
  add_cell(&cells, o, w.straggler, "straggler", "warm", Protocol::kHttp, o.straggler_connections);
  add_cell(&cells, o, w.fill, "fill", "", Protocol::kHttp, o.fill_connections);
  add_cell(&cells, o, w.fill, "cold", "first", Protocol::kHttp, 1);
  add_cell(&cells, o, w.fill, "cold", "whole", Protocol::kHttp, o.fill_connections);
  return cells;
}

// Whether `contender` runs in a cell that uses the shared destination (every workload but fill).
bool runs_on_shared_dest(const std::vector<Cell>& cells, const std::string& contender) {
  return std::any_of(cells.begin(), cells.end(), [&](const Cell& c) {
    return !c.report.is_fill() && !c.report.is_cold() && c.report.find(contender) != nullptr;
  });
}

TransportJob transport_job(const std::string& contender, const Cell& cell, const Context& ctx,
                           std::span<std::byte> dest) {
  const Workload& w = *cell.workload;
  TransportJob job;
  job.protocol = cell.report.protocol;
  job.server = ctx.server_for(cell);
  job.path = "/" + w.object.key;
  job.connections = cell.report.connections;
  job.requests = contender == "curl-naive" ? std::span<const ByteSpan>(w.per_item) : std::span<const ByteSpan>(w.planned);
  job.dest = dest;
  job.record_latency = cell.report.is_small();
  return job;
}

RingfetchJob ringfetch_job(const std::string& contender, const Cell& cell, const Context& ctx) {
  RingfetchJob job;
  job.protocol = cell.report.protocol;
  job.server = ctx.server_for(cell);
  job.workload = cell.workload;
  job.connections = cell.report.connections;
  job.mode = contender == "ringfetch-1fetch" ? RingfetchMode::kPerRequest
             : cell.report.is_small()       ? RingfetchMode::kCallback
                                            : RingfetchMode::kViews;
  job.hedge = contender != "ringfetch-nohedge";
  // The straggler workload twice: a fresh Store per run (the harness's rule: it knows no first-byte times yet, so
  // its first requests cannot be hedged), and one kept across runs and warmed by an untimed fetch.
  if (cell.report.is_straggler() && cell.report.variant == "warm") job.keep_store = cell.report.label() + "/" + contender;
  if (cell.report.is_gap()) {
    job.keep_store = cell.report.label() + "/" + contender;
    job.adaptive_gap = contender == kAdaptiveGap;
    for (const FixedGap& g : kFixedGaps)
      if (contender == g.contender) job.max_gap = g.bytes;
  }
  return job;
}

// One fill run: a fresh buffer (mapped untimed), filled in place (timed, first touch included), checked (untimed),
// unmapped (untimed). The uring contender registers it inside its run, as ringfetch does.
RunResult run_fill(const std::string& contender, const Cell& cell, Context& ctx) {
  const Workload& w = *cell.workload;
  FreshBuffer buffer(w.object.size);
  if (contender == "ringfetch") {
    RingfetchJob job = ringfetch_job(contender, cell, ctx);
    job.destination = buffer.span();
    return ctx.ringfetch.run(job);
  }
  const TransportJob job = transport_job(contender, cell, ctx, buffer.span());
  RunResult r;
  Stopwatch clock;
  clock.start();
  if (contender == "uring") run_uring(job, &r);
  else if (contender == "raw") run_raw(job, &r);
  else run_curl(job, CurlProfile::kTuned, &r);
  clock.stop();
  clock.report(&r);
  r.bytes_useful = w.bytes_useful;
  if (r.ok) r.error = check_mirror(job.dest, w.items, w.object.seed);
  r.ok = r.ok && r.error.empty();
  return r;
}

RunResult run_transport(const std::string& contender, const Cell& cell, Context& ctx) {
  const Workload& w = *cell.workload;
  const TransportJob job = transport_job(contender, cell, ctx, ctx.dest.span(w.object.size));
  poison_mirror(job.dest, w.items);
  RunResult r;
  Stopwatch clock;
  clock.start();
  if (contender == "raw") run_raw(job, &r);
  else if (contender == "uring") ctx.uring->run(job, &r);
  else run_curl(job, contender == "curl-default" ? CurlProfile::kDefaults : CurlProfile::kTuned, &r);
  clock.stop();
  clock.report(&r);
  r.bytes_useful = w.bytes_useful;
  if (r.ok) r.error = check_mirror(job.dest, w.items, w.object.seed);
  r.ok = r.ok && r.error.empty();
  return r;
}

// A fresh process of the harness itself per run (see cold_start.hpp).
RunResult run_cold(const std::string& contender, const Cell& cell, const Context& ctx) {
  ColdStartJob job;
  job.contender = contender;
  job.whole = cell.report.variant == "whole";
  job.server = ctx.server;
  job.object = cell.workload->object;
  job.first_bytes = ctx.options.cold_first_bytes;
  job.connections = cell.report.connections;
  return run_cold_start(job);
}

RunResult run_contender(const std::string& contender, const Cell& cell, Context& ctx) {
  if (cell.report.is_fill()) return run_fill(contender, cell, ctx);
  if (cell.report.is_cold()) return run_cold(contender, cell, ctx);
  if (cell.report.is_gap()) return ctx.ringfetch.run(ringfetch_job(contender, cell, ctx));
  if (contender.rfind("ringfetch", 0) != 0) return run_transport(contender, cell, ctx);
  return ctx.ringfetch.run(ringfetch_job(contender, cell, ctx));
}

void print_progress(unsigned rep, unsigned reps, const Cell& cell, const std::string& contender, const RunResult& r) {
  if (!r.ok) {
    std::fprintf(stderr, "[%u/%u] %-27s %-16s FAILED: %s\n", rep + 1, reps, cell.report.label().c_str(),
                 contender.c_str(), r.error.c_str());
    return;
  }
  if (cell.report.is_cold()) {
    std::fprintf(stderr, "[%u/%u] %-27s %-16s %8.1f ms to %s, %8.1f ms to exit, child CPU %.1f ms\n", rep + 1, reps,
                 cell.report.label().c_str(), contender.c_str(), r.wall_s * 1e3,
                 cell.report.variant == "whole" ? "loaded" : "first bytes", r.exit_s * 1e3, r.cpu_s() * 1e3);
    return;
  }
  if (cell.report.is_gap() || cell.report.is_straggler()) {
    std::fprintf(stderr, "[%u/%u] %-27s %-17s %8.1f ms  %5llu req  max_gap %8llu  hedges %llu sent %llu won  extra %llu B\n",
                 rep + 1, reps, cell.report.label().c_str(), contender.c_str(), r.wall_s * 1e3,
                 static_cast<unsigned long long>(r.requests), static_cast<unsigned long long>(r.max_gap),
                 static_cast<unsigned long long>(r.hedges_sent), static_cast<unsigned long long>(r.hedges_won),
                 static_cast<unsigned long long>(r.extra_bytes()));
    return;
  }
  const double gb = static_cast<double>(r.bytes_useful) / 1e9;
  std::fprintf(stderr, "[%u/%u] %-27s %-16s %6.2f s  %6.2f GB/s  %7.3f CPU s/GB  %8.0f req/s  %llu req\n", rep + 1,
               reps, cell.report.label().c_str(), contender.c_str(), r.wall_s, gb / r.wall_s, r.cpu_s() / gb,
               static_cast<double>(r.requests) / r.wall_s, static_cast<unsigned long long>(r.requests));
}

// Every contender once on one cell, untimed: first connections, TLS contexts, libcurl's lazy set-up, nginx's. And
// ringfetch once on the full checkpoint, the most memory any cell holds: its arena grows to that size and is faulted
// in here, as the transport contenders' destination is pre-faulted, instead of in the first repetitions (which
// measured 5-6 CPU s on 2 GiB while the arena grew).
void warm_up(std::vector<Cell>& cells, Context& ctx) {
  for (const Cell& cell : cells) {
    if (cell.report.workload == "checkpoint" && cell.report.variant == "full") {
      for (const ContenderRuns& c : cell.report.contenders)
        if (c.contender == "ringfetch") run_contender(c.contender, cell, ctx);
    }
    if (cell.report.workload != "whole" || cell.report.connections != kWarmupConnections) continue;
    for (const ContenderRuns& c : cell.report.contenders) run_contender(c.contender, cell, ctx);
  }
}

// A gap cell's runs take tens of milliseconds and its plans differ by a few requests, so five repetitions leave
// its medians inside the noise (identical plans measured 12% apart): each round runs it this many times.
constexpr unsigned kGapRunsPerRound = 3;

void run_all(std::vector<Cell>& cells, Context& ctx) {
  const unsigned rounds = ctx.options.reps;
  for (unsigned round = 0; round < rounds; ++round) {
    for (Cell& cell : cells) {
      const unsigned runs = cell.report.is_gap() ? kGapRunsPerRound : 1;
      for (unsigned i = 0; i < runs; ++i) {
        const unsigned rep = round * runs + i;
        auto& contenders = cell.report.contenders;
        for (size_t k = 0; k < contenders.size(); ++k) {
          ContenderRuns& c = contenders[(k + rep) % contenders.size()];  // rotate: no contender always goes first
          c.runs.push_back(run_contender(c.contender, cell, ctx));
          print_progress(rep, rounds * runs, cell, c.contender, c.runs.back());
        }
      }
    }
  }
}

std::string pin(const BenchOptions& o, int cpus, pid_t nginx_pgid) {
  if (cpus < 2) return "not pinned (fewer than 2 CPUs)";
  std::string error = pin_self(o.client_cpu);
  if (!error.empty()) return "not pinned: " + error;
  const int pinned = pin_process_group(nginx_pgid, o.server_cpu, &error);
  if (pinned < 0) return "client pinned, nginx not: " + error;
  return "client (this process, all its threads) on CPU " + std::to_string(o.client_cpu) + "; nginx (" +
         std::to_string(pinned) + " processes: master + 1 worker) on CPU " + std::to_string(o.server_cpu) +
         ", via sched_setaffinity";
}

SchedulingClass scheduling_class(const BenchOptions& o) {
  if (o.sched == "fifo") return SchedulingClass::kFifo;
  return o.sched == "nice" ? SchedulingClass::kNice : SchedulingClass::kNormal;
}

std::string prioritize(const BenchOptions& o, pid_t nginx_pgid) {
  const SchedulingClass cls = scheduling_class(o);
  if (cls == SchedulingClass::kNormal) return "normal (not changed)";
  std::string error = prioritize_self(cls);
  if (error.empty()) error = prioritize_process_group(nginx_pgid, cls);
  const std::string what = cls == SchedulingClass::kFifo ? "SCHED_FIFO priority 10" : "nice -20";
  return error.empty() ? what + " for the client (all threads) and nginx" : what + " failed: " + error;
}

Workloads make_workloads(const BenchOptions& o) {
  const ObjectFile whole = whole_object(o.whole_bytes);
  const ObjectFile checkpoint = checkpoint_object(o.checkpoint_bytes);
  const ObjectFile fill = whole_object(o.fill_bytes);
  const bool need_whole = o.wants_workload("whole") || o.wants_workload("small");
  if (need_whole && ensure_object_file(o.data_dir, whole)) std::fprintf(stderr, "wrote %s\n", whole.key.c_str());
  const bool need_fill = o.wants_workload("fill") || o.wants_workload("cold");
  if (need_fill && ensure_object_file(o.data_dir, fill)) std::fprintf(stderr, "wrote %s\n", fill.key.c_str());
  if (o.wants_workload("checkpoint") && ensure_object_file(o.data_dir, checkpoint))
    std::fprintf(stderr, "wrote %s\n", checkpoint.key.c_str());
  Workload fill_workload = make_whole(fill);
  fill_workload.name = "fill";
  const ObjectFile straggler = straggler_object(o.straggler_parts * o.straggler_part_bytes);
  return {make_whole(whole), make_checkpoint(checkpoint, false), make_checkpoint(checkpoint, true),
          make_small(whole, o.small_reads),
          make_latency(latency_object(o.latency_bytes), latency_max_gap(o.latency_ms)), std::move(fill_workload),
          make_parts("straggler", straggler, o.straggler_part_bytes)};
}

void describe_workloads(const Workloads& w, Facts* facts) {
  for (const Workload* x :
       {&w.whole, &w.checkpoint_full, &w.checkpoint_partial, &w.small, &w.latency, &w.fill, &w.straggler}) {
    facts->emplace("workload " + x->name,
                   x->object.key + ": " + std::to_string(x->items.size()) + " items, " +
                       std::to_string(x->bytes_useful) + " useful bytes, " + std::to_string(x->planned.size()) +
                       " planned requests (part_size " + std::to_string(x->part_size) + ", max_gap " +
                       std::to_string(x->max_gap) + "), " + std::to_string(x->per_item.size()) + " per item");
  }
}

int run(const BenchOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  Facts facts = machine_facts();
  // Pin first, so that every thread made later (ringfetch's engine thread, libcurl's resolver) inherits it.
  const int cpus = usable_cpus();
  if (cpus >= 2) pin_self(o.client_cpu);
  prioritize_self(scheduling_class(o));
  init_curl();
  const Workloads w = make_workloads(o);
  describe_workloads(w, &facts);
  // Forked before any thread exists (nginx's launcher, ringfetch's engine), and before nginx so it is not its child.
  std::unique_ptr<LatencyServer> latency_server;
  if (o.wants_workload("latency") && o.wants_protocol("http") && o.wants_connections(o.latency_connections)) {
    latency_server = std::make_unique<LatencyServer>(LatencyServerOptions{
        .object_bytes = w.latency.object.size,
        .object_seed = w.latency.object.seed,
        .first_byte_delay = std::chrono::milliseconds(o.latency_ms),
        .cpu = cpus >= 2 ? o.server_cpu : -1});
    facts["latency server"] = latency_server->describe();
  }
  std::map<uint64_t, std::unique_ptr<LatencyServer>> gap_servers;
  if (o.wants_workload("gap") && o.wants_protocol("http") && o.wants_connections(o.latency_connections)) {
    for (uint64_t d : o.gap_delays_ms) {
      if (gap_servers.count(d) != 0) continue;
      gap_servers[d] = std::make_unique<LatencyServer>(LatencyServerOptions{
          .object_bytes = w.latency.object.size,
          .object_seed = w.latency.object.seed,
          .first_byte_delay = std::chrono::milliseconds(d),
          .cpu = cpus >= 2 ? o.server_cpu : -1});
      facts["gap server " + std::to_string(d) + "ms"] = gap_servers[d]->describe();
    }
  }
  std::unique_ptr<LatencyServer> straggler_server;
  if (o.wants_workload("straggler") && o.wants_protocol("http") && o.wants_connections(o.straggler_connections)) {
    straggler_server = std::make_unique<LatencyServer>(LatencyServerOptions{
        .object_bytes = w.straggler.object.size,
        .object_seed = w.straggler.object.seed,
        .first_byte_delay = std::chrono::milliseconds(o.straggler_base_ms),
        .straggler_every = o.straggler_every,
        .straggler_delay = std::chrono::milliseconds(o.straggler_ms),
        .cpu = cpus >= 2 ? o.server_cpu : -1});
    facts["straggler server"] = straggler_server->describe();
  }
  testing::NginxServer nginx(o.data_dir, testing::NginxOptions{.enable_ipv6 = false});
  facts["pinning"] = pin(o, cpus, nginx.pid());
  facts["scheduling"] = prioritize(o, nginx.pid());
  ServerEndpoint server;
  server.http_port = nginx.http_port();
  server.https_port = nginx.https_port();
  server.ca_file = nginx.ca_file().string();

  std::vector<Cell> cells = make_cells(o, w);
  std::vector<const Workload*> used;
  uint64_t largest_object = 0;
  for (const Cell& c : cells) {
    if (c.report.is_fill() || c.report.is_cold()) continue;  // fresh memory of their own, not the shared buffers
    used.push_back(c.workload);
    largest_object = std::max(largest_object, c.workload->object.size);
  }
  if (cells.empty()) throw std::runtime_error("the filters leave nothing to run");
  DestinationBuffer dest(std::max<uint64_t>(largest_object, kMinDestinationBytes));
  RingfetchContender ringfetch(kEngineThreads, arena_bytes_for(used));
  std::unique_ptr<UringContender> uring;
  if (runs_on_shared_dest(cells, "uring")) uring = std::make_unique<UringContender>(dest.all());
  facts["ringfetch engine"] = ringfetch.describe() + ", " + std::to_string(kEngineThreads) + " engine thread";
  ServerEndpoint latency_endpoint;
  latency_endpoint.http_port = latency_server ? latency_server->port() : 0;
  std::map<uint64_t, ServerEndpoint> gap_endpoints;
  for (const auto& [d, s] : gap_servers) gap_endpoints[d].http_port = s->port();
  ServerEndpoint straggler_endpoint;
  straggler_endpoint.http_port = straggler_server ? straggler_server->port() : 0;
  Context ctx{o, server, latency_endpoint, gap_endpoints, straggler_endpoint, dest, ringfetch, uring.get()};
  warm_up(cells, ctx);
  run_all(cells, ctx);

  std::vector<CellReport> reports;
  for (const Cell& c : cells) reports.push_back(c.report);
  for (const CellReport& r : reports)
    if (const ContenderRuns* raw = r.find("raw"); raw && !raw->runs.empty() && !raw->runs.back().detail.empty())
      facts["tls"] = raw->runs.back().detail;
  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() / 60;
  facts["runtime_minutes"] = std::to_string(minutes);
  for (const auto& [k, v] : facts) std::printf("%s: %s\n", k.c_str(), v.c_str());
  std::printf("command: %s\n", o.command_line.c_str());
  print_tables(stdout, reports);
  const std::vector<TargetCheck> targets = check_targets(reports);
  print_targets(stdout, targets);
  if (!o.json_file.empty()) write_json(o.json_file, facts, o, reports, targets);
  if (!o.plot_file.empty()) {
    const std::string error = draw_plot(o.plot_file, reports, facts);
    if (!error.empty()) std::fprintf(stderr, "ringfetch_bench: %s\n", error.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace ringfetch::bench

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], ringfetch::bench::kColdStartChildFlag) == 0)
    return ringfetch::bench::cold_start_child(argc, argv);
  int exit_code = 0;
  const auto options = ringfetch::bench::parse_options(argc, argv, &exit_code);
  if (!options) return exit_code;
  try {
    return ringfetch::bench::run(*options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringfetch_bench: %s\n", e.what());
    return 1;
  }
}
