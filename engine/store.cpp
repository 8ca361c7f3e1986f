// Store and FetchBatch: open a root URL through the scheme's source, validate and plan a fetch, and hand the
// resulting FetchState to the caller as a batch.
#include <map>

#include "engine/fetch_state.hpp"

namespace ringfetch {
namespace {

engine::SourceDefaults merged_defaults(const engine::SourceDefaults& source, const StoreOptions& options) {
  engine::SourceDefaults d = source;
  if (options.max_gap != StoreOptions::kSourceDefault) d.max_gap = options.max_gap;
  if (options.part_size != StoreOptions::kSourceDefault) d.part_size = options.part_size;
  if (options.max_in_flight != 0) d.max_in_flight = options.max_in_flight;
  return d;
}

void check_part_size(const engine::SourceDefaults& d) {
  if (d.part_size == 0 || d.part_size % d.alignment != 0) {
    throw Error(ErrorKind::kInvalidArgument, "part_size " + std::to_string(d.part_size) +
                                                 " must be a positive multiple of " + std::to_string(d.alignment));
  }
}

}  // namespace

Store Store::open(std::string_view root_url, Engine& engine, StoreOptions options) {
  auto state = std::make_shared<detail::StoreState>();
  engine::parse_url(root_url, &state->url).check();
  engine::SourceFactory factory = engine::find_source_factory(state->url.scheme);
  if (factory == nullptr) {
    throw Error(ErrorKind::kInvalidArgument,
                "bad URL '" + std::string(root_url) + "': scheme '" + state->url.scheme + "' is not supported here");
  }
  state->engine = &engine;
  state->root = std::string(root_url);
  state->options = options;
  factory(state->url, engine.impl(), options, &state->source).check();
  state->defaults = merged_defaults(state->source->defaults(), options);
  check_part_size(state->defaults);
  return Store(std::move(state));
}

Store::~Store() = default;

const std::string& Store::root() const noexcept { return state_->root; }
Engine& Store::engine() const noexcept { return *state_->engine; }

uint64_t Store::size(std::string_view object) {
  std::shared_ptr<engine::SourceObject> opened;
  state_->source->open_object(std::string(object), true, &opened).check();
  if (opened->size == engine::SourceObject::kUnknownSize)
    throw Error(ErrorKind::kUnsupported, "the size of " + opened->display + " is unknown");
  return opened->size;
}

namespace detail {

std::shared_ptr<detail::FetchState> plan_fetch(const std::shared_ptr<detail::StoreState>& store, const Plan& plan,
                                               ItemCallback on_item) {
  auto state = std::make_shared<detail::FetchState>();
  state->store = store;
  state->engine = &store->engine->impl();
  state->alignment = store->defaults.alignment;
  state->max_in_flight = std::max(1u, store->defaults.max_in_flight);
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
    state->items.push_back({it->second, item.offset, item.length, item.destination, false});
  }
  std::vector<uint64_t> sizes;
  for (const auto& object : state->objects) sizes.push_back(object->size);
  engine::PlannerOptions options;
  options.max_gap = store->defaults.max_gap;
  options.part_size = store->defaults.part_size;
  options.alignment = store->defaults.alignment;
  Status planned = engine::plan_ranges(planner_items, options, sizes, &state->layout);
  if (!planned.ok()) throw Error(planned.kind(), "plan for " + store->root + ": " + planned.message());

  // Every engine thread keeps its scratch in the first chunk; an extent larger than what is left would wait for
  // memory forever.
  const uint64_t scratch = state->engine->workers.size() * Engine::Impl::kScratchBytes;
  const uint64_t largest = state->engine->arena->largest_chunk() - scratch;
  for (const engine::Extent& extent : state->layout.extents) {
    if (state->in_place(extent) || extent.length <= largest) continue;
    const uint32_t i = state->layout.extent_items[extent.first_item];
    throw Error(ErrorKind::kInvalidArgument,
                "item " + std::to_string(i) + " of '" + plan.items()[i].object + "' needs " +
                    std::to_string(extent.length) + " bytes of memory but the engine arena holds at most " +
                    std::to_string(largest) + "; raise EngineOptions::arena_bytes or give the item a destination");
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

FetchBatch& FetchBatch::operator=(FetchBatch&& other) noexcept {
  if (this != &other) {
    if (state_) state_->cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}

FetchBatch::~FetchBatch() {
  if (state_) state_->cancel();
}

std::optional<ItemView> FetchBatch::next() {
  if (!state_) return std::nullopt;
  if (state_->on_item) {
    throw Error(ErrorKind::kInvalidArgument, "this batch delivers items to its callback; call wait() instead");
  }
  std::optional<ItemView> view = state_->next_view();
  if (view && !view->ok()) view->status().check();
  return view;
}

void FetchBatch::wait() {
  if (!state_) return;
  state_->wait_all();
  std::lock_guard lock(state_->mutex);
  for (const auto& extent : state_->extents) extent.status.check();
}

size_t FetchBatch::size() const { return state_ ? state_->items_total : 0; }

}  // namespace ringfetch
