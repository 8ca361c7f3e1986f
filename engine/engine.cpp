// Engine: picks the backend (io_uring, or epoll with a logged reason), starts the workers, sets up the sparse
// registered-buffer table (scratch first; arena chunks join it as they are made), keeps the counters, and shuts
// down: live fetches are ended with kCancelled, workers drained and joined.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "engine/engine_impl.hpp"

namespace ringfetch {
namespace {

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

bool env_true(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

Backend effective_backend(Backend asked) {
  if (asked != Backend::kAuto) return asked;
  if (env_is("RINGFETCH_BACKEND", "epoll")) return Backend::kEpoll;
  if (env_is("RINGFETCH_BACKEND", "io_uring")) return Backend::kIoUring;
  return Backend::kAuto;
}

void log_fallback_once(const std::string& what) {
  static std::once_flag once;
  std::call_once(once, [&] { std::fprintf(stderr, "ringfetch: %s\n", what.c_str()); });
}

// ---- Worker start-up with fallback (kept apart from the constructor on purpose) ----------------------------------
// In kAuto mode a ring that cannot start on any thread (RLIMIT_MEMLOCK charges ring memory for unprivileged users,
// so the probe's small ring may work and a full one not) is retried with half the entries down to
// kMinRingEntries; if none starts, every thread moves to epoll. One line is logged either way.
constexpr unsigned kMinRingEntries = 8;

engine::BackendKind start_workers(Engine::Impl& e, unsigned threads, Backend backend, engine::BackendKind kind,
                                  engine::LoopOptions loop_options) {
  const bool may_fall_back = kind == engine::BackendKind::kIoUring && backend == Backend::kAuto;
  const unsigned asked_entries = loop_options.entries;
  std::string first_failure;
  for (unsigned i = 0; i < threads; ++i) {
    std::string reason;
    auto worker = engine::Worker::start(i, kind, loop_options, &reason);
    while (!worker && may_fall_back && loop_options.entries > kMinRingEntries) {
      if (first_failure.empty()) first_failure = reason;
      loop_options.entries /= 2;
      worker = engine::Worker::start(i, kind, loop_options, &reason);
    }
    if (!worker && may_fall_back) {
      e.workers.clear();  // the threads started so far run rings; every thread moves to epoll
      e.fallback_reason = "io_uring unavailable (" + reason + "); using the epoll backend";
      log_fallback_once(e.fallback_reason);
      return start_workers(e, threads, Backend::kEpoll, engine::BackendKind::kEpoll, loop_options);
    }
    if (!worker) {
      e.workers.clear();
      throw Error(ErrorKind::kUnsupported,
                  "cannot start engine thread: " + reason +
                      (kind == engine::BackendKind::kIoUring
                           ? "; the io_uring backend was asked for (RINGFETCH_BACKEND=io_uring or Backend::kIoUring):"
                             " unset RINGFETCH_BACKEND (Backend::kAuto) to fall back to epoll"
                           : ""));
    }
    e.workers.push_back(std::move(worker));
  }
  if (loop_options.entries != asked_entries) {
    e.fallback_reason = "io_uring ring of " + std::to_string(asked_entries) + " entries refused (" + first_failure +
                        "); using rings of " + std::to_string(loop_options.entries) + " entries";
    log_fallback_once(e.fallback_reason);
  }
  return kind;
}

}  // namespace

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kIo: return "I/O error";
    case ErrorKind::kNetwork: return "network error";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kHttpStatus: return "HTTP status";
    case ErrorKind::kS3: return "S3 error";
    case ErrorKind::kIntegrity: return "integrity error";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kCancelled: return "cancelled";
    case ErrorKind::kResourceExhausted: return "resource exhausted";
  }
  return "unknown";
}

namespace {
uint64_t default_memory_limit(uint64_t arena_bytes) {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  const uint64_t physical = pages > 0 && page_size > 0 ? uint64_t(pages) * uint64_t(page_size) : (8ull << 30);
  return std::max(arena_bytes, physical / 4);
}

}  // namespace

namespace engine {
void check_not_engine_thread(const char* call) {
  if (Worker::current() != nullptr) {
    throw Error(ErrorKind::kUnsupported,
                std::string(call) +
                    " was called on an engine thread (from a fetch callback); it would wait for that thread and never "
                    "return. Make the call from another thread, or hand the work over to one");
  }
}
}  // namespace engine

Engine::Engine(EngineOptions options) : impl_(std::make_shared<Impl>()) {
  Impl& e = *impl_;
  if (options.threads == 0) throw Error(ErrorKind::kInvalidArgument, "EngineOptions::threads must be at least 1");
  if (options.ring_entries == 0) throw Error(ErrorKind::kInvalidArgument, "EngineOptions::ring_entries must be > 0");
  e.options = options;
  const Backend backend = effective_backend(options.backend);
  engine::BackendKind kind =
      backend == Backend::kEpoll ? engine::BackendKind::kEpoll : engine::BackendKind::kIoUring;
  if (backend == Backend::kEpoll) e.fallback_reason = "epoll backend requested";

  engine::RegisteredArena::Options arena_options;
  arena_options.base_bytes = options.arena_bytes;
  arena_options.limit_bytes = options.memory_limit.value_or(default_memory_limit(options.arena_bytes));
  arena_options.huge_pages = options.huge_pages;
  engine::RegisteredArena::create(arena_options, &e.arena).check();

  engine::LoopOptions loop_options;
  loop_options.entries = options.ring_entries;
  try {
    kind = start_workers(e, options.threads, backend, kind, loop_options);
  } catch (...) {
    impl_->shutdown();
    throw;
  }
  e.backend = kind;
  e.slot_used.assign(Impl::kBufferSlots, false);

  // Scratch for gap bytes: small, registered at once (its slots are the first ones), apart from the arena.
  for (auto& w : e.workers) {
    void* p = mmap(nullptr, Impl::kScratchBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      impl_->shutdown();
      throw Error(ErrorKind::kIo, std::string("cannot map scratch memory: ") + strerror(errno));
    }
    e.scratch_mappings.emplace_back(static_cast<std::byte*>(p), Impl::kScratchBytes);
    w->set_scratch({static_cast<std::byte*>(p), Impl::kScratchBytes}, -1);
  }

  const bool want_registration = options.register_buffers && !env_true("RINGFETCH_NO_REGISTER") &&
                                 kind == engine::BackendKind::kIoUring;
  if (want_registration) {
    std::string reason;
    bool ok = true;
    for (auto& w : e.workers) {
      w->call([&] { ok = ok && w->loop().register_buffer_slots(Impl::kBufferSlots, &reason); });
    }
    for (size_t i = 0; ok && i < e.workers.size(); ++i) {
      const int32_t slot = static_cast<int32_t>(i);
      e.slot_used[i] = true;
      const std::span<std::byte> scratch = e.workers[i]->scratch();
      for (auto& w : e.workers) {
        w->call([&] {
          ok = ok && w->loop().set_buffer(static_cast<unsigned>(slot), scratch, &reason);
          if (ok) w->set_slot_ready(slot, true);
        });
      }
      if (ok) e.workers[i]->set_scratch(scratch, slot);
    }
    e.buffers_registered = ok;
    if (!ok) {
      for (auto& w : e.workers) w->set_scratch(w->scratch(), -1);
      std::string why = "buffer registration refused (" + reason + "); using plain reads";
      e.fallback_reason = e.fallback_reason.empty() ? why : e.fallback_reason + "; " + why;
      log_fallback_once(why);
    }
  } else if (kind == engine::BackendKind::kIoUring) {
    e.fallback_reason = "buffer registration turned off; using plain reads";
  }
  if (e.buffers_registered) e.arena->set_registrar(&e);
}

Engine::~Engine() { impl_->shutdown(); }

Engine::Impl::~Impl() {
  shutdown();
  for (auto [p, n] : scratch_mappings) munmap(p, n);
}

void Engine::Impl::shutdown() {
  if (stopped.exchange(true)) return;
  if (arena) arena->set_registrar(nullptr);
  std::vector<std::shared_ptr<engine::ShutdownListener>> live;
  {
    std::lock_guard lock(listeners_mutex);
    for (const ListenerEntry& entry : listeners)
      if (auto l = entry.listener.lock()) live.push_back(std::move(l));
  }
  for (auto& l : live) l->on_engine_stopping();
  // Ask every worker to stop before joining any: each drains its own work, and work finishing on one may need
  // another to tidy up.
  for (auto& w : workers) w->request_stop();
  for (auto& w : workers) w->stop();
  for (auto& l : live) l->on_engine_stopped();
}

void Engine::Impl::add_listener(const std::shared_ptr<engine::ShutdownListener>& listener) {
  std::lock_guard lock(listeners_mutex);
  // Drop entries of operations that ended without removing themselves (bounded growth).
  std::erase_if(listeners, [](const ListenerEntry& entry) { return entry.listener.expired(); });
  listeners.push_back({listener, listener.get()});
}

void Engine::Impl::remove_listener(const engine::ShutdownListener* listener) {
  std::lock_guard lock(listeners_mutex);
  std::erase_if(listeners, [&](const ListenerEntry& entry) { return entry.key == listener; });
}

int32_t Engine::Impl::reserve_slot() {
  std::lock_guard lock(regions_mutex);
  for (unsigned s = 0; s < kBufferSlots; ++s) {
    if (!slot_used[s]) {
      slot_used[s] = true;
      return static_cast<int32_t>(s);
    }
  }
  return -1;
}

// Each ring registers the chunk when it runs the posted task; reads issued after it on that ring see the slot
// (Worker::slot_ready). A ring that refuses leaves the slot unready there: its reads into the chunk are plain.
void Engine::Impl::publish(int32_t slot, std::span<std::byte> memory) {
  for (auto& w : workers) {
    engine::Worker* worker = w.get();
    worker->try_post([worker, slot, memory] {
      std::string reason;
      const bool ok = worker->loop().set_buffer(static_cast<unsigned>(slot), memory, &reason);
      worker->set_slot_ready(slot, ok);
      if (!ok) log_fallback_once("arena chunk registration refused (" + reason + "); its reads are plain reads");
    });
  }
}

void Engine::Impl::retire(int32_t slot, std::function<void()> done) {
  struct Countdown {
    std::atomic<size_t> left{0};
    std::function<void()> done;
    int32_t slot = -1;
    Engine::Impl* engine = nullptr;
  };
  auto countdown = std::make_shared<Countdown>();
  countdown->left = workers.size();
  countdown->done = std::move(done);
  countdown->slot = slot;
  countdown->engine = this;
  auto finish_one = [countdown] {
    if (countdown->left.fetch_sub(1) == 1) {
      countdown->done();
      std::lock_guard lock(countdown->engine->regions_mutex);
      countdown->engine->slot_used[static_cast<size_t>(countdown->slot)] = false;
    }
  };
  for (auto& w : workers) {
    engine::Worker* worker = w.get();
    if (!worker->try_post([worker, slot, finish_one] {
          worker->set_slot_ready(slot, false);
          worker->loop().clear_buffer(static_cast<unsigned>(slot));
          finish_one();
        })) {
      finish_one();  // the ring is gone, and its registrations with it
    }
  }
}

const EngineOptions& Engine::options() const noexcept { return impl_->options; }

Stats Engine::stats() const {
  const engine::StatsCounters& c = impl_->counters;
  Stats s;
  s.requests = c.requests.load();
  s.bytes_requested = c.bytes_requested.load();
  s.bytes_fetched = c.bytes_fetched.load();
  s.bytes_body = c.bytes_body.load();
  s.bytes_copied_user = c.bytes_copied_user.load();
  s.items = c.items.load();
  s.retries = c.retries.load();
  s.errors = c.errors.load();
  s.arena_waits = c.arena_waits.load();
  s.connections_opened = c.connections_opened.load();
  s.tls_handshakes = c.tls_handshakes.load();
  s.tls_resumptions = c.tls_resumptions.load();
  s.slow_connections = c.slow_connections.load();
  s.hedges_sent = c.hedges_sent.load();
  s.hedges_won = c.hedges_won.load();
  s.hedge_bytes_wasted = c.hedge_bytes_wasted.load();
  s.max_gap = c.max_gap.load();
  const engine::RegisteredArena::Usage usage = impl_->arena->usage();
  s.arena_base_bytes = usage.base;
  s.memory_limit_bytes = usage.limit;
  s.arena_bytes = usage.mapped;
  s.arena_peak_bytes = usage.peak;
  s.arena_in_use_bytes = usage.in_use;
  s.bytes_held_by_views = usage.held;
  s.backend = impl_->backend == engine::BackendKind::kIoUring ? "io_uring" : "epoll";
  s.buffers_registered = impl_->buffers_registered;
  s.fallback_reason = impl_->fallback_reason;
  return s;
}

void Engine::reset_stats() {
  engine::StatsCounters& c = impl_->counters;
  for (auto* counter : {&c.requests, &c.bytes_requested, &c.bytes_fetched, &c.bytes_body, &c.bytes_copied_user,
                        &c.items, &c.retries, &c.errors, &c.arena_waits, &c.connections_opened, &c.tls_handshakes,
                        &c.tls_resumptions, &c.slow_connections, &c.hedges_sent, &c.hedges_won,
                        &c.hedge_bytes_wasted})
    counter->store(0);
}

int32_t Engine::Impl::slot_for(const std::byte* p, uint64_t n) {
  std::lock_guard lock(regions_mutex);
  for (const CallerRegion& r : regions)
    if (p >= r.base && p + n <= r.base + r.length) return r.slot;
  return -1;
}

void Engine::Impl::unregister_slot(int slot) {
  for (auto& w : workers) {
    w->call([&] {
      w->set_slot_ready(slot, false);
      w->loop().clear_buffer(static_cast<unsigned>(slot));
    });
  }
  std::lock_guard lock(regions_mutex);
  std::erase_if(regions, [&](const CallerRegion& r) { return r.slot == slot; });
  slot_used[static_cast<size_t>(slot)] = false;
}

struct MemoryRegistration::Impl {
  std::shared_ptr<Engine::Impl> engine;
  int slot = -1;
  ~Impl() {
    if (engine != nullptr && slot >= 0) engine->unregister_slot(slot);
  }
};

// The slot moves with the ownership: a moved-from registration reports registered() == false.
MemoryRegistration::MemoryRegistration(MemoryRegistration&& other) noexcept
    : impl_(std::move(other.impl_)), slot_(std::exchange(other.slot_, -1)) {}
MemoryRegistration& MemoryRegistration::operator=(MemoryRegistration&& other) noexcept {
  if (this != &other) {
    impl_ = std::move(other.impl_);  // unregisters what this held
    slot_ = std::exchange(other.slot_, -1);
  }
  return *this;
}
MemoryRegistration::~MemoryRegistration() = default;

MemoryRegistration Engine::register_memory(std::span<std::byte> memory) {
  engine::check_not_engine_thread("Engine::register_memory");
  MemoryRegistration registration;
  Impl& e = *impl_;
  if (!e.buffers_registered || memory.empty() || e.stopped.load()) return registration;
  const int slot = e.reserve_slot();
  if (slot < 0) return registration;  // table full: destinations stay plain reads
  bool ok = true;
  std::string reason;
  auto impl = std::make_shared<MemoryRegistration::Impl>();
  impl->engine = impl_;
  impl->slot = slot;
  for (auto& w : e.workers) {
    w->call([&] {
      ok = ok && w->loop().set_buffer(static_cast<unsigned>(slot), memory, &reason);
      if (ok) w->set_slot_ready(slot, true);
    });
  }
  if (!ok) return registration;  // impl's destructor clears the partial registration and frees the slot
  {
    std::lock_guard lock(e.regions_mutex);
    e.regions.push_back({memory.data(), memory.size(), slot});
  }
  registration.impl_ = std::move(impl);
  registration.slot_ = slot;
  return registration;
}

}  // namespace ringfetch
