// Demo dataset implementation. The pattern is splitmix64 evaluated at the 8-byte word index (counter-based, so
// any offset is computable directly and the file can be generated and checked in any order); the layout uses
// the same generator as its random source so that a given size always yields the same items.
#include "demo_dataset.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "ringfetch/error.hpp"

namespace ringfetch::cli {
namespace {

// Words are laid down with memcpy; the head/tail byte extraction below assumes the same byte order.
static_assert(std::endian::native == std::endian::little, "the demo pattern assumes a little-endian machine");

constexpr uint64_t kPatternSeed = 0x72696e6766657463;  // "ringfetc"
constexpr uint64_t kLayoutSeed = 0x6c61796f75742121;   // "layout!!"
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15;
constexpr uint64_t kWordBytes = 8;
// Item sizes: density proportional to size^-kSizeDecay on a log scale, which gives a few thousand items per GiB
// (mostly small, with the large ones holding most of the bytes), as in transformer checkpoints.
constexpr double kSizeDecay = 0.6;
constexpr uint64_t kLargestItemShare = 8;     // no item larger than 1/8 of the dataset (for small --size-mib)
constexpr uint64_t kItemAlignment = 64;       // item lengths and offsets are multiples of this
constexpr uint64_t kMaxHeaderSlots = 8;       // header gap before each item: 1..8 x kItemAlignment bytes
constexpr size_t kMaxRunItems = 24;           // partial loads pick runs of 1..24 neighbouring items
constexpr uint64_t kWriteBufferBytes = uint64_t{8} << 20;
constexpr size_t kCheckChunkBytes = size_t{256} << 10;

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

uint64_t pattern_word(uint64_t word_index) { return mix(kPatternSeed + word_index * kGolden); }

std::byte pattern_byte(uint64_t file_offset) {
  const uint64_t word = pattern_word(file_offset / kWordBytes);
  return static_cast<std::byte>(word >> (8 * (file_offset % kWordBytes)));
}

class LayoutRandom {
 public:
  uint64_t next() { return mix(state_ += kGolden); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1p-53; }  // [0, 1)

 private:
  uint64_t state_ = kLayoutSeed;
};

uint64_t round_down(uint64_t value, uint64_t multiple) { return value / multiple * multiple; }

uint64_t draw_item_length(LayoutRandom& random, uint64_t largest) {
  const double lo = std::log2(static_cast<double>(kSmallestItemBytes));
  const double span = std::log2(static_cast<double>(largest)) - lo;
  const double tail = 1.0 - std::exp2(-kSizeDecay * span);
  const double log_size = lo - std::log2(1.0 - random.unit() * tail) / kSizeDecay;
  const auto length = static_cast<uint64_t>(std::exp2(log_size));
  return std::clamp(round_down(length, kItemAlignment), kSmallestItemBytes, largest);
}

}  // namespace

void write_all(int fd, const std::byte* data, size_t length, const std::string& path) {
  while (length > 0) {
    const ssize_t n = ::write(fd, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(ErrorKind::kIo, "cannot write " + path + ": " + std::strerror(errno));
    data += n;
    length -= static_cast<size_t>(n);
  }
}

DatasetLayout layout_dataset(uint64_t target_bytes) {
  DatasetLayout layout;
  const uint64_t largest = std::clamp(round_down(target_bytes / kLargestItemShare, kItemAlignment),
                                      kSmallestItemBytes, kLargestItemBytes);
  LayoutRandom random;
  uint64_t offset = 0;
  while (offset < target_bytes) {
    offset += kItemAlignment * (1 + random.next() % kMaxHeaderSlots);
    const uint64_t room = target_bytes > offset ? target_bytes - offset : 0;
    const uint64_t length = std::max(kSmallestItemBytes, std::min(draw_item_length(random, largest),
                                                                  round_down(room, kItemAlignment)));
    layout.items.push_back({offset, length});
    layout.largest_item = std::max(layout.largest_item, length);
    layout.item_bytes += length;
    offset += length;
  }
  layout.file_bytes = offset;
  return layout;
}

void fill_pattern(uint64_t file_offset, std::span<std::byte> out) {
  size_t i = 0;
  for (; i < out.size() && (file_offset + i) % kWordBytes != 0; ++i) out[i] = pattern_byte(file_offset + i);
  uint64_t word_index = (file_offset + i) / kWordBytes;
  for (; i + kWordBytes <= out.size(); i += kWordBytes, ++word_index) {
    const uint64_t word = pattern_word(word_index);
    std::memcpy(out.data() + i, &word, kWordBytes);
  }
  for (; i < out.size(); ++i) out[i] = pattern_byte(file_offset + i);
}

void write_dataset_file(const std::string& path, uint64_t file_bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot create " + path + ": " + std::strerror(errno));
  std::vector<std::byte> buffer(kWriteBufferBytes);
  try {
    for (uint64_t offset = 0; offset < file_bytes; offset += buffer.size()) {
      const std::span<std::byte> chunk(buffer.data(), std::min<uint64_t>(buffer.size(), file_bytes - offset));
      fill_pattern(offset, chunk);
      write_all(fd, chunk.data(), chunk.size(), path);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  // Flushed so that the loads that follow read a clean page cache instead of competing with writeback.
  const bool flushed = ::fdatasync(fd) == 0;
  if (::close(fd) != 0 || !flushed) {
    throw Error(ErrorKind::kIo, "cannot write " + path + ": " + std::strerror(errno));
  }
}

std::vector<size_t> clustered_subset(const DatasetLayout& layout, double fraction) {
  struct Run {
    size_t first;
    size_t count;
  };
  LayoutRandom random;
  std::vector<Run> runs;
  for (size_t first = 0; first < layout.items.size();) {
    const size_t count = std::min<size_t>(1 + random.next() % kMaxRunItems, layout.items.size() - first);
    runs.push_back({first, count});
    first += count;
  }
  for (size_t i = runs.size(); i > 1; --i) std::swap(runs[i - 1], runs[random.next() % i]);  // Fisher-Yates

  const auto wanted = static_cast<uint64_t>(fraction * static_cast<double>(layout.item_bytes));
  std::vector<size_t> chosen;
  uint64_t chosen_bytes = 0;
  for (const Run& run : runs) {
    if (chosen_bytes >= wanted) break;
    for (size_t i = run.first; i < run.first + run.count; ++i) {
      chosen.push_back(i);
      chosen_bytes += layout.items[i].length;
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

std::optional<size_t> PatternChecker::first_mismatch(uint64_t file_offset, std::span<const std::byte> bytes) {
  expected_.resize(kCheckChunkBytes);
  for (size_t done = 0; done < bytes.size(); done += kCheckChunkBytes) {
    const size_t length = std::min(kCheckChunkBytes, bytes.size() - done);
    const std::span<std::byte> expected(expected_.data(), length);
    fill_pattern(file_offset + done, expected);
    if (std::memcmp(expected.data(), bytes.data() + done, length) == 0) continue;
    for (size_t i = 0; i < length; ++i) {
      if (expected[i] != bytes[done + i]) return done + i;
    }
  }
  return std::nullopt;
}

}  // namespace ringfetch::cli
