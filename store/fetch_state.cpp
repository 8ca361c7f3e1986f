// FetchState implementation. Arena memory is given to extents strictly in the order the caller consumes items, and
// reads go out as the longest runs of planned requests whose extents have memory (the whole request when memory is
// plentiful). Extent memory passes to the views as soon as its first item is handed over (it then counts as held by
// the caller, not by the engine), and the state drops its own reference once every item of the extent is delivered.
// Reads come from a per-fetch slab of tasks posted intrusively, so a running fetch allocates nothing per request.
#include "store/fetch_state.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace ringfetch::detail {
namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::string range_text(uint64_t offset, uint64_t length) {
  return "bytes " + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
}

}  // namespace

FetchState::~FetchState() {
  if (engine) engine->remove_listener(this);
  // Extents that never finished reading (the fetch was dropped or ended) leave the engine-wide reading count.
  for (const ExtentState& ext : s_.extents)
    if (ext.reading_bytes != 0) engine->counters.sub(engine->counters.arena_bytes_reading, ext.reading_bytes);
}

void FetchState::start() {
  const size_t extent_count = layout.extents.size();
  s_.extents.resize(extent_count);
  s_.item_ready.assign(items.size(), 0);
  std::vector<uint32_t> extent_first_item(extent_count, UINT32_MAX);
  for (size_t e = 0; e < extent_count; ++e) {
    const engine::Extent& planned = layout.extents[e];
    s_.extents[e].remaining = planned.length;
    s_.extents[e].undelivered = planned.item_count;
    for (uint32_t k = 0; k < planned.item_count; ++k)
      extent_first_item[e] = std::min(extent_first_item[e], layout.extent_items[planned.first_item + k]);
  }
  // Memory goes to extents in the order the caller will consume them.
  extent_order_.resize(extent_count);
  for (uint32_t e = 0; e < extent_count; ++e) extent_order_[e] = e;
  std::stable_sort(extent_order_.begin(), extent_order_.end(),
                   [&](uint32_t a, uint32_t b) { return extent_first_item[a] < extent_first_item[b]; });
  // Segments of each extent (CSR), the request of each segment, and each request's priority.
  const size_t segment_count = layout.segments.size();
  segment_request_.resize(segment_count);
  s_.segment_issued.assign(segment_count, 0);
  extent_segment_start_.assign(extent_count + 1, 0);
  request_priority_.assign(layout.requests.size(), UINT32_MAX);
  s_.request_cursor.resize(layout.requests.size());
  for (uint32_t r = 0; r < layout.requests.size(); ++r) {
    const engine::Request& req = layout.requests[r];
    s_.request_cursor[r] = req.first_segment;
    for (uint32_t seg = req.first_segment; seg < req.first_segment + req.segment_count; ++seg) {
      segment_request_[seg] = r;
      const uint32_t e = layout.segments[seg].extent;
      if (e == engine::Segment::kGap) continue;
      ++extent_segment_start_[e + 1];
      request_priority_[r] = std::min(request_priority_[r], extent_first_item[e]);
    }
  }
  for (size_t e = 0; e < extent_count; ++e) extent_segment_start_[e + 1] += extent_segment_start_[e];
  extent_segments_.resize(extent_segment_start_[extent_count]);
  std::vector<uint32_t> fill(extent_segment_start_.begin(), extent_segment_start_.end() - 1);
  for (uint32_t seg = 0; seg < segment_count; ++seg) {
    const uint32_t e = layout.segments[seg].extent;
    if (e != engine::Segment::kGap) extent_segments_[fill[e]++] = seg;
  }
  // Every push onto `pending` is one extent segment, so this reservation is never outgrown.
  std::vector<Pending> pending_storage;
  pending_storage.reserve(extent_segments_.size());
  s_.pending = decltype(s_.pending)(std::greater<>(), std::move(pending_storage));
  // The task slab, made whole now so that dispatching allocates nothing.
  s_.tasks.reserve(max_in_flight);
  s_.free_tasks.reserve(max_in_flight);
  for (unsigned t = 0; t < max_in_flight; ++t) {
    s_.tasks.push_back(std::make_unique<engine::ReadTask>());
    engine::ReadTask* task = s_.tasks.back().get();
    task->on_done = &FetchState::on_read_done;
    task->issuer = this;
    task->posted.run = &FetchState::run_read;
    task->posted.context = task;
    s_.free_tasks.push_back(task);
  }
  for (const ItemSpec& item : items) items_total_ += item.length > 0 ? 1 : 0;
  engine->counters.add(engine->counters.bytes_requested, layout.bytes_requested);
  engine->add_listener(shared_from_this());
  if (engine->stopped.load()) {
    on_engine_stopped();
    return;
  }
  dispatch();
}

bool FetchState::window_full_locked(uint32_t e) const {
  if (s_.ahead_extents == 0) return false;  // the next item's memory is never held back
  return s_.ahead_extents + 1 > read_ahead.extents || s_.ahead_bytes + layout.extents[e].length > read_ahead.bytes;
}

bool FetchState::allocate_extent_locked(uint32_t e) {
  ExtentState& ext = s_.extents[e];
  if (ext.allocated) return true;
  const engine::Extent& planned = layout.extents[e];
  if (in_place(planned)) {
    const ItemSpec& item = items[layout.extent_items[planned.first_item]];
    ext.data = item.destination.data();
    ext.buf_index = engine->slot_for(ext.data, item.length);
    ext.allocated = true;
    return true;
  }
  engine::ArenaSpan span;
  // The waiter may run long after this fetch (and its engine) are gone, when a view outliving them is dropped:
  // it reaches the engine only through a live state. It posts rather than dispatching here because a release
  // can happen under this state's lock; after shutdown it does nothing. One waiter per fetch is parked at a time.
  const uint64_t bytes = align_up(planned.length, alignment);
  if (s_.arena_waiter_parked) {
    if (!engine->arena->try_allocate(bytes, alignment, &span)) return false;
  } else {
    std::weak_ptr<FetchState> weak = weak_from_this();
    auto on_release = [weak] {
      auto self = weak.lock();
      if (!self) return;
      self->engine->pick_worker().try_post([weak] {
        if (auto state = weak.lock()) {
          {
            std::lock_guard lock(state->mutex_);
            state->s_.arena_waiter_parked = false;
          }
          state->dispatch();
        }
      });
    };
    if (!engine->arena->allocate_or_park(bytes, alignment, &span, on_release)) {
      s_.arena_waiter_parked = true;
      return false;
    }
  }
  ext.memory = std::make_shared<engine::ArenaLease>(engine->arena, span);
  ext.data = span.data;
  ext.buf_index = span.buf_index();
  ext.allocated = true;
  ext.reading_bytes = span.length;
  ext.ahead = true;
  ++s_.ahead_extents;
  s_.ahead_bytes += planned.length;
  engine->counters.add(engine->counters.arena_bytes_reading, span.length);
  return true;
}

void FetchState::dispatch_locked(TaskBatch* out) {
  s_.waiting_for_memory = false;
  s_.waiting_for_window = false;
  if (s_.cancelled) return;
  // 1. Memory, strictly in consumption order: whatever holds arena memory is what the caller reaches next, so a
  //    caller that releases views as it goes can never be starved by items it reaches later.
  while (s_.alloc_cursor < extent_order_.size()) {
    const uint32_t e = extent_order_[s_.alloc_cursor];
    if (!in_place(layout.extents[e]) && window_full_locked(e)) {
      s_.waiting_for_window = true;
      break;
    }
    if (!allocate_extent_locked(e)) {
      s_.waiting_for_memory = true;
      engine->counters.add(engine->counters.arena_waits, 1);
      break;
    }
    ++s_.alloc_cursor;
    for (uint32_t k = extent_segment_start_[e]; k < extent_segment_start_[e + 1]; ++k) {
      const uint32_t r = segment_request_[extent_segments_[k]];
      s_.pending.emplace(request_priority_[r], r);
    }
  }
  // 2. Reads: the longest runs of segments that have memory, most urgent request first. With enough memory a
  //    run is the whole planned request; under pressure a request goes out in pieces.
  while (s_.in_flight < max_in_flight && !s_.pending.empty()) {
    if (!issue_next_run_locked(s_.pending.top().second, out)) s_.pending.pop();
  }
}

bool FetchState::issue_next_run_locked(uint32_t r, TaskBatch* out) {
  const engine::Request& req = layout.requests[r];
  const uint32_t end = req.first_segment + req.segment_count;
  auto is_gap = [&](uint32_t seg) { return layout.segments[seg].extent == engine::Segment::kGap; };
  auto has_memory = [&](uint32_t seg) { return is_gap(seg) || s_.extents[layout.segments[seg].extent].allocated; };
  uint32_t& cursor = s_.request_cursor[r];
  while (cursor < end && s_.segment_issued[cursor]) ++cursor;
  uint32_t first = cursor;
  while (first < end && (s_.segment_issued[first] || is_gap(first) || !has_memory(first))) ++first;
  if (first == end) return false;
  uint32_t last = first;
  while (last < end && !s_.segment_issued[last] && has_memory(last)) ++last;
  while (is_gap(last - 1)) --last;  // a run never ends in gap bytes
  std::fill(s_.segment_issued.begin() + first, s_.segment_issued.begin() + last, 1);
  issue_locked(r, first, last, out);
  return true;
}

void FetchState::issue_locked(uint32_t r, uint32_t first, uint32_t end, TaskBatch* out) {
  assert(!s_.free_tasks.empty());  // in_flight < max_in_flight == slab size
  engine::ReadTask* task = s_.free_tasks.back();
  s_.free_tasks.pop_back();
  task->object = objects[layout.requests[r].object];
  task->offset = layout.segments[first].offset;
  task->length = 0;
  task->pieces.clear();
  for (uint32_t seg = first; seg < end; ++seg) {
    const engine::Segment& segment = layout.segments[seg];
    engine::ReadPiece piece;
    piece.length = segment.length;
    if (segment.extent != engine::Segment::kGap) {
      piece.data = s_.extents[segment.extent].data + segment.extent_offset;
      piece.buf_index = s_.extents[segment.extent].buf_index;
    }
    task->pieces.push_back(piece);
    task->length += segment.length;
  }
  task->first_segment = first;
  task->end_segment = end;
  task->worker = &engine->pick_worker();
  task->running = true;
  task->issuer_ref = shared_from_this();
  ++s_.in_flight;
  engine->counters.add(engine->counters.requests, 1);
  out->push_back(task);
}

void FetchState::dispatch() {
  TaskBatch tasks;
  {
    std::lock_guard lock(mutex_);
    if (!s_.ended) dispatch_locked(&tasks);
  }
  post(tasks);
}

void FetchState::post(const TaskBatch& tasks) {
  for (engine::ReadTask* task = tasks.head; task != nullptr;) {
    engine::ReadTask* next = task->next_issued;  // read first: the post may run (and complete) the task inline
    task->worker->post(&task->posted);
    task = next;
  }
}

// On the task's worker: start the read, unless the fetch was cancelled before it got here.
void FetchState::run_read(engine::PostedTask* posted) {
  auto* task = static_cast<engine::ReadTask*>(posted->context);
  auto* self = static_cast<FetchState*>(task->issuer);
  bool cancelled;
  {
    std::lock_guard lock(self->mutex_);
    cancelled = self->s_.cancelled;
  }
  if (cancelled) {
    task->complete(Status(ErrorKind::kCancelled, "fetch cancelled"));
    return;
  }
  // Arena chunks are registered with each ring asynchronously: a slot the ring does not have yet means a plain read.
  engine::Worker* worker = task->worker;
  for (engine::ReadPiece& piece : task->pieces)
    if (piece.buf_index >= 0 && !worker->slot_ready(piece.buf_index)) piece.buf_index = -1;
  self->store->source->start_read(*worker, task);
}

void FetchState::on_read_done(engine::ReadTask* task, Status status) {
  // The task's reference keeps the state alive until this returns (a batch dropped from a callback does not wait).
  std::shared_ptr<FetchState> self = std::static_pointer_cast<FetchState>(std::move(task->issuer_ref));
  self->finish_read(task, status);
}

void FetchState::finish_read(engine::ReadTask* task, const Status& status) {
  std::vector<ItemView> callbacks;
  TaskBatch tasks;
  bool wake;
  {
    std::lock_guard lock(mutex_);
    if (!task->running) return;  // written off when the engine stopped
    assert(s_.in_flight > 0);
    --s_.in_flight;
    task->running = false;
    task->object.reset();
    s_.free_tasks.push_back(task);
    if (status.ok()) engine->counters.add(engine->counters.bytes_fetched, task->length);
    for (uint32_t seg = task->first_segment; seg < task->end_segment; ++seg) {
      const engine::Segment& segment = layout.segments[seg];
      if (segment.extent == engine::Segment::kGap) continue;
      ExtentState& ext = s_.extents[segment.extent];
      if (ext.done) continue;  // ended while the read ran (engine stopped)
      if (!status.ok() && ext.status.ok()) ext.status = status;
      assert(ext.remaining >= segment.length);
      ext.remaining -= segment.length;
      if (ext.remaining == 0) finish_extent_locked(segment.extent, &callbacks);
    }
    if (!s_.ended) dispatch_locked(&tasks);
    if (!callbacks.empty()) ++s_.delivering;
    wake = waiter_may_proceed_locked();
  }
  if (wake) changed_.notify_all();
  post(tasks);
  if (callbacks.empty()) return;
  // wait() and cancel() must not return while callbacks run: the caller may free what they use.
  for (const ItemView& view : callbacks) {
    bool stop;
    {
      std::lock_guard lock(mutex_);
      stop = s_.cancelled && !s_.ended;  // dropped (possibly by an earlier callback): deliver no more
    }
    if (stop) break;
    on_item(view);
  }
  callbacks.clear();  // views released before the batch counts as delivered
  {
    std::lock_guard lock(mutex_);
    --s_.delivering;
    wake = waiter_may_proceed_locked();
  }
  if (wake) changed_.notify_all();
}

// Waking the caller costs a context switch per request; only do it when what it waits for may have happened.
bool FetchState::waiter_may_proceed_locked() const {
  if (s_.cancelled && s_.in_flight == 0) return true;
  if (s_.items_finished == items_total_) return true;
  return s_.awaited_item != SIZE_MAX && s_.item_ready[s_.awaited_item];
}

void FetchState::finish_extent_locked(uint32_t e, std::vector<ItemView>* callbacks) {
  ExtentState& ext = s_.extents[e];
  ext.done = true;
  if (ext.reading_bytes != 0) {
    engine->counters.sub(engine->counters.arena_bytes_reading, ext.reading_bytes);
    ext.reading_bytes = 0;
  }
  const engine::Extent& planned = layout.extents[e];
  for (uint32_t k = 0; k < planned.item_count; ++k) {
    const uint32_t i = layout.extent_items[planned.first_item + k];
    const ItemSpec& item = items[i];
    s_.item_ready[i] = 1;
    ++s_.items_finished;
    if (ext.status.ok()) {
      engine->counters.add(engine->counters.items, 1);
      // A destination item not read in place (O_DIRECT alignment) is filled by one bounded copy.
      if (!item.destination.empty() && !in_place(planned)) {
        std::memcpy(item.destination.data(), ext.data + (item.offset - planned.offset), item.length);
        engine->counters.add(engine->counters.bytes_copied_user, item.length);
      }
    } else {
      engine->counters.add(engine->counters.errors, 1);
    }
    if (on_item) callbacks->push_back(make_view_locked(i));
  }
}

ItemView FetchState::make_view_locked(uint32_t i) {
  const ItemSpec& item = items[i];
  const uint32_t e = layout.item_extent[i];
  ExtentState& ext = s_.extents[e];
  const engine::Extent& planned = layout.extents[e];
  if (ext.ahead) {
    // The first item handed over: the extent's memory is now the caller's to keep or drop.
    ext.ahead = false;
    --s_.ahead_extents;
    s_.ahead_bytes -= planned.length;
    if (ext.memory) ext.memory->mark_held();
  }
  std::shared_ptr<const void> owner = ext.memory;
  assert(ext.undelivered > 0);
  if (--ext.undelivered == 0) ext.memory.reset();  // the views now own the memory
  if (!ext.status.ok()) {
    Status status(ext.status.kind(),
                  "item " + std::to_string(i) + " of " + objects[item.object]->display + " (" +
                      range_text(item.offset, item.length) + "): " + ext.status.message(),
                  ext.status.http_status(), ext.status.s3_code(), ext.status.request_id());
    return ViewFactory::make(i, object_names[item.object], item.offset, {}, nullptr, std::move(status));
  }
  if (!item.destination.empty()) {
    return ViewFactory::make(i, object_names[item.object], item.offset, item.destination, std::move(owner));
  }
  std::span<const std::byte> bytes(ext.data + (item.offset - planned.offset), item.length);
  return ViewFactory::make(i, object_names[item.object], item.offset, bytes, std::move(owner));
}

// Nothing of this fetch in flight, nothing anywhere in the engine reading into arena memory, and no memory released
// for a grace period: only the caller can free memory now, and it is blocked here. Then the limit is exhausted.
bool FetchState::stalled_locked() {
  if (!s_.waiting_for_memory || s_.in_flight != 0 || s_.cancelled ||
      engine->counters.arena_bytes_reading.load() != 0) {
    s_.stall_since_ns = 0;
    return false;
  }
  const engine::RegisteredArena::Usage usage = engine->arena->usage();
  const uint64_t now = engine::monotonic_ns();
  if (s_.stall_since_ns == 0 || usage.releases != s_.stall_releases) {
    s_.stall_since_ns = now;
    s_.stall_releases = usage.releases;
    return false;
  }
  return now - s_.stall_since_ns >= kStallGraceNs;
}

Status FetchState::exhausted_status_locked(size_t i) const {
  const engine::RegisteredArena::Usage usage = engine->arena->usage();
  const ItemSpec& item = items[i];
  return Status(ErrorKind::kResourceExhausted,
                "memory limit of " + std::to_string(usage.limit) + " bytes reached: item " + std::to_string(i) +
                    " of " + objects[item.object]->display + " (" + range_text(item.offset, item.length) +
                    ") needs memory, but " + std::to_string(usage.held) +
                    " bytes are held by views the caller keeps and " + std::to_string(usage.in_use - usage.held) +
                    " by items not yet taken; drop views or raise EngineOptions::memory_limit");
}

void FetchState::end_remaining_locked(const Status& status, std::vector<ItemView>* callbacks) {
  s_.cancelled = true;
  s_.ended = true;
  for (uint32_t e = 0; e < s_.extents.size(); ++e) {
    ExtentState& ext = s_.extents[e];
    if (ext.done) continue;
    if (ext.status.ok()) ext.status = status;
    finish_extent_locked(e, callbacks);
  }
}

void FetchState::deliver_elsewhere(std::vector<ItemView> callbacks) {
  if (callbacks.empty()) return;
  // Callbacks run on engine threads; after shutdown there are none left, and the caller's thread stands in.
  auto self = shared_from_this();
  auto run = [self, callbacks = std::move(callbacks)] {
    for (const ItemView& view : callbacks) self->on_item(view);
    {
      std::lock_guard lock(self->mutex_);
      --self->s_.delivering;
    }
    self->changed_.notify_all();
  };
  {
    std::lock_guard lock(mutex_);
    ++s_.delivering;
  }
  if (!engine->pick_worker().try_post(run)) run();
}

std::optional<ItemView> FetchState::next_view() {
  std::unique_lock lock(mutex_);
  while (s_.next_item < items.size() && items[s_.next_item].length == 0) ++s_.next_item;
  if (s_.next_item >= items.size()) return std::nullopt;
  const size_t i = s_.next_item++;
  s_.awaited_item = i;
  while (!s_.item_ready[i]) {
    if (changed_.wait_for(lock, std::chrono::milliseconds(20), [&] { return s_.item_ready[i] != 0; })) break;
    if (stalled_locked()) {
      std::vector<ItemView> unused;
      end_remaining_locked(exhausted_status_locked(i), &unused);
    }
  }
  s_.awaited_item = SIZE_MAX;
  ItemView view = make_view_locked(static_cast<uint32_t>(i));
  if (!s_.waiting_for_window) return view;
  // Taking this item may have opened the read-ahead window.
  TaskBatch tasks;
  dispatch_locked(&tasks);
  lock.unlock();
  post(tasks);
  return view;
}

Status FetchState::wait_all() {
  std::unique_lock lock(mutex_);
  auto all_done = [&] { return s_.items_finished == items_total_ && s_.delivering == 0; };
  while (!all_done()) {
    if (changed_.wait_for(lock, std::chrono::milliseconds(20), all_done)) break;
    if (stalled_locked()) {
      size_t first_waiting = 0;
      while (first_waiting < items.size() && (items[first_waiting].length == 0 || s_.item_ready[first_waiting]))
        ++first_waiting;
      std::vector<ItemView> callbacks;
      end_remaining_locked(exhausted_status_locked(std::min(first_waiting, items.size() - 1)), &callbacks);
      lock.unlock();
      deliver_elsewhere(std::move(callbacks));
      lock.lock();
    }
  }
  for (const ExtentState& ext : s_.extents)
    if (!ext.status.ok()) return ext.status;
  return {};
}

void FetchState::cancel(bool wait) {
  std::vector<engine::ReadTask*> running;
  std::unique_lock lock(mutex_);
  s_.cancelled = true;
  for (const auto& task : s_.tasks)
    if (task->running) running.push_back(task.get());
  lock.unlock();
  // Ask each worker to stop its reads of this fetch: a stalled network read would otherwise hold the caller
  // until its timeout. A read that completes first is no longer running when the request arrives.
  // (Posted without the lock held: a post may run on this thread when its worker has already stopped.)
  engine::Source* source = store->source.get();
  std::shared_ptr<FetchState> self = shared_from_this();
  for (engine::ReadTask* task : running) {
    engine::Worker* worker = task->worker;
    worker->post([self, source, worker, task] {
      bool still_running;
      {
        std::lock_guard guard(self->mutex_);
        still_running = task->running && task->worker == worker;
      }
      if (still_running) source->cancel_read(*worker, task);
    });
  }
  if (!wait) return;
  lock.lock();
  changed_.wait(lock, [&] { return s_.in_flight == 0 && s_.delivering == 0; });
}

void FetchState::on_engine_stopping() { cancel(false); }

void FetchState::on_engine_stopped() {
  std::vector<ItemView> callbacks;
  {
    std::lock_guard lock(mutex_);
    // Reads still counted in flight will never complete now; their tasks stay in the slab (freed with the state).
    s_.in_flight = 0;
    for (auto& task : s_.tasks) task->running = false;
    end_remaining_locked(Status(ErrorKind::kCancelled, "the engine shut down before the item was read"), &callbacks);
  }
  changed_.notify_all();
  deliver_elsewhere(std::move(callbacks));
}

bool FetchState::in_place(const engine::Extent& planned) const {
  if (!planned.destination) return false;
  if (alignment <= 1) return true;
  const ItemSpec& item = items[layout.extent_items[planned.first_item]];
  return reinterpret_cast<uintptr_t>(item.destination.data()) % alignment == 0 && planned.length % alignment == 0;
}

}  // namespace ringfetch::detail
