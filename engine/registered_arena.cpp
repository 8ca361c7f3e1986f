// RegisteredArena implementation: chunks mapped on demand (MADV_HUGEPAGE where the kernel gives huge pages, never
// faulted in here: registration or the first read does that), a first-fit free list per chunk with neighbour
// merging, and the two bounds (base for engine-held memory, limit for everything).
#include "engine/registered_arena.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace ringfetch::engine {
namespace {

constexpr uint64_t kHugePageBytes = 2ull << 20;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace

Status RegisteredArena::create(const Options& options, std::shared_ptr<RegisteredArena>* out) {
  if (options.base_bytes == 0) return Status(ErrorKind::kInvalidArgument, "arena_bytes must be greater than zero");
  if (options.limit_bytes < options.base_bytes) {
    return Status(ErrorKind::kInvalidArgument, "memory_limit (" + std::to_string(options.limit_bytes) +
                                                   " bytes) is below arena_bytes (" +
                                                   std::to_string(options.base_bytes) + " bytes)");
  }
  std::shared_ptr<RegisteredArena> arena(new RegisteredArena());
  arena->base_ = align_up(options.base_bytes, kPageBytes);
  arena->limit_ = std::max(arena->base_, options.limit_bytes);
  arena->huge_pages_ = options.huge_pages;
  *out = std::move(arena);
  return {};
}

RegisteredArena::~RegisteredArena() {
  for (auto& chunk : chunks_) munmap(chunk->data, chunk->mapped);
}

void RegisteredArena::set_registrar(ChunkRegistrar* registrar) {
  std::lock_guard lock(mutex_);
  registrar_ = registrar;
  // Without a registrar the rings are gone and every registration with them: chunks read plainly from now on.
  if (registrar == nullptr)
    for (auto& chunk : chunks_) chunk->slot = -1;
}

// Growth: chunks double from 2 MiB (as much as is mapped already) up to a granule of a quarter of the base, a power
// of two of at most 256 MiB, so a small load maps and registers little — registering faults every page in, about
// 2 ms per MiB on the VMs we measured, which a one-item fetch must not pay for a 256 MiB chunk — and a big one few
// chunks. A larger span gets a chunk of its own size.
uint64_t RegisteredArena::chunk_bytes_for(uint64_t length) const noexcept {
  const uint64_t granule =
      std::clamp<uint64_t>(std::bit_ceil(std::max<uint64_t>(base_ / 4, 1)), kMinChunkBytes, kMaxGrowthChunkBytes);
  const uint64_t doubling = std::clamp<uint64_t>(std::bit_ceil(std::max<uint64_t>(mapped_, 1)), kMinChunkBytes, granule);
  return std::max(doubling, align_up(length, kHugePageBytes));
}

bool RegisteredArena::fits_limit(uint64_t length) const noexcept {
  return align_up(std::max<uint64_t>(length, 1), kMinAlignment) <= limit_;
}

bool RegisteredArena::try_allocate(uint64_t length, uint64_t alignment, ArenaSpan* out) {
  std::vector<std::function<void()>> after;
  bool ok;
  {
    std::lock_guard lock(mutex_);
    ok = allocate_locked(length, alignment, out, &after);
  }
  for (auto& task : after) task();
  return ok;
}

bool RegisteredArena::allocate_or_park(uint64_t length, uint64_t alignment, ArenaSpan* out,
                                       std::function<void()> waiter) {
  std::vector<std::function<void()>> after;
  bool ok;
  {
    std::lock_guard lock(mutex_);
    ok = allocate_locked(length, alignment, out, &after);
    if (!ok) waiters_.push_back(std::move(waiter));
  }
  for (auto& task : after) task();
  return ok;
}

bool RegisteredArena::allocate_in_chunk(ArenaChunk& chunk, uint64_t length, uint64_t alignment, ArenaSpan* out) {
  // Alignment is of the address, not of the offset.
  const auto chunk_base = reinterpret_cast<uintptr_t>(chunk.data);
  for (auto it = chunk.free.begin(); it != chunk.free.end(); ++it) {
    const uint64_t block_start = it->first;
    const uint64_t block_end = it->first + it->second;
    const uint64_t start = align_up(chunk_base + block_start, alignment) - chunk_base;
    if (start + length > block_end) continue;
    chunk.free.erase(it);
    if (start > block_start) chunk.free.emplace(block_start, start - block_start);
    if (start + length < block_end) chunk.free.emplace(start + length, block_end - start - length);
    chunk.in_use += length;
    *out = ArenaSpan{chunk.data + start, length, &chunk};
    return true;
  }
  return false;
}

bool RegisteredArena::allocate_locked(uint64_t length, uint64_t alignment, ArenaSpan* out,
                                      std::vector<std::function<void()>>* after) {
  alignment = std::max(alignment, kMinAlignment);
  length = align_up(std::max<uint64_t>(length, 1), kMinAlignment);
  const uint64_t engine_held = in_use_ - held_;
  if (engine_held > 0 && engine_held + length > base_) return false;
  for (auto& chunk : chunks_) {
    if (chunk->length - chunk->in_use < length) continue;
    if (allocate_in_chunk(*chunk, length, alignment, out)) {
      in_use_ += length;
      return true;
    }
  }
  ArenaChunk* chunk = grow_locked(length + (alignment > kPageBytes ? alignment : 0), after);
  if (chunk == nullptr || !allocate_in_chunk(*chunk, length, alignment, out)) return false;
  in_use_ += length;
  return true;
}

ArenaChunk* RegisteredArena::grow_locked(uint64_t length, std::vector<std::function<void()>>* after) {
  const uint64_t bytes = std::min(chunk_bytes_for(length), std::max(align_up(length, kPageBytes), limit_ - mapped_));
  if (mapped_ + bytes > limit_ || chunks_.size() >= kMaxChunks) return nullptr;
  const uint64_t mapping = huge_pages_ ? align_up(bytes, kHugePageBytes) : bytes;
  void* p = mmap(nullptr, mapping, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  if (huge_pages_) madvise(p, mapping, MADV_HUGEPAGE);
  auto chunk = std::make_unique<ArenaChunk>();
  chunk->data = static_cast<std::byte*>(p);
  chunk->length = bytes;
  chunk->mapped = mapping;
  chunk->free.emplace(0, bytes);
  // Chunks above 1 GiB cannot be one registered buffer; they are read plainly.
  if (registrar_ != nullptr && bytes <= kMaxChunkBytes) chunk->slot = registrar_->reserve_slot();
  if (chunk->slot >= 0) {
    ChunkRegistrar* registrar = registrar_;
    const int32_t slot = chunk->slot;
    std::span<std::byte> memory(chunk->data, chunk->length);
    after->push_back([registrar, slot, memory] { registrar->publish(slot, memory); });
  }
  mapped_ += bytes;
  peak_ = std::max(peak_, mapped_);
  chunks_.push_back(std::move(chunk));
  return chunks_.back().get();
}

void RegisteredArena::maybe_retire_locked(ArenaChunk* chunk, std::vector<std::function<void()>>* after) {
  if (chunk->in_use != 0 || mapped_ - chunk->length < base_) return;
  // Keep one empty chunk beyond the base as a spare; retire this one only if another is already empty.
  const bool spare_exists = std::any_of(chunks_.begin(), chunks_.end(), [&](const auto& c) {
    return c.get() != chunk && c->in_use == 0;
  });
  if (!spare_exists) return;
  auto it = std::find_if(chunks_.begin(), chunks_.end(), [&](const auto& c) { return c.get() == chunk; });
  assert(it != chunks_.end());
  std::shared_ptr<ArenaChunk> owned(std::move(*it));
  chunks_.erase(it);
  mapped_ -= owned->length;
  auto unmap = [owned] { munmap(owned->data, owned->mapped); };
  if (owned->slot >= 0 && registrar_ != nullptr) {
    ChunkRegistrar* registrar = registrar_;
    const int32_t slot = owned->slot;
    after->push_back([registrar, slot, unmap] { registrar->retire(slot, unmap); });
  } else {
    after->push_back(unmap);
  }
}

void RegisteredArena::release(const ArenaSpan& span, bool held) {
  std::deque<std::function<void()>> to_run;
  std::vector<std::function<void()>> after;
  {
    std::lock_guard lock(mutex_);
    ArenaChunk& chunk = *span.chunk;
    auto& blocks = chunk.free;
    uint64_t start = static_cast<uint64_t>(span.data - chunk.data);
    uint64_t end = start + span.length;
    assert(end <= chunk.length);
    auto next = blocks.lower_bound(start);
    assert(next == blocks.end() || next->first >= end);  // no double release
    if (next != blocks.end() && next->first == end) {
      end += next->second;
      next = blocks.erase(next);
    }
    if (next != blocks.begin()) {
      auto prev = std::prev(next);
      assert(prev->first + prev->second <= start);
      if (prev->first + prev->second == start) {
        start = prev->first;
        blocks.erase(prev);
      }
    }
    blocks.emplace(start, end - start);
    chunk.in_use -= span.length;
    in_use_ -= span.length;
    if (held) held_ -= span.length;
    ++releases_;
    to_run.swap(waiters_);
    maybe_retire_locked(&chunk, &after);
  }
  for (auto& task : after) task();
  for (auto& waiter : to_run) waiter();
}

void RegisteredArena::mark_held(uint64_t length) {
  std::deque<std::function<void()>> to_run;
  {
    std::lock_guard lock(mutex_);
    held_ += length;
    assert(held_ <= in_use_);
    // Memory the engine held is now the caller's: the engine may use its base again.
    to_run.swap(waiters_);
  }
  for (auto& waiter : to_run) waiter();
}

RegisteredArena::Usage RegisteredArena::usage() const {
  std::lock_guard lock(mutex_);
  return Usage{base_, limit_, mapped_, peak_, in_use_, held_, releases_};
}

}  // namespace ringfetch::engine
