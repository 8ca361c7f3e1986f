// RegisteredArena: the engine's one mmap'd region, cut into chunks of at most 1 GiB (one registered-buffer slot
// each), with a first-fit allocator whose spans never straddle a chunk. Faulted in at start (huge pages when the
// kernel gives them) so that loads never pay page faults. When it is full, allocation fails and callers park a
// waiter that runs after the next release: that is the engine's backpressure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "ringfetch/error.hpp"

namespace ringfetch::engine {

struct ArenaSpan {
  std::byte* data = nullptr;
  uint64_t length = 0;
  unsigned chunk = 0;  // registered-buffer slot of the chunk holding the span
};

class RegisteredArena : public std::enable_shared_from_this<RegisteredArena> {
 public:
  static constexpr uint64_t kMaxChunkBytes = 1ull << 30;
  static constexpr uint64_t kMinAlignment = 64;
  static constexpr uint64_t kPageBytes = 4096;

  struct Options {
    uint64_t bytes = 256ull << 20;
    bool huge_pages = true;
    bool prefault = true;
  };

  // Maps and (optionally) faults in the region. Errors: kInvalidArgument for zero bytes, kIo when mmap fails.
  static Status create(const Options& options, std::shared_ptr<RegisteredArena>* out);
  ~RegisteredArena();
  RegisteredArena(const RegisteredArena&) = delete;
  RegisteredArena& operator=(const RegisteredArena&) = delete;

  unsigned chunk_count() const noexcept { return static_cast<unsigned>(chunks_.size()); }
  std::span<std::byte> chunk(unsigned i) const noexcept { return chunks_[i]; }
  uint64_t capacity() const noexcept { return bytes_; }
  uint64_t largest_chunk() const noexcept { return chunks_.empty() ? 0 : chunks_[0].size(); }

  // First fit in any chunk; false when no chunk has room now. alignment: power of two (raised to kMinAlignment).
  bool try_allocate(uint64_t length, uint64_t alignment, ArenaSpan* out);
  // Returns a span; runs (outside the lock) every waiter parked since the last release.
  void release(const ArenaSpan& span);
  // try_allocate, or, atomically with the failure, park `waiter` to run once after the next release (so no
  // release can slip between the failed attempt and the parking).
  bool allocate_or_park(uint64_t length, uint64_t alignment, ArenaSpan* out, std::function<void()> waiter);

  uint64_t bytes_in_use() const;

 private:
  RegisteredArena() = default;
  bool allocate_locked(uint64_t length, uint64_t alignment, ArenaSpan* out);
  std::byte* base_ = nullptr;
  uint64_t bytes_ = 0;
  uint64_t mapped_bytes_ = 0;
  std::vector<std::span<std::byte>> chunks_;
  mutable std::mutex mutex_;
  std::vector<std::map<uint64_t, uint64_t>> free_;  // per chunk: offset -> length of free blocks
  uint64_t in_use_ = 0;
  std::vector<std::function<void()>> waiters_;
};

// Owns one allocation; releases it on destruction. Shared by the views of the items it holds.
class ArenaLease {
 public:
  ArenaLease(std::shared_ptr<RegisteredArena> arena, ArenaSpan span) : arena_(std::move(arena)), span_(span) {}
  ~ArenaLease() { arena_->release(span_); }
  ArenaLease(const ArenaLease&) = delete;
  ArenaLease& operator=(const ArenaLease&) = delete;
  const ArenaSpan& span() const noexcept { return span_; }

 private:
  std::shared_ptr<RegisteredArena> arena_;
  ArenaSpan span_;
};

}  // namespace ringfetch::engine
