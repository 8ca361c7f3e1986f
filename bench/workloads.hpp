// The harness's workloads and their data: the objects nginx serves (deterministic pattern files, so that any
// fetched byte can be checked against its offset), and for each workload the caller's items, the requests
// ringfetch's planner makes of them (what the transport contenders are handed, so that they move exactly the same
// bytes), and the naive one-request-per-item list.
//   whole       one object read as part_size ranged parts (items = parts; no gaps, nothing to coalesce)
//   checkpoint  a synthetic checkpoint: a few thousand tensors, sizes log-spread 4 KiB..64 MiB, laid back to back;
//               loaded whole, or 30% of its bytes chosen in clusters of neighbouring tensors
//   small       random 4 KiB reads at least 4 KiB apart, so that nothing coalesces
//   latency     a smaller checkpoint (a few hundred tensors, 4 KiB..16 MiB), 30% partial in clusters, served from
//               memory by our FaultServer with a first-byte delay per response (see latency_server.hpp): the case
//               where coalescing pays, as it does against an object store
//   gap         the latency workload's items at several first-byte delays, each fetched with a range of fixed
//               max_gap values and with the adaptive one (max_gap left unset: the Store measures it)
//   straggler   an object read as many small ranged parts (nothing coalesces), served by a FaultServer that makes
//               every N-th answer a straggler: what hedged GETs are for
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "bench_types.hpp"

namespace ringfetch::bench {

struct ObjectFile {
  std::string key;  // file name under the served root, also the object key
  uint64_t size = 0;
  uint64_t seed = 0;  // of the test pattern it holds
};

struct Workload {
  std::string name;          // "whole", "checkpoint full", "checkpoint partial", "small", ...
  ObjectFile object;
  std::vector<ByteSpan> items;      // what the caller asks for, in plan order
  uint64_t part_size = 0;           // ringfetch StoreOptions that make it issue exactly `planned`
  uint64_t max_gap = 0;
  std::vector<ByteSpan> planned;    // ringfetch's requests, in the order its scheduler dispatches them
  std::vector<ByteSpan> per_item;   // one request per item, in plan order
  uint64_t bytes_useful = 0;        // distinct item bytes
};

inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr uint64_t kPartBytes = 8 * kMiB;           // "8 MiB ranged parts", and ringfetch's default
inline constexpr uint64_t kCheckpointMaxGap = 1 * kMiB;     // ringfetch's HTTP default (HttpSource::kDefaultMaxGap)
inline constexpr uint64_t kSmallReadBytes = 4096;

ObjectFile whole_object(uint64_t bytes);
ObjectFile checkpoint_object(uint64_t bytes);
// Not written to disk: the latency server builds it in memory from the same pattern.
ObjectFile latency_object(uint64_t bytes);
ObjectFile straggler_object(uint64_t bytes);

// The gap sweep's contenders: ringfetch with each fixed max_gap, and with the adaptive one.
struct FixedGap {
  const char* contender;
  uint64_t bytes;
};
inline constexpr FixedGap kFixedGaps[] = {
    {"gap=0", 0}, {"gap=64K", 64 << 10}, {"gap=1M", 1 * kMiB}, {"gap=8M", 8 * kMiB}, {"gap=32M", 32 * kMiB}};
inline constexpr const char* kAdaptiveGap = "gap=auto";

// max_gap for a source with this first-byte latency: a gap is worth reading through instead of paying a new
// request while reading it takes less than the latency, i.e. gap <= latency x per-connection bandwidth. The
// bandwidth is an S3 GET stream's (~100 MiB/s per connection), not this loopback's (GB/s), so the requests are
// those a real S3 load would make: 20 ms -> 2 MiB.
uint64_t latency_max_gap(uint64_t first_byte_latency_ms);

// Writes `file` under `dir` unless a file of the right size and content is already there, then reads it once so
// that nginx serves it from the page cache. Returns true when it had to write it.
bool ensure_object_file(const std::filesystem::path& dir, const ObjectFile& file);

Workload make_whole(const ObjectFile& object);
// Tensor layout of a checkpoint object; `partial` keeps ~30% of its bytes, in clusters.
Workload make_checkpoint(const ObjectFile& object, bool partial);
Workload make_small(const ObjectFile& object, size_t count);
// The checkpoint generator with tensors of 4 KiB..16 MiB (a few hundred in 256 MiB), 30% partial.
Workload make_latency(const ObjectFile& object, uint64_t max_gap);
// The whole object as `part_bytes` items, one request each (part_size = part_bytes, max_gap 0).
Workload make_parts(std::string name, const ObjectFile& object, uint64_t part_bytes);

// Checks three small windows (start, middle, end) of `bytes` against the pattern at `offset`; and the reverse,
// zeroing those windows, so that a later contender reusing the memory cannot pass on stale bytes.
bool sample_matches(std::span<const std::byte> bytes, uint64_t offset, uint64_t seed);
void poison_samples(std::span<std::byte> bytes);

// Checks the samples of every item in an object-mirroring destination (dest[offset] holds object byte offset).
// Returns "" or the first item that does not match.
std::string check_mirror(std::span<const std::byte> dest, std::span<const ByteSpan> items, uint64_t seed);
void poison_mirror(std::span<std::byte> dest, std::span<const ByteSpan> items);

}  // namespace ringfetch::bench
