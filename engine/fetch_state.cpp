// FetchState implementation. Requests are dispatched in the order of the first plan item they serve, so a caller
// consuming items in plan order always gets memory for the item it waits on next; extent memory is allocated when
// the first request touching it is dispatched, and dropped by the state as soon as all its items are delivered.
// When the arena cannot hold the rest of a request, the part that has memory is issued on its own: an extent
// spanning two requests holds its memory until both are read, so waiting with it could wait forever.
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
  extents.resize(layout.extents.size());
  for (size_t e = 0; e < layout.extents.size(); ++e) {
    extents[e].remaining = layout.extents[e].length;
    extents[e].undelivered = layout.extents[e].item_count;
  }
  // Order requests by the smallest plan index among the items they serve.
  std::vector<uint32_t> first_item(layout.requests.size(), UINT32_MAX);
  for (uint32_t r = 0; r < layout.requests.size(); ++r) {
    const engine::Request& req = layout.requests[r];
    for (uint32_t s = req.first_segment; s < req.first_segment + req.segment_count; ++s) {
      const engine::Segment& seg = layout.segments[s];
      if (seg.extent == engine::Segment::kGap) continue;
      const engine::Extent& ext = layout.extents[seg.extent];
      for (uint32_t k = 0; k < ext.item_count; ++k)
        first_item[r] = std::min(first_item[r], layout.extent_items[ext.first_item + k]);
    }
  }
  request_order.resize(layout.requests.size());
  for (uint32_t r = 0; r < request_order.size(); ++r) request_order[r] = r;
  std::stable_sort(request_order.begin(), request_order.end(),
                   [&](uint32_t a, uint32_t b) { return first_item[a] < first_item[b]; });
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
  std::weak_ptr<FetchState> weak = weak_from_this();
  auto on_release = [weak] {
    if (auto self = weak.lock()) {
      self->engine->pick_worker().post([weak] {
        if (auto state = weak.lock()) state->dispatch();
      });
    }
  };
  if (!engine->arena->allocate_or_park(align_up(planned.length, alignment), alignment, &span, on_release)) {
    return false;
  }
  ext.memory = std::make_shared<engine::ArenaLease>(engine->arena, span);
  ext.data = span.data;
  ext.buf_index = engine->arena_slot(span);
  ext.allocated = true;
  return true;
}

void FetchState::dispatch_locked(std::vector<std::pair<engine::Worker*, engine::ReadTask*>>* out) {
  waiting_for_memory = false;
  while (!cancelled && in_flight < max_in_flight && next_request < request_order.size()) {
    const uint32_t r = request_order[next_request];
    const engine::Request& req = layout.requests[r];
    const uint32_t end = req.first_segment + req.segment_count;
    uint32_t first = req.first_segment + issued_segments;
    if (issued_segments > 0) {
      while (first < end && layout.segments[first].extent == engine::Segment::kGap) ++first;  // nothing to keep
    }
    uint32_t ready = first;  // segments [first, ready) have memory
    while (ready < end) {
      const uint32_t e = layout.segments[ready].extent;
      if (e != engine::Segment::kGap && !allocate_extent_locked(e)) break;
      ++ready;
    }
    if (ready < end) {
      waiting_for_memory = true;
      engine->counters.add(engine->counters.arena_waits, 1);
      while (ready > first && layout.segments[ready - 1].extent == engine::Segment::kGap) --ready;
      if (ready > first) {
        issue_locked(r, first, ready, out);
        issued_segments = ready - req.first_segment;
      }
      return;
    }
    if (first < end) issue_locked(r, first, end, out);
    issued_segments = 0;
    ++next_request;
  }
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
  task->done = [self, first, end, length = task->length](Status status) {
    self->on_request_done(first, end, length, status);
  };
  ++in_flight;
  engine->counters.add(engine->counters.requests, 1);
  out->emplace_back(&engine->pick_worker(), task);
}

void FetchState::post(std::vector<std::pair<engine::Worker*, engine::ReadTask*>>& tasks) {
  engine::Source* source = store->source.get();
  for (auto [worker, task] : tasks) {
    worker->post([source, worker, task] {
      // The task owns itself from here: done() runs once, then the task is deleted.
      auto done = std::move(task->done);
      task->done = [task, done = std::move(done)](Status status) {
        std::unique_ptr<engine::ReadTask> owned(task);
        done(std::move(status));
      };
      source->start_read(*worker, task);
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

void FetchState::on_request_done(uint32_t first, uint32_t end, uint64_t length, const Status& status) {
  std::vector<ItemView> callbacks;
  std::vector<std::pair<engine::Worker*, engine::ReadTask*>> tasks;
  {
    std::lock_guard lock(mutex);
    --in_flight;
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
  }
  changed.notify_all();
  post(tasks);
  if (callbacks.empty()) return;
  // wait() and cancel() must not return while callbacks run: the caller may free what they use.
  for (const ItemView& view : callbacks) on_item(view);
  callbacks.clear();  // views released before the batch counts as delivered
  {
    std::lock_guard lock(mutex);
    --delivering;
  }
  changed.notify_all();
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
                  ext.status.http_status(), ext.status.s3_code());
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
  changed.wait(lock, [&] { return items[i].ready; });
  return make_view_locked(static_cast<uint32_t>(i));
}

void FetchState::wait_all() {
  std::unique_lock lock(mutex);
  changed.wait(lock, [&] { return items_finished == items_total && delivering == 0; });
}

void FetchState::cancel() {
  std::unique_lock lock(mutex);
  cancelled = true;
  changed.wait(lock, [&] { return in_flight == 0 && delivering == 0; });
}

bool FetchState::in_place(const engine::Extent& planned) const {
  if (!planned.destination) return false;
  if (alignment <= 1) return true;
  const ItemSlot& item = items[layout.extent_items[planned.first_item]];
  return reinterpret_cast<uintptr_t>(item.destination.data()) % alignment == 0 && planned.length % alignment == 0;
}

}  // namespace ringfetch::detail
