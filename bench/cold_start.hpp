// The cold-start workload: what a fresh process pays before its first bytes, and before a whole object is loaded.
// The harness re-executes itself (/proc/self/exe --cold-start-child ...) once per run, with posix_spawn (no copy
// of the harness's page tables, which a fork of a process holding GiBs of mapped memory would pay), and times from
// just before the spawn to the moment the child reports, through a pipe, a CLOCK_MONOTONIC timestamp (the clock is
// shared by every process of the machine), and to the child's exit (reaped with waitpid). Everything the child does
// is in: dynamic loading and static initialisation (the same binary for every contender), library set-up (an
// Engine with default options, curl_global_init, an SSL-free raw client), connecting, the request and, for the
// whole load, the first touch of a fresh buffer of the object's size.
//   first   one item of `first_bytes` at offset 0, one connection: time to its bytes in memory
//   whole   the whole object into a fresh buffer as 8 MiB parts over `connections` (as the fill workload does)
#pragma once

#include <string>

#include "bench_types.hpp"
#include "workloads.hpp"

namespace ringfetch::bench {

struct ColdStartJob {
  std::string contender;  // ringfetch, raw, curl
  bool whole = false;
  ServerEndpoint server;  // plain HTTP
  ObjectFile object;
  uint64_t first_bytes = 4096;
  unsigned connections = 1;
};

// One fresh process. wall_s: spawn -> the child's report (first bytes, or whole object loaded); exit_s: spawn ->
// child reaped; user_s/sys_s: the child's CPU (RUSAGE_CHILDREN).
RunResult run_cold_start(const ColdStartJob& job);

// The child's side, when argv[1] is kColdStartChildFlag. Returns the process's exit code.
inline constexpr const char* kColdStartChildFlag = "--cold-start-child";
int cold_start_child(int argc, char** argv);

}  // namespace ringfetch::bench
