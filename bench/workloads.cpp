// Workload construction (see workloads.hpp). The requests handed to libcurl and the raw client come from
// ringfetch's own planner (engine/range_planner.hpp, plan_ranges) with the same options the ringfetch contender
// uses, ordered the way its scheduler dispatches them (by the first plan item each serves), so "transport vs
// transport" compares identical wire traffic.
#include "workloads.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>

#include "engine/range_planner.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch::bench {
namespace {

constexpr uint64_t kWholeSeed = 0x5748'4f4c'45;       // "WHOLE"
constexpr uint64_t kCheckpointSeed = 0x434b'5054;     // "CKPT"
constexpr uint64_t kLatencySeed = 0x4c54'4e43;        // "LTNC"
constexpr uint64_t kStragglerSeed = 0x5354'5247;      // "STRG"
constexpr uint64_t kLayoutSeed = 20240611;            // tensor sizes and cluster choice
constexpr uint64_t kSmallSeed = 4096;
constexpr double kMinTensorLog2 = 12;                 // 4 KiB
// Sizes are 2^(12 + span u^skew), u uniform: log-spread over the whole range but skewed to small tensors (norms,
// biases). Checkpoint: up to 64 MiB, so that a 2 GiB object holds about two thousand of them, as a shard of a
// large model does. Latency: up to 16 MiB and less skewed, a few hundred in 256 MiB.
struct TensorShape {
  double log2_span;
  double skew;
};
constexpr TensorShape kCheckpointTensors{14, 8};      // 4 KiB .. 64 MiB
constexpr TensorShape kLatencyTensors{12, 4};         // 4 KiB .. 16 MiB
constexpr uint64_t kS3ConnectionBytesPerSecond = 100 * kMiB;
constexpr uint64_t kMillisPerSecond = 1000;
constexpr uint64_t kTensorAlign = 4;                  // fp32 element
constexpr size_t kMaxClusterItems = 16;
constexpr double kPartialFraction = 0.30;
constexpr size_t kSampleBytes = 32;
constexpr size_t kWarmChunkBytes = 8 * kMiB;

std::string size_tag(uint64_t bytes) { return std::to_string(bytes / kMiB) + "M"; }

uint64_t union_bytes(std::vector<ByteSpan> spans) {
  std::sort(spans.begin(), spans.end(), [](const ByteSpan& a, const ByteSpan& b) { return a.offset < b.offset; });
  uint64_t total = 0;
  uint64_t covered_to = 0;
  for (const ByteSpan& s : spans) {
    const uint64_t start = std::max(s.offset, covered_to);
    const uint64_t end = s.offset + s.length;
    if (end > start) total += end - start;
    covered_to = std::max(covered_to, end);
  }
  return total;
}

// The requests plan_ranges makes of `items`, in FetchState's dispatch order (smallest plan index served first).
std::vector<ByteSpan> planned_requests(const Workload& w) {
  std::vector<engine::PlannerItem> items;
  items.reserve(w.items.size());
  for (const ByteSpan& item : w.items) items.push_back({0, item.offset, item.length, false});
  engine::PlannerOptions options;
  options.max_gap = w.max_gap;
  options.part_size = w.part_size;
  const uint64_t sizes[] = {w.object.size};
  engine::PlanLayout layout;
  const Status status = engine::plan_ranges(items, options, sizes, &layout);
  if (!status.ok()) throw std::runtime_error("planning " + w.name + ": " + status.message());

  std::vector<uint32_t> first_item(layout.requests.size(), UINT32_MAX);
  for (size_t r = 0; r < layout.requests.size(); ++r) {
    const engine::Request& req = layout.requests[r];
    for (uint32_t s = req.first_segment; s < req.first_segment + req.segment_count; ++s) {
      const engine::Segment& seg = layout.segments[s];
      if (seg.extent == engine::Segment::kGap) continue;
      const engine::Extent& ext = layout.extents[seg.extent];
      for (uint32_t k = 0; k < ext.item_count; ++k)
        first_item[r] = std::min(first_item[r], layout.extent_items[ext.first_item + k]);
    }
  }
  std::vector<uint32_t> order(layout.requests.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return first_item[a] < first_item[b]; });
  std::vector<ByteSpan> out;
  out.reserve(order.size());
  for (uint32_t r : order) out.push_back({layout.requests[r].offset, layout.requests[r].length});
  return out;
}

void finish(Workload* w) {
  w->per_item = w->items;
  w->bytes_useful = union_bytes(w->items);
  w->planned = planned_requests(*w);
}

std::vector<uint64_t> tensor_sizes(uint64_t total, TensorShape shape) {
  std::mt19937_64 rng(kLayoutSeed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<uint64_t> sizes;
  uint64_t used = 0;
  while (used < total) {
    const double log2_size = kMinTensorLog2 + shape.log2_span * std::pow(unit(rng), shape.skew);
    uint64_t size = static_cast<uint64_t>(std::exp2(log2_size)) / kTensorAlign * kTensorAlign;
    size = std::min(size, total - used);
    sizes.push_back(size);
    used += size;
  }
  return sizes;
}

// Clusters of 1..16 neighbouring tensors, taken in random order until 30% of the bytes are chosen; returned in
// file order, as a loader lists them.
std::vector<ByteSpan> clustered_subset(const std::vector<ByteSpan>& tensors, uint64_t total) {
  std::mt19937_64 rng(kLayoutSeed + 1);
  std::uniform_int_distribution<size_t> cluster_len(1, kMaxClusterItems);
  std::vector<std::pair<size_t, size_t>> clusters;  // [first, end)
  for (size_t first = 0; first < tensors.size();) {
    const size_t end = std::min(tensors.size(), first + cluster_len(rng));
    clusters.emplace_back(first, end);
    first = end;
  }
  std::shuffle(clusters.begin(), clusters.end(), rng);
  std::vector<bool> chosen(tensors.size(), false);
  uint64_t bytes = 0;
  const auto target = static_cast<uint64_t>(kPartialFraction * static_cast<double>(total));
  for (const auto& [first, end] : clusters) {
    if (bytes >= target) break;
    for (size_t i = first; i < end; ++i) {
      chosen[i] = true;
      bytes += tensors[i].length;
    }
  }
  std::vector<ByteSpan> subset;
  for (size_t i = 0; i < tensors.size(); ++i)
    if (chosen[i]) subset.push_back(tensors[i]);
  return subset;
}

bool file_matches(const std::filesystem::path& path, const ObjectFile& file) {
  std::error_code ec;
  if (std::filesystem::file_size(path, ec) != file.size || ec) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = true;
  for (uint64_t offset : {uint64_t{0}, file.size / 2, file.size - kSampleBytes}) {
    std::byte got[kSampleBytes];
    ok = ok && ::pread(fd, got, kSampleBytes, static_cast<off_t>(offset)) == static_cast<ssize_t>(kSampleBytes) &&
         sample_matches(got, offset, file.seed);
  }
  ::close(fd);
  return ok;
}

void read_into_page_cache(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string());
  std::vector<std::byte> chunk(kWarmChunkBytes);
  while (::read(fd, chunk.data(), chunk.size()) > 0) {
  }
  ::close(fd);
}

// Tensors of `shape` laid back to back over the object; all of them, or 30% in clusters.
Workload make_tensors(std::string name, const ObjectFile& object, TensorShape shape, bool partial, uint64_t max_gap) {
  Workload w{.name = std::move(name), .object = object, .part_size = kPartBytes, .max_gap = max_gap};
  std::vector<ByteSpan> tensors;
  uint64_t offset = 0;
  for (uint64_t size : tensor_sizes(object.size, shape)) {
    tensors.push_back({offset, size});
    offset += size;
  }
  w.items = partial ? clustered_subset(tensors, object.size) : tensors;
  finish(&w);
  return w;
}

}  // namespace

ObjectFile whole_object(uint64_t bytes) { return {"whole-" + size_tag(bytes) + ".bin", bytes, kWholeSeed}; }

ObjectFile checkpoint_object(uint64_t bytes) {
  return {"checkpoint-" + size_tag(bytes) + ".bin", bytes, kCheckpointSeed};
}

ObjectFile latency_object(uint64_t bytes) { return {"latency-" + size_tag(bytes) + ".bin", bytes, kLatencySeed}; }

ObjectFile straggler_object(uint64_t bytes) {
  return {"straggler-" + std::to_string(bytes >> 10) + "K.bin", bytes, kStragglerSeed};
}

uint64_t latency_max_gap(uint64_t first_byte_latency_ms) {
  return first_byte_latency_ms * kS3ConnectionBytesPerSecond / kMillisPerSecond;
}

bool ensure_object_file(const std::filesystem::path& dir, const ObjectFile& file) {
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / file.key;
  const bool write = !file_matches(path, file);
  if (write) testing::write_pattern_file(path, file.size, file.seed);
  read_into_page_cache(path);
  return write;
}

Workload make_whole(const ObjectFile& object) { return make_parts("whole", object, kPartBytes); }

Workload make_parts(std::string name, const ObjectFile& object, uint64_t part_bytes) {
  Workload w{.name = std::move(name), .object = object, .part_size = part_bytes, .max_gap = 0};
  for (uint64_t offset = 0; offset < object.size; offset += part_bytes)
    w.items.push_back({offset, std::min(part_bytes, object.size - offset)});
  finish(&w);
  return w;
}

Workload make_checkpoint(const ObjectFile& object, bool partial) {
  return make_tensors(partial ? "checkpoint partial" : "checkpoint full", object, kCheckpointTensors, partial,
                      kCheckpointMaxGap);
}

Workload make_latency(const ObjectFile& object, uint64_t max_gap) {
  return make_tensors("latency partial", object, kLatencyTensors, true, max_gap);
}

Workload make_small(const ObjectFile& object, size_t count) {
  Workload w{.name = "small", .object = object, .part_size = kPartBytes, .max_gap = 0};
  // Even-numbered 4 KiB slots only: any two reads are at least 4 KiB apart, so max_gap 0 coalesces nothing.
  const uint64_t slots = object.size / (2 * kSmallReadBytes);
  if (count > slots) throw std::runtime_error("small: object too small for " + std::to_string(count) + " reads");
  std::vector<uint64_t> all(slots);
  std::iota(all.begin(), all.end(), uint64_t{0});
  std::mt19937_64 rng(kSmallSeed);
  std::shuffle(all.begin(), all.end(), rng);
  for (size_t i = 0; i < count; ++i) w.items.push_back({all[i] * 2 * kSmallReadBytes, kSmallReadBytes});
  finish(&w);
  return w;
}

bool sample_matches(std::span<const std::byte> bytes, uint64_t offset, uint64_t seed) {
  std::byte expected[kSampleBytes];
  const size_t n = std::min(kSampleBytes, bytes.size());
  for (size_t at : {size_t{0}, bytes.size() / 2 - std::min(bytes.size() / 2, n / 2), bytes.size() - n}) {
    testing::fill_pattern(std::span(expected, n), offset + at, seed);
    if (std::memcmp(bytes.data() + at, expected, n) != 0) return false;
  }
  return true;
}

void poison_samples(std::span<std::byte> bytes) {
  const size_t n = std::min(kSampleBytes, bytes.size());
  for (size_t at : {size_t{0}, bytes.size() / 2 - std::min(bytes.size() / 2, n / 2), bytes.size() - n})
    std::memset(bytes.data() + at, 0, n);
}

std::string check_mirror(std::span<const std::byte> dest, std::span<const ByteSpan> items, uint64_t seed) {
  for (const ByteSpan& item : items) {
    if (!sample_matches(dest.subspan(item.offset, item.length), item.offset, seed)) {
      return "wrong bytes in item at offset " + std::to_string(item.offset) + " length " +
             std::to_string(item.length);
    }
  }
  return {};
}

void poison_mirror(std::span<std::byte> dest, std::span<const ByteSpan> items) {
  for (const ByteSpan& item : items) poison_samples(dest.subspan(item.offset, item.length));
}

}  // namespace ringfetch::bench
