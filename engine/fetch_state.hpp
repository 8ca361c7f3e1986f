// FetchState: one fetch in flight — the planned layout, each extent's memory and progress, the request
// scheduler (bounded in flight, backpressure from the arena) and delivery of items in plan order or by callback.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine_impl.hpp"
#include "engine/range_planner.hpp"
#include "ringfetch/store.hpp"

namespace ringfetch::detail {

struct StoreState {
  Engine* engine = nullptr;
  std::string root;
  engine::Url url;
  StoreOptions options;
  std::unique_ptr<engine::Source> source;
  engine::SourceDefaults defaults;  // source defaults with the store options applied
};

struct FetchState : std::enable_shared_from_this<FetchState> {
  struct ItemSlot {
    uint32_t object = 0;
    uint64_t offset = 0;
    uint64_t length = 0;
    std::span<std::byte> destination;
    bool ready = false;
  };
  struct ExtentState {
    std::shared_ptr<void> memory;  // arena lease; null for destination extents or once all items are delivered
    std::byte* data = nullptr;
    int32_t buf_index = -1;
    uint64_t remaining = 0;  // bytes not yet read
    uint32_t undelivered = 0;
    bool allocated = false;
    bool done = false;
    Status status;
  };

  std::shared_ptr<StoreState> store;
  Engine::Impl* engine = nullptr;
  std::vector<std::shared_ptr<engine::SourceObject>> objects;
  std::vector<std::shared_ptr<const std::string>> object_names;
  std::vector<ItemSlot> items;
  engine::PlanLayout layout;
  uint64_t alignment = 1;
  unsigned max_in_flight = 1;
  ItemCallback on_item;

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<ExtentState> extents;
  std::vector<uint32_t> extent_order;          // extents by the first plan index among their items
  size_t alloc_cursor = 0;                     // extent_order[alloc_cursor...] have no memory yet
  std::vector<uint32_t> extent_segment_start;  // CSR: segments of extent e are extent_segments[start[e]..start[e+1])
  std::vector<uint32_t> extent_segments;
  std::vector<uint32_t> segment_request;
  std::vector<uint8_t> segment_issued;
  std::vector<uint32_t> request_priority;      // smallest plan index among a request's items
  std::vector<uint32_t> request_cursor;        // first segment of a request that may still be unissued
  std::set<std::pair<uint32_t, uint32_t>> pending_requests;  // (priority, request) with segments to issue
  unsigned in_flight = 0;
  unsigned delivering = 0;       // completions whose callbacks are running outside the lock
  bool waiting_for_memory = false;
  bool arena_waiter_parked = false;  // a waiter of this fetch is parked on the arena
  bool cancelled = false;
  std::unordered_map<engine::ReadTask*, engine::Worker*> running;  // reads in flight and their workers
  size_t next_item = 0;       // plan-order cursor of next()
  size_t awaited_item = SIZE_MAX;  // the item next() is blocked on, if any
  size_t items_finished = 0;  // non-empty items complete or failed
  size_t items_total = 0;     // non-empty items

  // Starts dispatching requests. Call once after the layout and objects are set.
  void start();
  // Blocks for the next item in plan order; nullopt at the end. Failed items come back with !ok().
  std::optional<ItemView> next_view();
  void wait_all();
  // Stops dispatching and waits for reads in flight (and the callbacks of their items) to end.
  void cancel();
  // Whether a destination extent is read straight into the caller's memory. O_DIRECT can do that only for
  // aligned memory and whole blocks (the last block of a file is transferred whole, past the item's end); other
  // destination extents are read into arena memory and copied, like the extents the planner widened.
  bool in_place(const engine::Extent& planned) const;

 private:
  void dispatch_locked(std::vector<std::pair<engine::Worker*, engine::ReadTask*>>* out);
  bool waiter_may_proceed_locked() const;
  bool issue_next_run_locked(uint32_t request, std::vector<std::pair<engine::Worker*, engine::ReadTask*>>* out);
  void issue_locked(uint32_t request, uint32_t first_segment, uint32_t end_segment,
                    std::vector<std::pair<engine::Worker*, engine::ReadTask*>>* out);
  bool allocate_extent_locked(uint32_t extent);
  void post(std::vector<std::pair<engine::Worker*, engine::ReadTask*>>& tasks);
  void dispatch();
  void on_request_done(uint32_t first_segment, uint32_t end_segment, uint64_t length, engine::ReadTask* task,
                       const Status& status);
  void finish_extent_locked(uint32_t extent, std::vector<ItemView>* callbacks);
  ItemView make_view_locked(uint32_t item);
};

// Validates and plans `plan` against the store's source (opening each object once); the state is not started.
std::shared_ptr<FetchState> plan_fetch(const std::shared_ptr<StoreState>& store, const Plan& plan,
                                       ItemCallback on_item);

}  // namespace ringfetch::detail
