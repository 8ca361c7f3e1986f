// The `ringfetch demo` dataset: one checkpoint-like file of many tensor-sized items. Item sizes are spread
// log-wise from 4 KiB up to 64 MiB with small tensors far more common than large ones (as in real model
// checkpoints), each item preceded by a small header gap. Every byte of the file is a pure function of its
// offset (a splitmix64 word per 8 bytes), so any item can be verified without keeping a copy of the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ringfetch::cli {

struct DatasetItem {
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct DatasetLayout {
  std::vector<DatasetItem> items;  // sorted by offset, disjoint
  uint64_t file_bytes = 0;
  uint64_t largest_item = 0;
  uint64_t item_bytes = 0;         // sum of item lengths (the file minus header gaps)
};

constexpr uint64_t kSmallestItemBytes = uint64_t{4} << 10;
constexpr uint64_t kLargestItemBytes = uint64_t{64} << 20;

// Deterministic layout of about `target_bytes` of file (same input, same layout).
DatasetLayout layout_dataset(uint64_t target_bytes);

// Writes the file_bytes-long pattern to `path` (created or truncated) and flushes it to the device, leaving the
// pages cached. Throws ringfetch::Error(kIo).
void write_dataset_file(const std::string& path, uint64_t file_bytes);

// Indices of items chosen in runs of neighbours (as a partial load of some layers would pick them) until they
// hold at least `fraction` of the item bytes; sorted by offset.
std::vector<size_t> clustered_subset(const DatasetLayout& layout, double fraction);

// Fills `out` with the dataset's bytes starting at `file_offset`.
void fill_pattern(uint64_t file_offset, std::span<std::byte> out);

// Compares bytes read from the file at `file_offset` with the pattern, chunk by chunk.
class PatternChecker {
 public:
  // Index (into `bytes`) of the first byte that differs, or nullopt when all match.
  std::optional<size_t> first_mismatch(uint64_t file_offset, std::span<const std::byte> bytes);

 private:
  std::vector<std::byte> expected_;
};

// Writes all of data[0, length) to `fd` (retrying short writes and EINTR); kIo naming `path` otherwise.
void write_all(int fd, const std::byte* data, size_t length, const std::string& path);

}  // namespace ringfetch::cli
