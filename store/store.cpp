// Store and FetchBatch: open a root URL through the scheme's source, validate and plan a fetch, and hand the
// resulting FetchState to the caller as a batch. This is where the layers meet: the scheme table below links the
// engine's file source, the http layer's source and the s3 layer's source explicitly (nothing registers itself).
#include <map>

#include "engine/file_source.hpp"
#include "http/http_source.hpp"
#include "s3/s3_source.hpp"
#include "store/fetch_state.hpp"

namespace ringfetch {
namespace {

engine::SourceDefaults merged_defaults(const engine::SourceDefaults& source, const StoreOptions& options) {
  engine::SourceDefaults d = source;
  if (options.max_gap) d.max_gap = *options.max_gap;
  if (options.part_size) d.part_size = *options.part_size;
  if (options.max_in_flight) d.max_in_flight = std::max(1u, *options.max_in_flight);
  return d;
}

// The scheme table: every source the library has, linked here and nowhere else.
Status open_source(const engine::Url& url, Engine::Impl& engine, const StoreOptions& options,
                   std::unique_ptr<engine::Source>* out) {
  if (url.scheme == "file" || url.scheme == "direct") return engine::make_file_source(url, out);
  if (url.scheme == "http" || url.scheme == "https") return http::HttpSource::create(url, engine, options, out);
  if (url.scheme == "s3") return s3::make_s3_source(url, engine, options, out);
  return Status(ErrorKind::kInvalidArgument, "scheme '" + url.scheme +
                                                 "' is not supported (use file://, direct://, http://, https:// or "
                                                 "s3://)");
}

void check_part_size(const engine::SourceDefaults& d) {
  if (d.part_size == 0 || d.part_size % d.alignment != 0) {
    throw Error(ErrorKind::kInvalidArgument, "part_size " + std::to_string(d.part_size) +
                                                 " must be a positive multiple of " + std::to_string(d.alignment));
  }
}

}  // namespace

Store Store::open(std::string_view root_url, Engine& engine, StoreOptions options) {
  engine::check_not_engine_thread("Store::open");
  auto state = std::make_shared<detail::StoreState>();
  engine::parse_url(root_url, &state->url).check();
  state->engine_handle = &engine;
  state->engine = detail::EngineAccess::impl(engine);
  state->root = std::string(root_url);
  state->options = options;
  Status opened = open_source(state->url, *state->engine, options, &state->source);
  if (!opened.ok()) {
    if (opened.kind() == ErrorKind::kInvalidArgument && opened.message().rfind("scheme '", 0) == 0)
      throw Error(ErrorKind::kInvalidArgument, "bad URL '" + std::string(root_url) + "': " + opened.message());
    opened.check();
  }
  state->defaults = merged_defaults(state->source->defaults(), options);
  check_part_size(state->defaults);
  return Store(std::move(state));
}

Store::~Store() = default;

const std::string& Store::root() const noexcept { return state_->root; }
Engine& Store::engine() const noexcept { return *state_->engine_handle; }

uint64_t Store::size(std::string_view object) {
  engine::check_not_engine_thread("Store::size");
  std::shared_ptr<engine::SourceObject> opened;
  state_->source->open_object(std::string(object), true, &opened).check();
  if (opened->size == engine::SourceObject::kUnknownSize)
    throw Error(ErrorKind::kUnsupported, "the size of " + opened->display + " is unknown");
  return opened->size;
}

namespace detail {

std::shared_ptr<detail::FetchState> plan_fetch(const std::shared_ptr<detail::StoreState>& store, const Plan& plan,
                                               ItemCallback on_item, ReadAhead read_ahead) {
  engine::check_not_engine_thread("Store::fetch");
  if (store->engine->stopped.load())
    throw Error(ErrorKind::kCancelled, "the engine of " + store->root + " has shut down");
  auto state = std::make_shared<detail::FetchState>();
  state->store = store;
  state->engine = store->engine;
  state->alignment = store->defaults.alignment;
  state->max_in_flight = std::max(1u, store->defaults.max_in_flight);
  state->read_ahead = read_ahead;
  state->on_item = std::move(on_item);

  std::map<std::string, uint32_t> object_ids;
  std::vector<engine::PlannerItem> planner_items;
  planner_items.reserve(plan.size());
  state->items.reserve(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    const PlanItem& item = plan.items()[i];
    if (!item.destination.empty() && item.destination.size() != item.length) {
      throw Error(ErrorKind::kInvalidArgument, "item " + std::to_string(i) + " of '" + item.object +
                                                   "': destination holds " + std::to_string(item.destination.size()) +
                                                   " bytes but the item's length is " + std::to_string(item.length));
    }
    auto [it, inserted] = object_ids.emplace(item.object, static_cast<uint32_t>(object_ids.size()));
    if (inserted) {
      std::shared_ptr<engine::SourceObject> opened;
      store->source->open_object(item.object, false, &opened).check();
      state->objects.push_back(std::move(opened));
      state->object_names.push_back(std::make_shared<const std::string>(item.object));
    }
    // O_DIRECT can read in place only into block-aligned memory; other destinations are filled by a copy.
    const bool in_place = !item.destination.empty() &&
                          reinterpret_cast<uintptr_t>(item.destination.data()) % store->defaults.alignment == 0;
    planner_items.push_back({it->second, item.offset, item.length, in_place});
    state->items.push_back({it->second, item.offset, item.length, item.destination});
  }
  std::vector<uint64_t> sizes;
  for (const auto& object : state->objects) sizes.push_back(object->size);
  engine::PlannerOptions options;
  // A max_gap the caller left at its default follows what the source has measured (see RequestTiming).
  const uint64_t measured = store->options.max_gap ? 0 : store->source->measured_max_gap();
  options.max_gap = measured > 0 ? measured : store->defaults.max_gap;
  state->engine->counters.max_gap.store(options.max_gap, std::memory_order_relaxed);
  options.part_size = store->defaults.part_size;
  options.alignment = store->defaults.alignment;
  Status planned = engine::plan_ranges(planner_items, options, sizes, &state->layout);
  if (!planned.ok()) throw Error(planned.kind(), "plan for " + store->root + ": " + planned.message());

  // An extent larger than the memory limit could never get memory. Name the largest item in it: with O_DIRECT an
  // extent may hold several items whose aligned blocks touch.
  for (const engine::Extent& extent : state->layout.extents) {
    if (state->in_place(extent) || state->engine->arena->fits_limit(extent.length)) continue;
    uint32_t largest = state->layout.extent_items[extent.first_item];
    for (uint32_t k = 1; k < extent.item_count; ++k) {
      const uint32_t i = state->layout.extent_items[extent.first_item + k];
      if (plan.items()[i].length > plan.items()[largest].length) largest = i;
    }
    const PlanItem& item = plan.items()[largest];
    throw Error(ErrorKind::kResourceExhausted,
                "item " + std::to_string(largest) + " of '" + item.object + "' (" + std::to_string(item.length) +
                    " bytes at offset " + std::to_string(item.offset) + ") needs " + std::to_string(extent.length) +
                    " bytes of memory but the engine's memory_limit is " +
                    std::to_string(state->engine->arena->limit_bytes()) +
                    " bytes; raise EngineOptions::memory_limit or give the item a destination");
  }
  return state;
}

}  // namespace detail

using detail::plan_fetch;

FetchBatch Store::fetch(const Plan& plan) {
  auto state = plan_fetch(state_, plan, nullptr);
  state->start();
  return FetchBatch(std::move(state));
}

FetchBatch Store::fetch(const Plan& plan, ItemCallback on_item) {
  if (!on_item) throw Error(ErrorKind::kInvalidArgument, "fetch callback is empty");
  auto state = plan_fetch(state_, plan, std::move(on_item));
  state->start();
  return FetchBatch(std::move(state));
}

namespace {
// On an engine thread (a batch dropped from a callback) waiting would deadlock: stop delivery and let the reads end
// on their own; they keep the state alive.
void drop(const std::shared_ptr<detail::FetchState>& state) {
  if (state) state->cancel(engine::Worker::current() == nullptr);
}
}  // namespace

FetchBatch& FetchBatch::operator=(FetchBatch&& other) noexcept {
  if (this != &other) {
    drop(state_);
    state_ = std::move(other.state_);
  }
  return *this;
}

FetchBatch::~FetchBatch() { drop(state_); }

std::optional<ItemView> FetchBatch::next() {
  if (!state_) return std::nullopt;
  if (state_->on_item) {
    throw Error(ErrorKind::kInvalidArgument, "this batch delivers items to its callback; call wait() instead");
  }
  engine::check_not_engine_thread("FetchBatch::next");
  std::optional<ItemView> view = state_->next_view();
  if (view && !view->ok()) view->status().check();
  return view;
}

void FetchBatch::wait() {
  if (!state_) return;
  engine::check_not_engine_thread("FetchBatch::wait");
  state_->wait_all().check();
}

size_t FetchBatch::size() const { return state_ ? state_->items_total() : 0; }

}  // namespace ringfetch
