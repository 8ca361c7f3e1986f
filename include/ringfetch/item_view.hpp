// ItemView: one delivered item — its bytes in ringfetch's memory (or the caller's destination) and a share of
// the ownership of that memory. Dropping the last view of an item returns its memory to the engine.
//
// Threading: an ItemView is a value; copies may be used and dropped on any thread, concurrently. Views of items that
// overlap share memory. A view stays valid after its batch, store and engine are gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "ringfetch/error.hpp"

namespace ringfetch {

namespace detail {
struct ViewFactory;
}

class ItemView {
 public:
  ItemView() = default;

  size_t index() const noexcept { return index_; }        // position of the item in its Plan
  const std::string& object() const noexcept { return object_ ? *object_ : empty_name(); }
  uint64_t offset() const noexcept { return offset_; }    // object offset of bytes()[0]
  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  size_t size() const noexcept { return bytes_.size(); }
  bool ok() const noexcept { return status_.ok(); }
  const Status& status() const noexcept { return status_; }  // the item's error, when !ok() (bytes() is empty then)

  // A view of part of this item sharing its ownership; `offset` and `length` are relative to bytes() and must lie
  // inside it.
  ItemView slice(size_t offset, size_t length) const {
    ItemView view = *this;
    view.offset_ = offset_ + offset;
    view.bytes_ = bytes_.subspan(offset, length);
    return view;
  }

 private:
  friend struct detail::ViewFactory;
  static const std::string& empty_name() noexcept {
    static const std::string empty;
    return empty;
  }

  size_t index_ = 0;
  std::shared_ptr<const std::string> object_;
  uint64_t offset_ = 0;
  std::span<const std::byte> bytes_;
  std::shared_ptr<const void> owner_;
  Status status_;
};

}  // namespace ringfetch
