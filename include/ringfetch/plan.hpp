// Plan: the list of byte ranges a caller wants, each optionally with its own destination memory.
//
// Threading: a Plan is a value with no synchronisation of its own; Store::fetch reads it only during the call, so it
// may be changed or dropped once fetch returns. A destination must stay valid until its item is delivered or the
// batch is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringfetch {

struct PlanItem {
  std::string object;                 // key relative to the store root
  uint64_t offset = 0;
  uint64_t length = 0;
  std::span<std::byte> destination;   // empty: ringfetch provides memory; else exactly `length` bytes, filled in place
};

class Plan {
 public:
  // Adds an item; returns its index (the ItemView::index() it will be delivered with).
  size_t add(std::string_view object, uint64_t offset, uint64_t length) {
    items_.push_back(PlanItem{std::string(object), offset, length, {}});
    return items_.size() - 1;
  }
  // Adds an item whose bytes land in `destination` (size must equal length; checked at fetch).
  size_t add(std::string_view object, uint64_t offset, uint64_t length, std::span<std::byte> destination) {
    items_.push_back(PlanItem{std::string(object), offset, length, destination});
    return items_.size() - 1;
  }
  const std::vector<PlanItem>& items() const noexcept { return items_; }
  size_t size() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.empty(); }
  void clear() noexcept { items_.clear(); }

 private:
  std::vector<PlanItem> items_;
};

}  // namespace ringfetch
