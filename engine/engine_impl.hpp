// Engine::Impl: what an Engine owns — workers (one loop each), the registered arena, registered caller memory,
// counters — and the registry that maps URL schemes to sources. Internal to the library.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/registered_arena.hpp"
#include "engine/source.hpp"
#include "engine/url.hpp"
#include "engine/worker.hpp"
#include "ringfetch/engine.hpp"
#include "ringfetch/store.hpp"

namespace ringfetch::engine {

struct StatsCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bytes_requested{0};
  std::atomic<uint64_t> bytes_fetched{0};
  std::atomic<uint64_t> bytes_body{0};
  std::atomic<uint64_t> bytes_copied_user{0};
  std::atomic<uint64_t> items{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> arena_waits{0};
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> tls_handshakes{0};
  std::atomic<uint64_t> tls_resumptions{0};

  void add(std::atomic<uint64_t>& counter, uint64_t value) { counter.fetch_add(value, std::memory_order_relaxed); }
};

using SourceFactory = Status (*)(const Url& root, Engine::Impl& engine, const StoreOptions& options,
                                 std::unique_ptr<Source>* out);
// Registers the source for a URL scheme (called from static initialisers of each layer).
bool register_source_factory(const std::string& scheme, SourceFactory factory);
SourceFactory find_source_factory(const std::string& scheme);

}  // namespace ringfetch::engine

namespace ringfetch {

struct Engine::Impl {
  static constexpr unsigned kBufferSlots = 64;       // registered-buffer table size per ring
  static constexpr uint64_t kScratchBytes = 1 << 20;  // per worker, for gap bytes

  EngineOptions options;
  engine::BackendKind backend = engine::BackendKind::kIoUring;
  std::string fallback_reason;
  bool buffers_registered = false;
  std::shared_ptr<engine::RegisteredArena> arena;
  std::vector<std::unique_ptr<engine::Worker>> workers;
  std::atomic<unsigned> next_worker{0};
  engine::StatsCounters counters;

  struct CallerRegion {
    std::byte* base;
    size_t length;
    int slot;
  };
  std::mutex regions_mutex;
  std::vector<CallerRegion> regions;
  std::vector<bool> slot_used;

  engine::Worker& pick_worker() { return *workers[next_worker.fetch_add(1) % workers.size()]; }
  // Registered slot whose memory holds [p, p+n), or -1.
  int32_t slot_for(const std::byte* p, uint64_t n);
  int32_t arena_slot(const engine::ArenaSpan& span) const {
    return buffers_registered ? static_cast<int32_t>(span.chunk) : -1;
  }
  void unregister_slot(int slot);
};

}  // namespace ringfetch
