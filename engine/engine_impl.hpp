// Engine::Impl: what an Engine owns — workers (one loop each), the arena and the registered-buffer slot table shared
// by arena chunks and caller memory, the counters, and the list of live operations to cancel at shutdown. It is
// shared: stores and fetches keep it alive (its workers stopped) when they outlive the Engine object. Internal to the
// library; it knows nothing of HTTP, S3 or the public Store.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/registered_arena.hpp"
#include "engine/worker.hpp"
#include "ringfetch/engine.hpp"

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
  std::atomic<uint64_t> slow_connections{0};
  std::atomic<uint64_t> hedges_sent{0};
  std::atomic<uint64_t> hedges_won{0};
  std::atomic<uint64_t> hedge_bytes_wasted{0};
  std::atomic<uint64_t> max_gap{0};  // of the last fetch planned (not reset)
  // Not reset: bytes of arena memory given to extents whose reads have not all completed (engine-wide). Zero means
  // no read in flight will ever free or deliver arena memory by itself.
  std::atomic<uint64_t> arena_bytes_reading{0};

  void add(std::atomic<uint64_t>& counter, uint64_t value) { counter.fetch_add(value, std::memory_order_relaxed); }
  void sub(std::atomic<uint64_t>& counter, uint64_t value) { counter.fetch_sub(value, std::memory_order_relaxed); }
};

// Something in flight that the engine must end when it shuts down (a fetch). Called without engine locks held.
class ShutdownListener {
 public:
  virtual ~ShutdownListener() = default;
  // Before the workers stop: stop issuing and ask reads in flight to end.
  virtual void on_engine_stopping() = 0;
  // After the workers have stopped: whatever did not complete ends with kCancelled, and waiters wake.
  virtual void on_engine_stopped() = 0;
};

// Throws Error(kUnsupported) naming `call` when the current thread is an engine thread: a blocking call there waits
// for work that only that thread (or a peer waiting on it) can do.
void check_not_engine_thread(const char* call);

}  // namespace ringfetch::engine

namespace ringfetch {

struct Engine::Impl final : engine::ChunkRegistrar {
  static constexpr unsigned kBufferSlots = 1024;      // registered-buffer table size per ring (sparse)
  static constexpr uint64_t kScratchBytes = 1 << 20;  // per worker, for gap bytes; mapped apart from the arena

  EngineOptions options;
  engine::BackendKind backend = engine::BackendKind::kIoUring;
  std::string fallback_reason;
  bool buffers_registered = false;
  std::shared_ptr<engine::RegisteredArena> arena;
  std::vector<std::unique_ptr<engine::Worker>> workers;  // kept (stopped) after shutdown: late posts run inline
  std::atomic<unsigned> next_worker{0};
  std::atomic<bool> stopped{false};
  engine::StatsCounters counters;

  ~Impl() override;
  engine::Worker& pick_worker() { return *workers[next_worker.fetch_add(1) % workers.size()]; }
  // Registered slot whose memory holds [p, p+n), or -1.
  int32_t slot_for(const std::byte* p, uint64_t n);
  void unregister_slot(int slot);

  // Live operations to end at shutdown. Each adds itself once and removes itself when it ends.
  void add_listener(const std::shared_ptr<engine::ShutdownListener>& listener);
  void remove_listener(const engine::ShutdownListener* listener);
  // Ends every live operation and stops the workers. Idempotent; bounded by the workers' drain limit.
  void shutdown();

  // ChunkRegistrar
  int32_t reserve_slot() override;
  void publish(int32_t slot, std::span<std::byte> memory) override;
  void retire(int32_t slot, std::function<void()> done) override;

  struct CallerRegion {
    std::byte* base;
    size_t length;
    int slot;
  };
  std::mutex regions_mutex;  // guards regions and slot_used
  std::vector<CallerRegion> regions;
  std::vector<bool> slot_used;
  std::vector<std::pair<std::byte*, size_t>> scratch_mappings;

  std::mutex listeners_mutex;
  struct ListenerEntry {
    std::weak_ptr<engine::ShutdownListener> listener;
    const engine::ShutdownListener* key;  // for removal by a listener that is being destroyed (weak_ptr expired)
  };
  std::vector<ListenerEntry> listeners;
};

namespace detail {
// The library's access to an Engine's internals (the public header names it as a friend and nothing more).
struct EngineAccess {
  static const std::shared_ptr<Engine::Impl>& impl(const Engine& engine) noexcept { return engine.impl_; }
};
}  // namespace detail

}  // namespace ringfetch
