// RegisteredArena: the engine's memory for items without a caller destination. It is a set of chunks, each its own
// mapping, made on demand and registered (through a ChunkRegistrar) into a sparse buffer table, so start-up touches
// no memory and a small load faults in only what it uses. Two bounds:
//   - base bytes: memory the engine itself may hold (reads in flight, items not yet delivered); beyond it the
//     scheduler waits for views to be dropped. Chunks up to the base are kept once made.
//   - limit bytes: everything, views the caller keeps included. Chunks beyond the base are unmapped when they fall
//     empty (one spare is kept, so a steady load does not map and register the same memory over and over).
// A span never straddles chunks, so a read into it has one registered slot (READ_FIXED) or none (plain read).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "ringfetch/error.hpp"

namespace ringfetch::engine {

struct ArenaChunk {
  std::byte* data = nullptr;
  uint64_t length = 0;       // usable bytes
  uint64_t mapped = 0;       // mapping length (huge-page rounded)
  // Registered-buffer slot, or -1 (plain reads). Written under the arena's lock; read by ring threads without it
  // (a span's buf_index), and cleared at engine shutdown while they may still be draining: hence atomic.
  std::atomic<int32_t> slot{-1};
  std::map<uint64_t, uint64_t> free;  // offset -> length of free blocks
  uint64_t in_use = 0;
};

struct ArenaSpan {
  std::byte* data = nullptr;
  uint64_t length = 0;
  ArenaChunk* chunk = nullptr;
  int32_t buf_index() const noexcept { return chunk != nullptr ? chunk->slot.load(std::memory_order_relaxed) : -1; }
};

// How the arena gets chunks into (and out of) the rings' buffer tables. Implemented by the engine.
class ChunkRegistrar {
 public:
  virtual ~ChunkRegistrar() = default;
  // A slot for a new chunk, or -1 when none is free or registration is off. Called under the arena's lock.
  virtual int32_t reserve_slot() = 0;
  // Registers `memory` in `slot` on every ring, asynchronously (a read issued later on a ring sees it).
  virtual void publish(int32_t slot, std::span<std::byte> memory) = 0;
  // Clears `slot` on every ring, then runs `done` (which unmaps): memory must stay mapped until then.
  virtual void retire(int32_t slot, std::function<void()> done) = 0;
};

class RegisteredArena : public std::enable_shared_from_this<RegisteredArena> {
 public:
  static constexpr uint64_t kMinAlignment = 64;
  static constexpr uint64_t kPageBytes = 4096;
  static constexpr uint64_t kMaxChunkBytes = 1ull << 30;  // one registered buffer holds at most 1 GiB
  static constexpr uint64_t kMinChunkBytes = 2ull << 20;
  static constexpr uint64_t kMaxGrowthChunkBytes = 256ull << 20;
  static constexpr size_t kMaxChunks = 4096;  // a bound on the chunk table, far above any limit in practice

  struct Options {
    uint64_t base_bytes = 256ull << 20;
    uint64_t limit_bytes = 1ull << 32;
    bool huge_pages = true;
  };

  struct Usage {
    uint64_t base = 0;
    uint64_t limit = 0;
    uint64_t mapped = 0;      // bytes of chunks mapped now
    uint64_t peak = 0;        // most bytes mapped at once
    uint64_t in_use = 0;      // bytes allocated
    uint64_t held = 0;        // of in_use, bytes owned only by views the caller keeps
    uint64_t releases = 0;    // spans released so far (progress marker for stall detection)
  };

  // Checks the options; maps nothing. Errors: kInvalidArgument for a zero base or a limit below the base.
  static Status create(const Options& options, std::shared_ptr<RegisteredArena>* out);
  ~RegisteredArena();
  RegisteredArena(const RegisteredArena&) = delete;
  RegisteredArena& operator=(const RegisteredArena&) = delete;

  // The registrar used for chunks made from now on; nullptr detaches it (engine shutdown: the rings are gone).
  void set_registrar(ChunkRegistrar* registrar);

  // A span of `length` bytes, mapping a new chunk when none has room and the bounds allow it. Fails when engine-held
  // memory (in use minus held by views) would pass the base (unless it is zero: one allocation always may go
  // ahead), or when no chunk has room and a new one would pass the limit.
  bool try_allocate(uint64_t length, uint64_t alignment, ArenaSpan* out);
  // try_allocate, or, atomically with the failure, park `waiter` (FIFO) to run once after the next release.
  bool allocate_or_park(uint64_t length, uint64_t alignment, ArenaSpan* out, std::function<void()> waiter);
  // Returns a span; `held` says whether it was counted as held by views. Runs the parked waiters in order.
  void release(const ArenaSpan& span, bool held);
  // Moves a span's bytes between "engine" and "held by views" (see Usage::held).
  void mark_held(uint64_t length);

  // Whether a span of `length` bytes could ever be allocated (it fits the limit).
  bool fits_limit(uint64_t length) const noexcept;
  Usage usage() const;
  uint64_t base_bytes() const noexcept { return base_; }
  uint64_t limit_bytes() const noexcept { return limit_; }

 private:
  RegisteredArena() = default;
  bool allocate_locked(uint64_t length, uint64_t alignment, ArenaSpan* out, std::vector<std::function<void()>>* after);
  bool allocate_in_chunk(ArenaChunk& chunk, uint64_t length, uint64_t alignment, ArenaSpan* out);
  ArenaChunk* grow_locked(uint64_t length, std::vector<std::function<void()>>* after);
  void maybe_retire_locked(ArenaChunk* chunk, std::vector<std::function<void()>>* after);
  uint64_t chunk_bytes_for(uint64_t length) const noexcept;

  uint64_t base_ = 0;
  uint64_t limit_ = 0;
  bool huge_pages_ = true;
  mutable std::mutex mutex_;
  ChunkRegistrar* registrar_ = nullptr;           // guarded by mutex_
  std::vector<std::unique_ptr<ArenaChunk>> chunks_;  // guarded by mutex_; in creation order
  uint64_t mapped_ = 0;
  uint64_t peak_ = 0;
  uint64_t in_use_ = 0;
  uint64_t held_ = 0;
  uint64_t releases_ = 0;
  std::deque<std::function<void()>> waiters_;
};

// Owns one allocation; releases it on destruction. Shared by the views of the items it holds; once the engine has
// handed every item of it to the caller it is marked held (it then counts as memory the caller keeps).
class ArenaLease {
 public:
  ArenaLease(std::shared_ptr<RegisteredArena> arena, ArenaSpan span) : arena_(std::move(arena)), span_(span) {}
  ~ArenaLease() { arena_->release(span_, held_.load()); }
  ArenaLease(const ArenaLease&) = delete;
  ArenaLease& operator=(const ArenaLease&) = delete;
  const ArenaSpan& span() const noexcept { return span_; }
  void mark_held() {
    if (!held_.exchange(true)) arena_->mark_held(span_.length);
  }

 private:
  std::shared_ptr<RegisteredArena> arena_;
  ArenaSpan span_;
  std::atomic<bool> held_{false};
};

}  // namespace ringfetch::engine
