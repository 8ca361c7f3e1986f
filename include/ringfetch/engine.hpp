// Engine: the io_uring (or epoll) threads, the registered arena and the counters. One per process is typical;
// Stores made on it share its threads and memory. All Stores, batches, readers and views should be dropped
// before the Engine (views keep their memory valid regardless).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
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
  unsigned threads = 1;                // engine threads, one ring each
  uint64_t arena_bytes = 256ull << 20; // registered memory for items without a destination (bounds memory in flight)
  Backend backend = Backend::kAuto;    // RINGFETCH_BACKEND=epoll|io_uring in the environment overrides kAuto
  bool register_buffers = true;        // register the arena for READ_FIXED; RINGFETCH_NO_REGISTER=1 turns it off
  bool huge_pages = true;              // madvise(MADV_HUGEPAGE) on the arena
  bool prefault = true;                // fault the arena in at start so no load pays page faults
  unsigned ring_entries = 256;         // submission queue entries per ring
};

// Caller memory registered with every ring for READ_FIXED. Unregisters on destruction.
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

class Engine {
 public:
  // Throws Error(kUnsupported) when Backend::kIoUring was asked for and io_uring is unavailable (the message
  // says why and that Backend::kAuto falls back), Error(kInvalidArgument) for threads == 0.
  explicit Engine(EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Stats stats() const;
  void reset_stats();
  const EngineOptions& options() const noexcept;

  // Registers caller memory (e.g. tensor storage) so that plan items whose destination lies inside it are read
  // with READ_FIXED. Unregistered destinations are still filled in place, with plain reads.
  MemoryRegistration register_memory(std::span<std::byte> memory);

  struct Impl;
  Impl& impl() noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringfetch
