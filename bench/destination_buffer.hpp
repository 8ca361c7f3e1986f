// Memory the transport contenders (and the libcurl reader of `ringfetch bench --compare`) write into.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

namespace ringfetch::bench {

// Memory that every transport contender writes into: mapped once, huge pages asked for (as ringfetch's arena
// does), faulted in before the first run and reused by every run.
class DestinationBuffer {
 public:
  explicit DestinationBuffer(uint64_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of a " + std::to_string(bytes) + "-byte destination failed");
    madvise(p, bytes, MADV_HUGEPAGE);
    std::memset(p, 0, bytes);
    data_ = static_cast<std::byte*>(p);
  }
  ~DestinationBuffer() { munmap(data_, bytes_); }
  DestinationBuffer(const DestinationBuffer&) = delete;
  DestinationBuffer& operator=(const DestinationBuffer&) = delete;
  std::span<std::byte> span(uint64_t n) const { return {data_, n}; }
  std::span<std::byte> all() const { return {data_, bytes_}; }

 private:
  std::byte* data_ = nullptr;
  uint64_t bytes_ = 0;
};

}  // namespace ringfetch::bench
