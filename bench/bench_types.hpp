// Types shared by the head-to-head harness (ringfetch_bench): what a contender is asked to fetch and what one timed
// run of it measured. Every contender gets the same requests against the same nginx; the transport contenders
// (libcurl, raw) receive them as explicit wire requests, ringfetch as the caller's items plus the planner options
// that make it issue exactly those requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ringfetch::bench {

enum class Protocol { kHttp, kHttps };

inline const char* to_string(Protocol p) { return p == Protocol::kHttp ? "http" : "https"; }

// Bytes [offset, offset + length) of one object.
struct ByteSpan {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Where nginx listens and how to trust it. Every contender connects to 127.0.0.1 (never "localhost", so that all
// of them use the same address family); the certificate carries IP:127.0.0.1.
struct ServerEndpoint {
  std::string host = "127.0.0.1";
  uint16_t http_port = 0;
  uint16_t https_port = 0;
  std::string ca_file;

  uint16_t port(Protocol p) const { return p == Protocol::kHttp ? http_port : https_port; }
  std::string root_url(Protocol p) const {
    return std::string(p == Protocol::kHttp ? "http://" : "https://") + host + ":" + std::to_string(port(p));
  }
};

// One transfer job for a transport contender (libcurl, raw). Each request's body lands at dest[offset]: the
// destination mirrors the object, so coalesced requests put item bytes at their final place and gap bytes in
// between (where ringfetch drops them into scratch memory instead).
struct TransportJob {
  Protocol protocol = Protocol::kHttp;
  ServerEndpoint server;
  std::string path;                    // "/whole-1024M.bin"
  unsigned connections = 1;
  std::span<const ByteSpan> requests;  // issued in this order, at most `connections` in flight
  std::span<std::byte> dest;           // object-sized, pre-faulted
  bool record_latency = false;
};

// What one timed run measured. CPU is getrusage(RUSAGE_SELF) user+sys around the run: every thread of this
// process (ringfetch's engine thread included), none of nginx's.
struct RunResult {
  bool ok = false;
  std::string error;
  double wall_s = 0;
  double user_s = 0;
  double sys_s = 0;
  double exit_s = 0;             // cold start: spawn -> the child reaped (wall_s: spawn -> its report)
  uint64_t requests = 0;         // HTTP requests put on the wire
  uint64_t bytes_useful = 0;     // distinct bytes the items asked for
  uint64_t bytes_wire = 0;       // response body bytes received (useful + coalesced gaps)
  uint64_t bytes_copied = 0;     // body bytes memcpy'd by the client in user space (TLS library copies not counted)
  uint64_t voluntary_switches = 0;
  uint64_t involuntary_switches = 0;
  std::vector<uint64_t> latency_ns;  // per request, when asked for
  // ringfetch only (Stats): hedged GETs and the max_gap the fetch was planned with.
  uint64_t hedges_sent = 0;
  uint64_t hedges_won = 0;
  uint64_t hedge_bytes_wasted = 0;  // received by the attempts that lost the race
  uint64_t max_gap = 0;
  std::string detail;                // e.g. the negotiated TLS version and cipher

  double cpu_s() const { return user_s + sys_s; }
  // Bytes moved beyond the useful ones: coalesced gaps and the answers of hedges that lost.
  uint64_t extra_bytes() const { return (bytes_wire > bytes_useful ? bytes_wire - bytes_useful : 0) + hedge_bytes_wasted; }
};

}  // namespace ringfetch::bench
