// Engine: the io_uring (or epoll) threads, the memory items land in, and the counters. One per process is typical;
// Stores made on it share its threads and memory.
//
// Threading: every Engine member function may be called from any thread, concurrently. Calls that wait for the
// engine's threads (register_memory) fail with Error(kUnsupported) when made on an engine thread (from a fetch
// callback). Destroying the Engine ends every fetch still in flight with Error(kCancelled) and returns in bounded
// time; Stores, batches, readers and views may outlive it (views keep their memory valid, other calls then fail
// with kCancelled). Do not destroy an Engine from one of its own callbacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "ringfetch/stats.hpp"

namespace ringfetch {

enum class Backend {
  kAuto,     // io_uring when the kernel allows it, else epoll (logged once, reported in stats().fallback_reason)
  kIoUring,  // io_uring or an Error saying why it is unavailable
  kEpoll,    // plain syscalls on readiness; never io_uring
};

struct EngineOptions {
  unsigned threads = 1;  // engine threads, one ring each
  // Memory the engine may hold for items in flight and not yet handed over (per fetch and in total). It bounds
  // read-ahead, not what the caller keeps: views the caller holds count against memory_limit instead. Nothing is
  // mapped at start; memory is mapped and registered in chunks as loads need it.
  uint64_t arena_bytes = 256ull << 20;
  // All item memory, views the caller keeps included. When it is reached and every byte is held by the caller, the
  // blocked call throws Error(kResourceExhausted). Default: a quarter of physical memory (at least arena_bytes).
  std::optional<uint64_t> memory_limit;
  Backend backend = Backend::kAuto;    // RINGFETCH_BACKEND=epoll|io_uring in the environment overrides kAuto
  bool register_buffers = true;        // register memory for READ_FIXED; RINGFETCH_NO_REGISTER=1 turns it off
  bool huge_pages = true;              // madvise(MADV_HUGEPAGE) on arena chunks
  unsigned ring_entries = 256;         // submission queue entries per ring
};

class Engine;

// Caller memory registered with every ring for READ_FIXED (e.g. tensor storage that plan items fill in place).
// Unregisters on destruction. Movable; not copyable.
class MemoryRegistration {
 public:
  MemoryRegistration() = default;
  MemoryRegistration(MemoryRegistration&&) noexcept;
  MemoryRegistration& operator=(MemoryRegistration&&) noexcept;
  ~MemoryRegistration();
  bool registered() const noexcept { return slot_ >= 0; }  // false when the kernel refused (reads stay in place)

 private:
  friend class Engine;
  struct Impl;
  std::shared_ptr<Impl> impl_;
  int slot_ = -1;
};

namespace detail {
struct EngineAccess;
}

class Engine {
 public:
  // Throws Error(kUnsupported) when Backend::kIoUring was asked for and io_uring is unavailable (the message
  // says why and that Backend::kAuto falls back), Error(kInvalidArgument) for threads == 0, ring_entries == 0,
  // arena_bytes == 0 or a memory_limit below arena_bytes.
  explicit Engine(EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Stats stats() const;
  void reset_stats();  // zeroes the counters (not the arena figures)
  const EngineOptions& options() const noexcept;

  // Registers caller memory so that plan items whose destination lies inside it are read with READ_FIXED.
  // Unregistered destinations are still filled in place, with plain reads. Returns an unregistered handle when
  // registration is off or refused. Throws Error(kUnsupported) on an engine thread.
  MemoryRegistration register_memory(std::span<std::byte> memory);

  struct Impl;  // internal; opaque to embedders

 private:
  friend struct detail::EngineAccess;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ringfetch
