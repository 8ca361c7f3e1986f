// ItemView: one delivered item — its bytes in ringfetch's memory (or the caller's destination) and a share of
// the ownership of that memory. Dropping the last view of an item returns its memory to the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "ringfetch/error.hpp"

namespace ringfetch {

class ItemView {
 public:
  ItemView() = default;
  ItemView(size_t index, std::shared_ptr<const std::string> object, uint64_t offset, std::span<const std::byte> bytes,
           std::shared_ptr<const void> owner, Status status = {})
      : index_(index), object_(std::move(object)), offset_(offset), bytes_(bytes), owner_(std::move(owner)),
        status_(std::move(status)) {}

  size_t index() const noexcept { return index_; }        // position of the item in its Plan
  const std::string& object() const noexcept { return *object_; }
  uint64_t offset() const noexcept { return offset_; }    // object offset of bytes()[0]
  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  size_t size() const noexcept { return bytes_.size(); }
  bool ok() const noexcept { return status_.ok(); }
  const Status& status() const noexcept { return status_; }  // the item's error, when !ok() (bytes() is empty then)

  // A view of part of this item sharing its ownership; `offset` and `length` are relative to bytes().
  ItemView slice(size_t offset, size_t length) const {
    return ItemView(index_, object_, offset_ + offset, bytes_.subspan(offset, length), owner_, status_);
  }

 private:
  size_t index_ = 0;
  std::shared_ptr<const std::string> object_ = std::make_shared<const std::string>();
  uint64_t offset_ = 0;
  std::span<const std::byte> bytes_;
  std::shared_ptr<const void> owner_;
  Status status_;
};

}  // namespace ringfetch
