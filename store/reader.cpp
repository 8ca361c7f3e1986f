// Reader: sequential, DCP-style access to one object on top of a FetchBatch. With ranges, the batch holds one item
// per range (touching ranges stay apart, each with its own memory; only overlapping ones are merged) and the reader
// walks it forward while a bounded window of the next ranges is fetched in parallel; with no ranges, the items are
// part_size pieces of the whole object and a backward seek past the current piece restarts the stream there.
#include <algorithm>
#include <cstring>

#include "store/fetch_state.hpp"

namespace ringfetch::detail {

struct ReaderState {
  std::shared_ptr<StoreState> store;
  std::string object;
  uint64_t object_size = 0;
  bool whole_object = false;
  std::vector<Range> ranges;    // sorted, disjoint, non-empty
  ReadAhead window;
  FetchBatch batch;
  size_t batch_next = 0;        // index of the range the batch delivers next
  std::optional<ItemView> current;
  size_t current_index = SIZE_MAX;
  uint64_t position = 0;
};

}  // namespace ringfetch::detail

namespace ringfetch {
namespace {

constexpr char kSequentialOnly[] =
    "only sequential access over the given ranges is supported; open the reader without ranges to stream the "
    "whole object, or fetch the bytes with Store::fetch";

[[noreturn]] void unsupported(const detail::ReaderState& s, const std::string& what) {
  throw Error(ErrorKind::kUnsupported, "reader of '" + s.object + "': " + what + ": " + kSequentialOnly);
}

std::vector<Range> normalize(std::vector<Range> ranges) {
  std::erase_if(ranges, [](const Range& r) { return r.length == 0; });
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.offset < b.offset; });
  std::vector<Range> merged;
  for (const Range& r : ranges) {
    // Ranges that only touch stay apart: DCP items sit back to back, and each must be its own item.
    if (!merged.empty() && r.offset < merged.back().offset + merged.back().length) {
      const uint64_t end = std::max(merged.back().offset + merged.back().length, r.offset + r.length);
      merged.back().length = end - merged.back().offset;
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

// Index of the range holding `pos`, or of the first range after it; ranges.size() when past all of them.
size_t range_at_or_after(const std::vector<Range>& ranges, uint64_t pos) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), pos,
                             [](uint64_t p, const Range& r) { return p < r.offset + r.length; });
  return static_cast<size_t>(it - ranges.begin());
}

}  // namespace

struct ReaderAccess {
  static void restart(detail::ReaderState& s, size_t first) {
    s.current.reset();
    s.current_index = SIZE_MAX;
    s.batch = FetchBatch();
    Plan plan;
    for (size_t i = first; i < s.ranges.size(); ++i) plan.add(s.object, s.ranges[i].offset, s.ranges[i].length);
    auto state = detail::plan_fetch(s.store, plan, nullptr, s.window);
    state->start();
    s.batch = FetchBatch(std::move(state));
    s.batch_next = first;
  }
};

Reader::Reader(std::unique_ptr<detail::ReaderState> state) : state_(std::move(state)) {}
Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&&) noexcept = default;
Reader::~Reader() = default;

uint64_t Reader::tell() const noexcept { return state_->position; }
uint64_t Reader::size() const noexcept { return state_->object_size; }

namespace {

// Makes range `index` current, consuming (and releasing) the ranges before it.
void advance_to(detail::ReaderState& s, size_t index) {
  if (s.current_index == index) return;
  // Backward in a whole-object stream, or a retry of a range whose fetch failed: fetch again from there.
  if (index < s.batch_next) ReaderAccess::restart(s, index);
  s.current.reset();  // release the previous range's memory before waiting for the next
  while (s.batch_next <= index) {
    // Counted before next() can throw: a failed range is consumed, so the batch and batch_next stay in step.
    const size_t range = s.batch_next++;
    std::optional<ItemView> view = s.batch.next();
    if (range == index) s.current = std::move(view);
  }
  s.current_index = index;
}

}  // namespace

ItemView Reader::read(size_t n) {
  detail::ReaderState& s = *state_;
  if (n == kAll && !s.whole_object) unsupported(s, "read() of the whole object");
  if (s.position >= s.object_size || n == 0) return ItemView();
  const size_t index = range_at_or_after(s.ranges, s.position);
  if (index == s.ranges.size()) {
    if (s.whole_object) return ItemView();
    unsupported(s, "read at byte " + std::to_string(s.position) + " is past the last given range");
  }
  const Range& range = s.ranges[index];
  if (s.position < range.offset) {
    unsupported(s, "read at byte " + std::to_string(s.position) + " falls outside the given ranges");
  }
  if (s.current_index != SIZE_MAX && index < s.current_index && !s.whole_object) {
    unsupported(s, "read moves back from range " + std::to_string(s.current_index) + " to " + std::to_string(index));
  }
  advance_to(s, index);
  const uint64_t inner = s.position - range.offset;
  const uint64_t take = std::min<uint64_t>(n, range.length - inner);
  s.position += take;
  return s.current->slice(inner, take);
}

size_t Reader::readinto(std::span<std::byte> out) {
  size_t copied = 0;
  while (copied < out.size()) {
    const uint64_t before = state_->position;
    const size_t index = range_at_or_after(state_->ranges, before);
    // Stop quietly at a gap after some bytes were copied; a read that starts in a gap is an error.
    if (copied > 0 && (index == state_->ranges.size() || state_->ranges[index].offset > before)) break;
    ItemView view = read(out.size() - copied);
    if (view.size() == 0) break;
    std::memcpy(out.data() + copied, view.bytes().data(), view.size());
    copied += view.size();
  }
  return copied;
}

uint64_t Reader::seek(int64_t offset, int whence) {
  detail::ReaderState& s = *state_;
  int64_t base = 0;
  if (whence == SEEK_SET) base = 0;
  else if (whence == SEEK_CUR) base = static_cast<int64_t>(s.position);
  else if (whence == SEEK_END && s.whole_object) base = static_cast<int64_t>(s.object_size);
  else if (whence == SEEK_END) unsupported(s, "SEEK_END");
  else throw Error(ErrorKind::kInvalidArgument, "reader of '" + s.object + "': whence must be SEEK_SET, SEEK_CUR or SEEK_END");
  int64_t target = 0;
  if (__builtin_add_overflow(base, offset, &target)) {
    throw Error(ErrorKind::kInvalidArgument, "reader of '" + s.object + "': seek position overflows");
  }
  if (target < 0) {
    throw Error(ErrorKind::kInvalidArgument,
                "reader of '" + s.object + "': seek to negative position " + std::to_string(target));
  }
  const auto pos = static_cast<uint64_t>(target);
  if (!s.whole_object && s.current_index != SIZE_MAX) {
    const Range& current = s.ranges[s.current_index];
    if (pos < current.offset) {
      unsupported(s, "seek back to byte " + std::to_string(pos) + " before the current range (bytes " +
                         std::to_string(current.offset) + "-" + std::to_string(current.offset + current.length - 1) +
                         ")");
    }
  }
  s.position = pos;
  return pos;
}

Reader Store::reader(std::string_view object, std::vector<Range> ranges, ReaderOptions options) {
  engine::check_not_engine_thread("Store::reader");
  auto s = std::make_unique<detail::ReaderState>();
  s->window.bytes = options.window_bytes.value_or(state_->engine->arena->base_bytes() / 2);
  s->window.extents = options.window_items.value_or(1024);
  s->store = state_;
  s->object = std::string(object);
  s->object_size = size(object);
  s->whole_object = ranges.empty();
  if (s->whole_object) {
    const uint64_t part = state_->defaults.part_size;
    for (uint64_t off = 0; off < s->object_size; off += part) {
      s->ranges.push_back({off, std::min(part, s->object_size - off)});
    }
  } else {
    // Checked before merging: merging computes range ends, and would hide a bad range inside a good one.
    for (const Range& r : ranges) {
      if (r.length > UINT64_MAX - r.offset || r.offset + r.length > s->object_size) {
        throw Error(ErrorKind::kInvalidArgument,
                    "reader of '" + s->object + "': range at byte " + std::to_string(r.offset) + " of length " +
                        std::to_string(r.length) + " ends past the object's end at " + std::to_string(s->object_size));
      }
    }
    s->ranges = normalize(std::move(ranges));
  }
  if (!s->ranges.empty()) ReaderAccess::restart(*s, 0);
  return Reader(std::move(s));
}

}  // namespace ringfetch
