// The libcurl contender: one multi handle, `connections` easy handles, each re-armed with the next Range as soon
// as its transfer ends (so at most `connections` requests are in flight, on as many keep-alive connections); the
// write callback copies every body byte to its final offset in the pre-faulted destination. Two profiles:
//   kTuned     what a careful user sets: CURLOPT_BUFFERSIZE 512 KiB, HTTP/1.1, TCP_NODELAY, NOSIGNAL
//   kDefaults  nothing beyond what the job needs (URL, Range, CA file, write callback)
// Both ignore proxy variables and carry an overall timeout, which are correctness guards, not tuning.
#pragma once

#include "bench_types.hpp"

namespace ringfetch::bench {

enum class CurlProfile { kTuned, kDefaults };

// Process-wide libcurl set-up; call once before any run (curl_global_init is not thread-safe).
void init_curl();

// Runs `job` and fills the counters of `out` (requests, bytes, copies, latencies; ok/error); the caller times it.
void run_curl(const TransportJob& job, CurlProfile profile, RunResult* out);

}  // namespace ringfetch::bench
