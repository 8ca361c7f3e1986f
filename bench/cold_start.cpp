// Cold start (see cold_start.hpp). Child arguments, after the flag:
//   CONTENDER URL SIZE SEED MODE FIRST_BYTES CONNECTIONS FD
// URL is http://host:port/key; MODE is first or whole; FD is the pipe's write end, inherited.
#include "cold_start.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "curl_client.hpp"
#include "measure.hpp"
#include "raw_client.hpp"
#include "ringfetch/ringfetch.hpp"

extern char** environ;

namespace ringfetch::bench {
namespace {

constexpr int kChildReportFd = 100;  // where the pipe's write end lands in the child, clear of stdio and the loader's
constexpr int kChildArgs = 8;
constexpr double kNanosPerSecond = 1e9;

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

// ---- child side ----

struct ChildArgs {
  std::string contender;
  ServerEndpoint server;
  ObjectFile object;
  bool whole = false;
  uint64_t first_bytes = 0;
  unsigned connections = 1;
  int fd = -1;
};

// http://host:port/key -> server and key.
void parse_url(const std::string& url, ChildArgs* a) {
  const std::string scheme = "http://";
  const size_t colon = url.find(':', scheme.size());
  const size_t slash = url.find('/', scheme.size());
  if (url.rfind(scheme, 0) != 0 || colon == std::string::npos || slash == std::string::npos || colon > slash)
    throw std::invalid_argument("cold-start child: wants http://host:port/key, got " + url);
  a->server.host = url.substr(scheme.size(), colon - scheme.size());
  a->server.http_port = static_cast<uint16_t>(std::stoul(url.substr(colon + 1, slash - colon - 1)));
  a->object.key = url.substr(slash + 1);
}

ChildArgs parse_child_args(int argc, char** argv) {
  if (argc != 2 + kChildArgs) throw std::invalid_argument("cold-start child: wrong number of arguments");
  ChildArgs a;
  a.contender = argv[2];
  parse_url(argv[3], &a);
  a.object.size = std::stoull(argv[4]);
  a.object.seed = std::stoull(argv[5]);
  a.whole = std::string(argv[6]) == "whole";
  a.first_bytes = std::stoull(argv[7]);
  a.connections = static_cast<unsigned>(std::stoul(argv[8]));
  a.fd = std::stoi(argv[9]);
  return a;
}

void report(int fd, const std::string& line) {
  const std::string text = line + "\n";
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::_Exit(3);
}

// Fresh, not pre-faulted memory of `bytes`, as the fill workload's (unmapped at exit).
std::span<std::byte> fresh_memory(uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap of the destination failed");
  return {static_cast<std::byte*>(p), bytes};
}

// The items the child fetches: one of first_bytes, or the whole object's 8 MiB parts.
Workload child_workload(const ChildArgs& a) {
  Workload w = make_whole(a.object);
  if (!a.whole) {
    w.items = {{0, a.first_bytes}};
    w.planned = w.items;
    w.bytes_useful = a.first_bytes;
  }
  return w;
}

// ringfetch as an embedder starts it: an Engine with default options, a Store, one fetch. The whole load fills
// caller memory (registered), as in the fill workload; the first item lands in the engine's memory.
std::string child_ringfetch(const ChildArgs& a, const Workload& w, std::span<std::byte> dest) {
  Engine engine;
  StoreOptions options;
  options.part_size = w.part_size;
  options.max_in_flight = a.connections;
  options.http.connections = a.connections;
  Store store = Store::open(a.server.root_url(Protocol::kHttp), engine, options);
  MemoryRegistration registration;
  Plan plan;
  if (a.whole) {
    registration = engine.register_memory(dest);
    for (const ByteSpan& item : w.items)
      plan.add(a.object.key, item.offset, item.length, dest.subspan(item.offset, item.length));
  } else {
    plan.add(a.object.key, 0, a.first_bytes);
  }
  FetchBatch batch = store.fetch(plan);
  if (!a.whole) {
    const std::optional<ItemView> view = batch.next();
    report(a.fd, "ok " + std::to_string(now_ns()));
    if (!view || !sample_matches(view->bytes(), 0, a.object.seed)) return "ringfetch: wrong bytes";
    return {};
  }
  batch.wait();
  report(a.fd, "ok " + std::to_string(now_ns()));
  return check_mirror(dest, w.items, a.object.seed);
}

std::string child_transport(const ChildArgs& a, const Workload& w, std::span<std::byte> dest) {
  TransportJob job;
  job.protocol = Protocol::kHttp;
  job.server = a.server;
  job.path = "/" + a.object.key;
  job.connections = a.connections;
  job.requests = w.planned;
  job.dest = dest;
  RunResult r;
  if (a.contender == "raw") {
    run_raw(job, &r);
  } else {
    init_curl();
    run_curl(job, CurlProfile::kTuned, &r);
  }
  if (!r.ok) return r.error;
  report(a.fd, "ok " + std::to_string(now_ns()));
  return check_mirror(dest, w.items, a.object.seed);
}

// ---- parent side ----

// Fills `out` from the child's report lines: "ok <ns>" then, on a late failure, "error <text>".
void read_reports(int fd, uint64_t spawned_ns, RunResult* out) {
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  if (const size_t e = text.find("error "); e != std::string::npos) {
    out->error = text.substr(e + 6, text.find('\n', e) - e - 6);
  } else if (text.rfind("ok ", 0) == 0) {
    out->wall_s = static_cast<double>(std::stoull(text.substr(3)) - spawned_ns) / kNanosPerSecond;
    out->ok = true;
  } else {
    out->error = "cold-start child reported nothing";
  }
}

std::vector<std::string> child_argv(const ColdStartJob& job) {
  const std::string url = job.server.root_url(Protocol::kHttp) + "/" + job.object.key;
  return {"/proc/self/exe", kColdStartChildFlag, job.contender, url, std::to_string(job.object.size),
          std::to_string(job.object.seed), job.whole ? "whole" : "first", std::to_string(job.first_bytes),
          std::to_string(job.connections), std::to_string(kChildReportFd)};
}

}  // namespace

int cold_start_child(int argc, char** argv) {
  int fd = kChildReportFd;
  try {
    const ChildArgs a = parse_child_args(argc, argv);
    fd = a.fd;
    const Workload w = child_workload(a);
    const bool engine_memory = a.contender == "ringfetch" && !a.whole;
    const std::span<std::byte> dest = engine_memory ? std::span<std::byte>() : fresh_memory(w.object.size);
    const std::string error =
        a.contender == "ringfetch" ? child_ringfetch(a, w, dest) : child_transport(a, w, dest);
    if (!error.empty()) report(fd, "error " + error);
    return error.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    report(fd, std::string("error ") + e.what());
    return 1;
  }
}

RunResult run_cold_start(const ColdStartJob& job) {
  RunResult r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    r.error = std::string("pipe2: ") + std::strerror(errno);
    return r;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], kChildReportFd);  // the copy is not close-on-exec
  const std::vector<std::string> args = child_argv(job);
  std::vector<char*> argv;
  for (const std::string& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  rusage before{};
  getrusage(RUSAGE_CHILDREN, &before);
  const uint64_t spawned_ns = now_ns();
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    r.error = std::string("posix_spawn: ") + std::strerror(rc);
    return r;
  }
  read_reports(fds[0], spawned_ns, &r);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  r.exit_s = static_cast<double>(now_ns() - spawned_ns) / kNanosPerSecond;
  rusage after{};
  getrusage(RUSAGE_CHILDREN, &after);
  r.user_s = seconds(after.ru_utime) - seconds(before.ru_utime);
  r.sys_s = seconds(after.ru_stime) - seconds(before.ru_stime);
  if (r.ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    r.ok = false;
    r.error = "cold-start child exited with status " + std::to_string(status);
  }
  r.bytes_useful = job.whole ? job.object.size : job.first_bytes;
  r.requests = job.whole ? (job.object.size + kPartBytes - 1) / kPartBytes : 1;
  return r;
}

}  // namespace ringfetch::bench
