// FetchState: one fetch in flight — the planned layout, each extent's memory and progress, the request scheduler
// (bounded in flight, backpressure from the arena, an optional read-ahead window) and delivery of items in plan order
// or by callback. It is the top layer's core: it drives an engine Source and knows nothing of HTTP or S3.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "engine/engine_impl.hpp"
#include "engine/range_planner.hpp"
#include "engine/source.hpp"
#include "engine/url.hpp"
#include "ringfetch/store.hpp"

namespace ringfetch::detail {

struct StoreState {
  Engine* engine_handle = nullptr;          // for Store::engine(); the caller keeps the Engine alive for that
  std::shared_ptr<Engine::Impl> engine;
  std::string root;
  engine::Url url;
  StoreOptions options;
  std::unique_ptr<engine::Source> source;
  engine::SourceDefaults defaults;  // source defaults with the store options applied
};

// Builds the views handed to callers (ItemView's constructor is private to the library).
struct ViewFactory {
  static ItemView make(size_t index, std::shared_ptr<const std::string> object, uint64_t offset,
                       std::span<const std::byte> bytes, std::shared_ptr<const void> owner, Status status = {}) {
    ItemView view;
    view.index_ = index;
    view.object_ = std::move(object);
    view.offset_ = offset;
    view.bytes_ = bytes;
    view.owner_ = std::move(owner);
    view.status_ = std::move(status);
    return view;
  }
};

// How far ahead of the consumer a fetch may hold memory (the Reader's window). Unbounded for plain fetches, whose
// read-ahead the arena's base bounds.
struct ReadAhead {
  uint64_t bytes = UINT64_MAX;
  size_t extents = SIZE_MAX;
};

class FetchState final : public engine::ShutdownListener, public std::enable_shared_from_this<FetchState> {
 public:
  // How long a fetch waits, with nothing in flight anywhere and no memory released, before it says the memory limit
  // is exhausted (a caller thread may be about to drop views).
  static constexpr uint64_t kStallGraceNs = 300'000'000;

  struct ItemSpec {
    uint32_t object = 0;
    uint64_t offset = 0;
    uint64_t length = 0;
    std::span<std::byte> destination;
  };

  // ---- Set before start(), immutable after: read by any thread without the lock. ----
  std::shared_ptr<StoreState> store;
  std::shared_ptr<Engine::Impl> engine;
  std::vector<std::shared_ptr<engine::SourceObject>> objects;
  std::vector<std::shared_ptr<const std::string>> object_names;
  std::vector<ItemSpec> items;
  engine::PlanLayout layout;
  uint64_t alignment = 1;
  unsigned max_in_flight = 1;
  ReadAhead read_ahead;
  ItemCallback on_item;

  // Starts dispatching requests. Call once after the layout and objects are set.
  void start();
  // Blocks for the next item in plan order; nullopt at the end. Failed items come back with !ok().
  std::optional<ItemView> next_view();
  // Blocks until every item is complete or failed; the first failure, if any.
  Status wait_all();
  // Stops dispatching and, when `wait`, waits for reads in flight (and the callbacks of their items) to end.
  void cancel(bool wait);
  size_t items_total() const noexcept { return items_total_; }
  // Whether a destination extent is read straight into the caller's memory. O_DIRECT can do that only for
  // aligned memory and whole blocks; other destination extents are read into arena memory and copied.
  bool in_place(const engine::Extent& planned) const;

  // ShutdownListener
  void on_engine_stopping() override;
  void on_engine_stopped() override;

  ~FetchState() override;

 private:
  struct ExtentState {
    std::shared_ptr<engine::ArenaLease> memory;  // null for destination extents or once all items are delivered
    std::byte* data = nullptr;
    int32_t buf_index = -1;
    uint64_t remaining = 0;  // bytes not yet read
    uint32_t undelivered = 0;
    bool allocated = false;
    bool done = false;
    uint64_t reading_bytes = 0;  // counted in the engine's arena_bytes_reading until the extent is read
    bool ahead = false;      // counted in the read-ahead window (allocated, no item handed over yet)
    Status status;
  };
  using Pending = std::pair<uint32_t, uint32_t>;  // (priority, request)
  // Reads issued under the lock and posted after it: an intrusive list, so issuing allocates nothing.
  struct TaskBatch {
    engine::ReadTask* head = nullptr;
    engine::ReadTask* tail = nullptr;
    void push_back(engine::ReadTask* task) {
      task->next_issued = nullptr;
      if (tail != nullptr) tail->next_issued = task; else head = task;
      tail = task;
    }
  };

  // ---- Immutable after start(): derived from the layout. ----
  std::vector<uint32_t> extent_order_;          // extents by the first plan index among their items
  std::vector<uint32_t> extent_segment_start_;  // CSR: segments of extent e are extent_segments_[start[e]..start[e+1])
  std::vector<uint32_t> extent_segments_;
  std::vector<uint32_t> segment_request_;
  std::vector<uint32_t> request_priority_;      // smallest plan index among a request's items
  size_t items_total_ = 0;                      // non-empty items

  // ---- Guarded by mutex_. ----
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  struct Synced {
    std::vector<ExtentState> extents;
    std::vector<uint8_t> item_ready;
    size_t alloc_cursor = 0;                   // extent_order_[alloc_cursor...] have no memory yet
    std::vector<uint8_t> segment_issued;
    std::vector<uint32_t> request_cursor;      // first segment of a request that may still be unissued
    std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending;  // requests with segments to issue
    unsigned in_flight = 0;
    unsigned delivering = 0;                   // completions whose callbacks are running outside the lock
    bool waiting_for_memory = false;
    bool waiting_for_window = false;
    bool arena_waiter_parked = false;          // a waiter of this fetch is parked on the arena
    bool cancelled = false;
    bool ended = false;                        // no more reads will complete (engine stopped or memory exhausted)
    uint64_t ahead_bytes = 0;
    size_t ahead_extents = 0;
    size_t next_item = 0;                      // plan-order cursor of next_view()
    size_t awaited_item = SIZE_MAX;            // the item next_view() is blocked on, if any
    size_t items_finished = 0;                 // non-empty items complete or failed
    std::vector<std::unique_ptr<engine::ReadTask>> tasks;  // the slab: at most max_in_flight, reused
    std::vector<engine::ReadTask*> free_tasks;
    uint64_t stall_since_ns = 0;               // see stalled_locked()
    uint64_t stall_releases = 0;
  } s_;

  void dispatch();
  void dispatch_locked(TaskBatch* out);
  bool allocate_extent_locked(uint32_t extent);
  bool window_full_locked(uint32_t extent) const;
  bool issue_next_run_locked(uint32_t request, TaskBatch* out);
  void issue_locked(uint32_t request, uint32_t first_segment, uint32_t end_segment, TaskBatch* out);
  void post(const TaskBatch& tasks);
  static void run_read(engine::PostedTask* posted);
  static void on_read_done(engine::ReadTask* task, Status status);
  void finish_read(engine::ReadTask* task, const Status& status);
  void finish_extent_locked(uint32_t extent, std::vector<ItemView>* callbacks);
  ItemView make_view_locked(uint32_t item);
  bool waiter_may_proceed_locked() const;
  bool stalled_locked();
  Status exhausted_status_locked(size_t item) const;
  // Ends every extent not yet complete with `status` (the fetch issues nothing more); returns views for callbacks.
  void end_remaining_locked(const Status& status, std::vector<ItemView>* callbacks);
  void deliver_elsewhere(std::vector<ItemView> callbacks);
};

// Validates and plans `plan` against the store's source (opening each object once); the state is not started.
std::shared_ptr<FetchState> plan_fetch(const std::shared_ptr<StoreState>& store, const Plan& plan,
                                       ItemCallback on_item, ReadAhead read_ahead = {});

}  // namespace ringfetch::detail
