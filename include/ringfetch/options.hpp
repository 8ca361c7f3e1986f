// Options of a Store: how it plans requests, and how it talks HTTP and S3. Every field has a documented default;
// std::nullopt means "the source's default".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ringfetch/s3/s3_options.hpp"

namespace ringfetch {

struct HttpOptions {
  unsigned connections = 8;                // keep-alive connections per endpoint
  uint32_t connect_timeout_ms = 5000;
  uint32_t first_byte_timeout_ms = 30000;  // request sent -> first response byte
  uint32_t idle_timeout_ms = 30000;        // longest silence in the middle of a response
  unsigned max_attempts = 5;               // per request, the first try included
  uint32_t backoff_base_ms = 20;           // exponential backoff with full jitter
  uint32_t backoff_max_ms = 2000;
  // A connection whose answer arrives slower than this (bytes per second, measured over windows of slow_grace_ms
  // once the head is in) is abandoned and its range resumed on another connection. 0 turns the watch off.
  uint64_t min_throughput_bytes_per_s = 8192;
  uint32_t slow_grace_ms = 5000;
  // Hedged GETs: a ranged GET whose first byte is later than the recent p95 of first-byte times (and at least
  // hedge_min_ms) is sent again on another connection; the first answer wins. At most hedge_budget_percent of
  // requests (plus two) are hedged.
  bool hedge = true;
  uint32_t hedge_min_ms = 20;
  uint32_t hedge_budget_percent = 5;
  bool verify_tls = true;                  // false: no certificate checks (warned once on stderr)
  std::string ca_file;                     // PEM bundle; default: SSL_CERT_FILE, AWS_CA_BUNDLE, then the system store
  std::vector<std::pair<std::string, std::string>> headers;  // added to every request
};

struct StoreOptions {
  // Gaps of at most this many bytes between wanted ranges are read (and dropped) instead of starting a new request.
  // Default: the source's (0 for file://, 1 MiB for http(s)://, 8 MiB for s3://).
  std::optional<uint64_t> max_gap;
  // Longest single request; larger groups are cut into parts fetched in parallel. Default 8 MiB.
  std::optional<uint64_t> part_size;
  // Requests in flight per fetch. Default: the source's (32 for files, 2 x connections for the network).
  std::optional<unsigned> max_in_flight;
  HttpOptions http;   // for http(s):// and s3:// roots
  s3::S3Options s3;   // for s3:// roots
};

// How far a Reader fetches ahead of the caller.
struct ReaderOptions {
  // Bytes of upcoming ranges fetched while the caller reads the current one. Default: half of
  // EngineOptions::arena_bytes. The range being read is always fetched, whatever its size.
  std::optional<uint64_t> window_bytes;
  // Upcoming ranges fetched ahead at most. Default: 1024.
  std::optional<size_t> window_items;
};

struct Range {
  uint64_t offset = 0;
  uint64_t length = 0;
};

}  // namespace ringfetch
