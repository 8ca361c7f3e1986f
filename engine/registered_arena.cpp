// RegisteredArena implementation: mmap + MADV_HUGEPAGE + MADV_POPULATE_WRITE (touching pages where the kernel
// lacks it), and a first-fit free list per chunk with neighbour merging on release.
#include "engine/registered_arena.hpp"

#include <sys/mman.h>

#include <cassert>
#include <cerrno>
#include <cstring>

namespace ringfetch::engine {
namespace {

#ifndef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_WRITE = 23;
#endif

constexpr uint64_t kHugePageBytes = 2ull << 20;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

void prefault(std::byte* base, uint64_t bytes) {
  if (madvise(base, bytes, MADV_POPULATE_WRITE) == 0) return;
  for (uint64_t off = 0; off < bytes; off += RegisteredArena::kPageBytes) base[off] = std::byte{0};
}

}  // namespace

Status RegisteredArena::create(const Options& options, std::shared_ptr<RegisteredArena>* out) {
  if (options.bytes == 0) return Status(ErrorKind::kInvalidArgument, "arena_bytes must be greater than zero");
  std::shared_ptr<RegisteredArena> arena(new RegisteredArena());
  arena->bytes_ = align_up(options.bytes, kPageBytes);
  arena->mapped_bytes_ = options.huge_pages ? align_up(arena->bytes_, kHugePageBytes) : arena->bytes_;
  void* p = mmap(nullptr, arena->mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) {
    return Status(ErrorKind::kIo, "cannot map an arena of " + std::to_string(arena->mapped_bytes_) +
                                      " bytes: " + strerror(errno) + "; lower arena_bytes");
  }
  arena->base_ = static_cast<std::byte*>(p);
  if (options.huge_pages) madvise(p, arena->mapped_bytes_, MADV_HUGEPAGE);
  if (options.prefault) prefault(arena->base_, arena->bytes_);
  for (uint64_t off = 0; off < arena->bytes_; off += kMaxChunkBytes) {
    uint64_t len = std::min(kMaxChunkBytes, arena->bytes_ - off);
    arena->chunks_.emplace_back(arena->base_ + off, len);
    arena->free_.push_back({{0, len}});
  }
  *out = std::move(arena);
  return {};
}

RegisteredArena::~RegisteredArena() {
  if (base_ != nullptr) munmap(base_, mapped_bytes_);
}

bool RegisteredArena::try_allocate(uint64_t length, uint64_t alignment, ArenaSpan* out) {
  std::lock_guard lock(mutex_);
  return allocate_locked(length, alignment, out);
}

bool RegisteredArena::allocate_or_park(uint64_t length, uint64_t alignment, ArenaSpan* out,
                                       std::function<void()> waiter) {
  std::lock_guard lock(mutex_);
  if (allocate_locked(length, alignment, out)) return true;
  waiters_.push_back(std::move(waiter));
  return false;
}

bool RegisteredArena::allocate_locked(uint64_t length, uint64_t alignment, ArenaSpan* out) {
  alignment = std::max(alignment, kMinAlignment);
  length = align_up(std::max<uint64_t>(length, 1), kMinAlignment);
  for (unsigned c = 0; c < free_.size(); ++c) {
    auto& blocks = free_[c];
    // Alignment is of the address, not of the offset: the mapping itself is only page-aligned.
    const auto chunk_base = reinterpret_cast<uintptr_t>(chunks_[c].data());
    for (auto it = blocks.begin(); it != blocks.end(); ++it) {
      const uint64_t block_start = it->first;
      const uint64_t block_end = it->first + it->second;
      const uint64_t start = align_up(chunk_base + block_start, alignment) - chunk_base;
      if (start + length > block_end) continue;
      blocks.erase(it);
      if (start > block_start) blocks.emplace(block_start, start - block_start);
      if (start + length < block_end) blocks.emplace(start + length, block_end - start - length);
      in_use_ += length;
      *out = ArenaSpan{chunks_[c].data() + start, length, c};
      return true;
    }
  }
  return false;
}

void RegisteredArena::release(const ArenaSpan& span) {
  std::vector<std::function<void()>> to_run;
  {
    std::lock_guard lock(mutex_);
    auto& blocks = free_[span.chunk];
    uint64_t start = static_cast<uint64_t>(span.data - chunks_[span.chunk].data());
    uint64_t end = start + span.length;
    auto next = blocks.lower_bound(start);
    if (next != blocks.end() && next->first == end) {
      end += next->second;
      next = blocks.erase(next);
    }
    if (next != blocks.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == start) {
        start = prev->first;
        blocks.erase(prev);
      }
    }
    blocks.emplace(start, end - start);
    in_use_ -= span.length;
    to_run.swap(waiters_);
  }
  for (auto& waiter : to_run) waiter();
}

uint64_t RegisteredArena::bytes_in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}

}  // namespace ringfetch::engine
