// Source: the seam between the planner/scheduler and a transport (file, http, s3). The scheduler says "read
// [offset, offset+length) of this object into these pieces of memory" on a worker thread; the source issues the
// I/O on that worker's loop and reports once, on the same thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/worker.hpp"
#include "ringfetch/error.hpp"
#include "ringfetch/stats.hpp"

namespace ringfetch::engine {

struct StatsCounters;

struct SourceDefaults {
  uint64_t max_gap = 0;
  uint64_t part_size = 8ull << 20;
  uint64_t alignment = 1;        // O_DIRECT: 4096
  unsigned max_in_flight = 32;   // requests in flight per fetch
};

// An opened object: its key, its size and whatever the source needs to read it (fd, URL, pinned ETag).
class SourceObject {
 public:
  static constexpr uint64_t kUnknownSize = UINT64_MAX;
  virtual ~SourceObject() = default;
  std::string key;
  std::string display;  // URL for messages
  uint64_t size = kUnknownSize;
};

// One destination piece of a request. data == nullptr means "gap bytes: read them into the worker's scratch".
struct ReadPiece {
  std::byte* data = nullptr;
  uint64_t length = 0;
  int32_t buf_index = -1;  // registered slot holding data, or -1
};

// Per-read state a source keeps with a task. A task is reused for many reads (a fetch keeps a slab of them), so a
// source allocates its state once per task and resets it per read.
struct SourceRead {
  virtual ~SourceRead() = default;
};

// One read: [offset, offset+length) of `object` into consecutive pieces. Owned by the fetch that issues it and reused
// across reads; the source must call complete() exactly once per start_read, on the worker thread that started it.
struct ReadTask {
  using DoneFn = void (*)(ReadTask* task, Status status);

  std::shared_ptr<SourceObject> object;
  uint64_t offset = 0;
  uint64_t length = 0;            // sum of piece lengths
  std::vector<ReadPiece> pieces;  // consecutive: piece k starts where k-1 ended
  void* source_state = nullptr;   // the source's per-read state while running, for cancel_read
  std::unique_ptr<SourceRead> source_read;  // the source's reusable state (see SourceRead)

  // The issuer's completion hook and its context (set by the issuer, not by sources).
  DoneFn on_done = nullptr;
  void* issuer = nullptr;
  uint32_t first_segment = 0;
  uint32_t end_segment = 0;
  Worker* worker = nullptr;       // where the read runs
  std::shared_ptr<void> issuer_ref;  // keeps the issuer alive while the read runs
  bool running = false;           // issued and not yet completed (guarded by the issuer's lock)
  PostedTask posted;              // intrusive link for Worker::post
  ReadTask* next_issued = nullptr;  // the issuer's intrusive list of reads to post

  void complete(Status status) { on_done(this, std::move(status)); }
};

class Source {
 public:
  virtual ~Source() = default;
  virtual SourceDefaults defaults() const = 0;
  // Opens an object, synchronously. With need_size the size must be known on success (a network source sends
  // a HEAD); without it the size may stay unknown (kUnknownSize) and the source checks it as responses arrive.
  virtual Status open_object(const std::string& key, bool need_size, std::shared_ptr<SourceObject>* out) = 0;
  // Starts `task` on `worker` (called on that worker's thread). The source owns any per-read state.
  virtual void start_read(Worker& worker, ReadTask* task) = 0;
  // Asks a read in flight to end early (on `worker`'s thread, while the read is running); it still calls done(),
  // with kCancelled or its real result. Sources whose reads always finish promptly need not override it.
  virtual void cancel_read(Worker& worker, ReadTask* task) {
    (void)worker;
    (void)task;
  }
  // The max_gap measurements suggest (first-byte latency x per-connection throughput), for fetches whose caller
  // left max_gap at its default; 0: nothing measured yet (the default applies).
  virtual uint64_t measured_max_gap() const { return 0; }
};

}  // namespace ringfetch::engine
