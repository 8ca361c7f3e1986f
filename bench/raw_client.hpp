// The "raw limit" contender: the least a client has to do to move the same bytes. Non-blocking keep-alive sockets
// on one level-triggered epoll; each connection sends the next GET when its response ends; the head is read with a
// 1 KiB probe and parsed minimally (status, Content-Length); the few body bytes that came with it are copied, and
// every further body byte is recv()'d straight into its final place. For HTTPS the same with OpenSSL on the socket
// (its defaults: read-ahead with a 256 KiB buffer measured the same, within noise), SSL_read straight into the final
// place (OpenSSL decrypts in its record buffer and copies out: one copy no TLS client on OpenSSL avoids).
#pragma once

#include "bench_types.hpp"

namespace ringfetch::bench {

// Runs `job` and fills the counters of `out` (requests, bytes, copies, latencies; ok/error); the caller times it.
void run_raw(const TransportJob& job, RunResult* out);

}  // namespace ringfetch::bench
