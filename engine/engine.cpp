// Engine: picks the backend (io_uring, or epoll with a logged reason), maps and faults in the arena, starts the
// workers, registers the arena with every ring (or records why not), and keeps the counters.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
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

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& e = *impl_;
  if (options.threads == 0) throw Error(ErrorKind::kInvalidArgument, "EngineOptions::threads must be at least 1");
  if (options.ring_entries == 0) throw Error(ErrorKind::kInvalidArgument, "EngineOptions::ring_entries must be > 0");
  e.options = options;
  const Backend backend = effective_backend(options.backend);
  engine::BackendKind kind =
      backend == Backend::kEpoll ? engine::BackendKind::kEpoll : engine::BackendKind::kIoUring;
  if (backend == Backend::kEpoll) e.fallback_reason = "epoll backend requested";

  engine::RegisteredArena::Options arena_options;
  arena_options.bytes = options.arena_bytes + options.threads * Impl::kScratchBytes;
  arena_options.huge_pages = options.huge_pages;
  arena_options.prefault = options.prefault;
  engine::RegisteredArena::create(arena_options, &e.arena).check();

  engine::LoopOptions loop_options;
  loop_options.entries = options.ring_entries;
  kind = start_workers(e, options.threads, backend, kind, loop_options);
  e.backend = kind;
  e.slot_used.assign(Impl::kBufferSlots, false);
  for (unsigned c = 0; c < e.arena->chunk_count(); ++c) e.slot_used[c] = true;

  const bool want_registration = options.register_buffers && !env_true("RINGFETCH_NO_REGISTER") &&
                                 kind == engine::BackendKind::kIoUring;
  if (want_registration) {
    std::string reason;
    bool ok = true;
    for (auto& w : e.workers) {
      w->call([&] {
        ok = ok && w->loop().register_buffer_slots(Impl::kBufferSlots, &reason);
        for (unsigned c = 0; ok && c < e.arena->chunk_count(); ++c)
          ok = w->loop().set_buffer(c, e.arena->chunk(c), &reason);
      });
    }
    e.buffers_registered = ok;
    if (!ok) {
      std::string why = "buffer registration refused (" + reason + "); using plain reads";
      e.fallback_reason = e.fallback_reason.empty() ? why : e.fallback_reason + "; " + why;
      log_fallback_once(why);
    }
  } else if (kind == engine::BackendKind::kIoUring) {
    e.fallback_reason = "buffer registration turned off; using plain reads";
  }

  for (auto& w : e.workers) {
    engine::ArenaSpan scratch;
    if (!e.arena->try_allocate(Impl::kScratchBytes, engine::RegisteredArena::kPageBytes, &scratch))
      throw Error(ErrorKind::kIo, "arena too small for scratch space");
    w->set_scratch({scratch.data, scratch.length}, e.arena_slot(scratch));
  }
}

Engine::~Engine() {
  // Ask every worker to stop before joining any: each drains its own work, and work finishing on one may need
  // another to tidy up.
  for (auto& w : impl_->workers) w->request_stop();
  for (auto& w : impl_->workers) w->stop();
  impl_->workers.clear();
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
  s.backend = impl_->backend == engine::BackendKind::kIoUring ? "io_uring" : "epoll";
  s.buffers_registered = impl_->buffers_registered;
  s.fallback_reason = impl_->fallback_reason;
  return s;
}

void Engine::reset_stats() {
  engine::StatsCounters& c = impl_->counters;
  for (auto* counter : {&c.requests, &c.bytes_requested, &c.bytes_fetched, &c.bytes_body, &c.bytes_copied_user,
                        &c.items, &c.retries, &c.errors, &c.arena_waits,
                        &c.connections_opened, &c.tls_handshakes, &c.tls_resumptions})
    counter->store(0);
}

int32_t Engine::Impl::slot_for(const std::byte* p, uint64_t n) {
  std::lock_guard lock(regions_mutex);
  for (const CallerRegion& r : regions)
    if (p >= r.base && p + n <= r.base + r.length) return r.slot;
  return -1;
}

void Engine::Impl::unregister_slot(int slot) {
  for (auto& w : workers) w->call([&] { w->loop().clear_buffer(static_cast<unsigned>(slot)); });
  std::lock_guard lock(regions_mutex);
  std::erase_if(regions, [&](const CallerRegion& r) { return r.slot == slot; });
  slot_used[static_cast<size_t>(slot)] = false;
}

struct MemoryRegistration::Impl {
  Engine::Impl* engine = nullptr;
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
  MemoryRegistration registration;
  Impl& e = *impl_;
  if (!e.buffers_registered || memory.empty()) return registration;
  int slot = -1;
  {
    std::lock_guard lock(e.regions_mutex);
    for (unsigned s = 0; s < Impl::kBufferSlots; ++s) {
      if (!e.slot_used[s]) {
        slot = static_cast<int>(s);
        e.slot_used[s] = true;
        break;
      }
    }
  }
  if (slot < 0) return registration;  // table full: destinations stay plain reads
  bool ok = true;
  std::string reason;
  for (auto& w : e.workers)
    w->call([&] { ok = ok && w->loop().set_buffer(static_cast<unsigned>(slot), memory, &reason); });
  auto impl = std::make_shared<MemoryRegistration::Impl>();
  impl->engine = &e;
  impl->slot = slot;
  if (!ok) return registration;  // impl's destructor clears the partial registration and frees the slot
  {
    std::lock_guard lock(e.regions_mutex);
    e.regions.push_back({memory.data(), memory.size(), slot});
  }
  registration.impl_ = std::move(impl);
  registration.slot_ = slot;
  return registration;
}

namespace engine {

namespace {
std::map<std::string, SourceFactory>& factories() {
  static std::map<std::string, SourceFactory> registry;
  return registry;
}
}  // namespace

bool register_source_factory(const std::string& scheme, SourceFactory factory) {
  factories()[scheme] = factory;
  return true;
}

SourceFactory find_source_factory(const std::string& scheme) {
  auto it = factories().find(scheme);
  return it == factories().end() ? nullptr : it->second;
}

}  // namespace engine
}  // namespace ringfetch
