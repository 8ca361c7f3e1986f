// FetchState implementation. Arena memory is given to extents strictly in the order the caller consumes items, and
// reads go out as the longest runs of planned requests whose extents have memory (the whole request when memory is
// plentiful). Extent memory is dropped by the state as soon as all its items are delivered, so the views own it.
#include "engine/fetch_state.hpp"

#include <algorithm>
#include <cstring>

namespace ringfetch::detail {
namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::string range_text(uint64_t offset, uint64_t length) {
  return "bytes " + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
}

}  // namespace

void FetchState::start() {
  const size_t extent_count = layout.extents.size();
  extents.resize(extent_count);
  std::vector<uint32_t> extent_first_item(extent_count, UINT32_MAX);
  for (size_t e = 0; e < extent_count; ++e) {
    const engine::Extent& planned = layout.extents[e];
    extents[e].remaining = planned.length;
    extents[e].undelivered = planned.item_count;
    for (uint32_t k = 0; k < planned.item_count; ++k)
      extent_first_item[e] = std::min(extent_first_item[e], layout.extent_items[planned.first_item + k]);
  }
  // Memory goes to extents in the order the caller will consume them.
  extent_order.resize(extent_count);
  for (uint32_t e = 0; e < extent_count; ++e) extent_order[e] = e;
  std::stable_sort(extent_order.begin(), extent_order.end(),
                   [&](uint32_t a, uint32_t b) { return extent_first_item[a] < extent_first_item[b]; });
  // Segments of each extent (CSR), the request of each segment, and each request's priority.
  const size_t segment_count = layout.segments.size();
  segment_request.resize(segment_count);
  segment_issued.assign(segment_count, 0);
  extent_segment_start.assign(extent_count + 1, 0);
  request_priority.assign(layout.requests.size(), UINT32_MAX);
  request_cursor.resize(layout.requests.size());
  for (uint32_t r = 0; r < layout.requests.size(); ++r) {
    const engine::Request& req = layout.requests[r];
    request_cursor[r] = req.first_segment;
    for (uint32_t s = req.first_segment; s < req.first_segment + req.segment_count; ++s) {
      segment_request[s] = r;
      const uint32_t e = layout.segments[s].extent;
      if (e == engine::Segment::kGap) continue;
      ++extent_segment_start[e + 1];
      request_priority[r] = std::min(request_priority[r], extent_first_item[e]);
    }
  }
  for (size_t e = 0; e < extent_count; ++e) extent_segment_start[e + 1] += extent_segment_start[e];
  extent_segments.resize(extent_segment_start[extent_count]);
  std::vector<uint32_t> fill(extent_segment_start.begin(), extent_segment_start.end() - 1);
  for (uint32_t s = 0; s < segment_count; ++s) {
    const uint32_t e = layout.segments[s].extent;
    if (e != engine::Segment::kGap) extent_segments[fill[e]++] = s;
  }
  for (const ItemSlot& item : items) items_total += item.length > 0 ? 1 : 0;
  engine->counters.add(engine->counters.bytes_requested, layout.bytes_requested);
  dispatch();
}

bool FetchState::allocate_extent_locked(uint32_t e) {
  ExtentState& ext = extents[e];
  if (ext.allocated) return true;
  const engine::Extent& planned = layout.extents[e];
  if (in_place(planned)) {
    const ItemSlot& item = items[layout.extent_items[planned.first_item]];
    ext.data = item.destination.data();
    ext.buf_index = engine->slot_for(ext.data, item.length);
    ext.allocated = true;
    return true;
  }
  engine::ArenaSpan span;
  // The waiter may run long after this fetch (and its engine) are gone, when a view outliving them is dropped:
  // it reaches the engine only through a live state. It posts rather than dispatching here because a release
  // can happen under this state's lock.
  // One parked waiter per fetch at a time: every failed dispatch parking another would make each release run
  // (and post) as many dispatches as there were failures.
  const uint64_t bytes = align_up(planned.length, alignment);
  if (arena_waiter_parked) {
    if (!engine->arena->try_allocate(bytes, alignment, &span)) return false;
  } else {
    std::weak_ptr<FetchState> weak = weak_from_this();
    auto on_release = [weak] {
      if (auto self = weak.lock()) {
        self->engine->pick_worker().post([weak] {
          if (auto state = weak.lock()) {
            {
              std::lock_guard lock(state->mutex);
              state->arena_waiter_parked = false;
            }
            state->dispatch();
          }
        });
      }
    };
    if (!engine->arena->allocate_or_park(bytes, alignment, &span, on_release)) {
      arena_waiter_parked = true;
      return false;
    }
  }
  ext.memory = std::make_shared<engine::ArenaLease>(engine->arena, span);
  ext.data = span.data;
  ext.buf_index = engine->arena_slot(span);
  ext.allocated = true;
  return true;
}

void FetchState::dispatch_locked(std::vector<std::pair<engine::Worker*, engine::ReadTask*>>* out) {
  waiting_for_memory = false;
  if (cancelled) return;
  // 1. Memory, strictly in consumption order: whatever holds arena memory is what the caller reaches next, so a
  //    caller that releases views as it goes can never be starved by items it reaches later.
  while (alloc_cursor < extent_order.size()) {
    const uint32_t e = extent_order[alloc_cursor];
    if (!allocate_extent_locked(e)) {
      waiting_for_memory = true;
      engine->counters.add(engine->counters.arena_waits, 1);
      break;
    }
    ++alloc_cursor;
    for (uint32_t k = extent_segment_start[e]; k < extent_segment_start[e + 1]; ++k) {
      const uint32_t r = segment_request[extent_segments[k]];
      pending_requests.emplace(request_priority[r], r);
    }
  }
  // 2. Reads: the longest runs of segments that have memory, most urgent request first. With enough memory a
  //    run is the whole planned request; under pressure a request goes out in pieces.
  while (in_flight < max_in_flight && !pending_requests.empty()) {
    auto first = pending_requests.begin();
    if (!issue_next_run_locked(first->second, out)) pending_requests.erase(first);
  }
}

bool FetchState::issue_next_run_locked(uint32_t r, std::vector<std::pair<engine::Worker*, engine::ReadTask*>>* out) {
  const engine::Request& req = layout.requests[r];
  const uint32_t end = req.first_segment + req.segment_count;
  auto is_gap = [&](uint32_t s) { return layout.segments[s].extent == engine::Segment::kGap; };
  auto has_memory = [&](uint32_t s) { return is_gap(s) || extents[layout.segments[s].extent].allocated; };
  uint32_t& cursor = request_cursor[r];
  while (cursor < end && segment_issued[cursor]) ++cursor;
  uint32_t first = cursor;
  while (first < end && (segment_issued[first] || is_gap(first) || !has_memory(first))) ++first;
  if (first == end) return false;
  uint32_t last = first;
  while (last < end && !segment_issued[last] && has_memory(last)) ++last;
  while (is_gap(last - 1)) --last;  // a run never ends in gap bytes
  std::fill(segment_issued.begin() + first, segment_issued.begin() + last, 1);
  issue_locked(r, first, last, out);
  return true;
}

void FetchState::issue_locked(uint32_t r, uint32_t first, uint32_t end,
                              std::vector<std::pair<engine::Worker*, engine::ReadTask*>>* out) {
  const engine::Request& req = layout.requests[r];
  auto* task = new engine::ReadTask();
  task->object = objects[req.object];
  task->offset = layout.segments[first].offset;
  task->pieces.reserve(end - first);
  for (uint32_t s = first; s < end; ++s) {
    const engine::Segment& seg = layout.segments[s];
    engine::ReadPiece piece;
    piece.length = seg.length;
    if (seg.extent != engine::Segment::kGap) {
      piece.data = extents[seg.extent].data + seg.extent_offset;
      piece.buf_index = extents[seg.extent].buf_index;
    }
    task->pieces.push_back(piece);
    task->length += seg.length;
  }
  std::shared_ptr<FetchState> self = shared_from_this();
  task->done = [self, first, end, length = task->length, task](Status status) {
    self->on_request_done(first, end, length, task, status);
  };
  ++in_flight;
  engine->counters.add(engine->counters.requests, 1);
  engine::Worker* worker = &engine->pick_worker();
  running.emplace(task, worker);
  out->emplace_back(worker, task);
}

void FetchState::post(std::vector<std::pair<engine::Worker*, engine::ReadTask*>>& tasks) {
  engine::Source* source = store->source.get();
  for (auto [worker, task] : tasks) {
    std::shared_ptr<FetchState> self = shared_from_this();
    worker->post([self, source, worker, task] {
      // The task owns itself from here: done() runs once, then the task is deleted.
      auto done = std::move(task->done);
      task->done = [task, done = std::move(done)](Status status) {
        std::unique_ptr<engine::ReadTask> owned(task);
        done(std::move(status));
      };
      bool cancelled_before_start;
      {
        std::lock_guard lock(self->mutex);
        cancelled_before_start = self->cancelled;
      }
      // A cancel that arrived before the read started could not reach it: end it here instead.
      if (cancelled_before_start) task->done(Status(ErrorKind::kCancelled, "fetch cancelled"));
      else source->start_read(*worker, task);
    });
  }
}

void FetchState::dispatch() {
  std::vector<std::pair<engine::Worker*, engine::ReadTask*>> tasks;
  {
    std::lock_guard lock(mutex);
    dispatch_locked(&tasks);
  }
  post(tasks);
}

void FetchState::on_request_done(uint32_t first, uint32_t end, uint64_t length, engine::ReadTask* task,
                                 const Status& status) {
  std::vector<ItemView> callbacks;
  std::vector<std::pair<engine::Worker*, engine::ReadTask*>> tasks;
  bool wake;
  {
    std::lock_guard lock(mutex);
    --in_flight;
    running.erase(task);
    if (status.ok()) engine->counters.add(engine->counters.bytes_fetched, length);
    for (uint32_t s = first; s < end; ++s) {
      const engine::Segment& seg = layout.segments[s];
      if (seg.extent == engine::Segment::kGap) continue;
      ExtentState& ext = extents[seg.extent];
      if (!status.ok() && ext.status.ok()) ext.status = status;
      ext.remaining -= seg.length;
      if (ext.remaining == 0) finish_extent_locked(seg.extent, &callbacks);
    }
    dispatch_locked(&tasks);
    if (!callbacks.empty()) ++delivering;
    wake = waiter_may_proceed_locked();
  }
  if (wake) changed.notify_all();
  post(tasks);
  if (callbacks.empty()) return;
  // wait() and cancel() must not return while callbacks run: the caller may free what they use.
  for (const ItemView& view : callbacks) on_item(view);
  callbacks.clear();  // views released before the batch counts as delivered
  {
    std::lock_guard lock(mutex);
    --delivering;
    wake = waiter_may_proceed_locked();
  }
  if (wake) changed.notify_all();
}

// Waking the caller costs a context switch per request; only do it when what it waits for may have happened.
bool FetchState::waiter_may_proceed_locked() const {
  if (cancelled && in_flight == 0) return true;
  if (items_finished == items_total) return true;
  return awaited_item != SIZE_MAX && items[awaited_item].ready;
}

void FetchState::finish_extent_locked(uint32_t e, std::vector<ItemView>* callbacks) {
  ExtentState& ext = extents[e];
  ext.done = true;
  const engine::Extent& planned = layout.extents[e];
  for (uint32_t k = 0; k < planned.item_count; ++k) {
    const uint32_t i = layout.extent_items[planned.first_item + k];
    ItemSlot& item = items[i];
    item.ready = true;
    ++items_finished;
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
  const ItemSlot& item = items[i];
  const uint32_t e = layout.item_extent[i];
  ExtentState& ext = extents[e];
  const engine::Extent& planned = layout.extents[e];
  std::shared_ptr<void> owner = ext.memory;
  if (--ext.undelivered == 0) ext.memory.reset();  // the views now own the memory
  if (!ext.status.ok()) {
    Status status(ext.status.kind(),
                  "item " + std::to_string(i) + " of " + objects[item.object]->display + " (" +
                      range_text(item.offset, item.length) + "): " + ext.status.message(),
                  ext.status.http_status(), ext.status.s3_code(), ext.status.request_id());
    return ItemView(i, object_names[item.object], item.offset, {}, nullptr, std::move(status));
  }
  if (!item.destination.empty()) {
    return ItemView(i, object_names[item.object], item.offset, item.destination, std::move(owner));
  }
  std::span<const std::byte> bytes(ext.data + (item.offset - planned.offset), item.length);
  return ItemView(i, object_names[item.object], item.offset, bytes, std::move(owner));
}

std::optional<ItemView> FetchState::next_view() {
  std::unique_lock lock(mutex);
  while (next_item < items.size() && items[next_item].length == 0) ++next_item;
  if (next_item >= items.size()) return std::nullopt;
  const size_t i = next_item++;
  awaited_item = i;
  changed.wait(lock, [&] { return items[i].ready; });
  awaited_item = SIZE_MAX;
  return make_view_locked(static_cast<uint32_t>(i));
}

void FetchState::wait_all() {
  std::unique_lock lock(mutex);
  changed.wait(lock, [&] { return items_finished == items_total && delivering == 0; });
}

void FetchState::cancel() {
  std::vector<std::pair<engine::ReadTask*, engine::Worker*>> to_cancel;
  std::unique_lock lock(mutex);
  cancelled = true;
  to_cancel.assign(running.begin(), running.end());
  lock.unlock();
  // Ask each worker to stop its reads of this fetch: a stalled network read would otherwise hold the caller
  // until its timeout. A read that completes first is simply gone from `running` when the request arrives.
  // (Posted without the lock held: a post may run on this thread when its worker has already stopped.)
  engine::Source* source = store->source.get();
  std::shared_ptr<FetchState> self = shared_from_this();
  for (auto [task, worker] : to_cancel) {
    worker->post([self, source, worker, task] {
      bool still_running;
      {
        std::lock_guard guard(self->mutex);
        still_running = self->running.count(task) != 0;
      }
      if (still_running) source->cancel_read(*worker, task);
    });
  }
  lock.lock();
  changed.wait(lock, [&] { return in_flight == 0 && delivering == 0; });
}

bool FetchState::in_place(const engine::Extent& planned) const {
  if (!planned.destination) return false;
  if (alignment <= 1) return true;
  const ItemSlot& item = items[layout.extent_items[planned.first_item]];
  return reinterpret_cast<uintptr_t>(item.destination.data()) % alignment == 0 && planned.length % alignment == 0;
}

}  // namespace ringfetch::detail
