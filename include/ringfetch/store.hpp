// Store: a root URL (file://, direct://, http(s)://, s3://) bound to an Engine. fetch() plans, coalesces and
// reads a Plan; reader() gives the sequential, DCP-style view of one object.
//
// Threading: a Store may be used from several threads at once (fetch, reader, size). A FetchBatch and a Reader
// belong to one thread at a time. Callbacks given to fetch() run on engine threads, in completion order, one at a
// time per engine thread; a callback must not block: calls that wait (FetchBatch::next/wait, Store::size,
// Store::fetch, Store::reader, Engine::register_memory) throw Error(kUnsupported) when made from a callback.
// Dropping a batch from its own callback is allowed: it stops delivery and returns at once.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringfetch/engine.hpp"
#include "ringfetch/item_view.hpp"
#include "ringfetch/plan.hpp"
#include "ringfetch/options.hpp"

namespace ringfetch {

namespace detail {
struct FetchState;
struct StoreState;
struct ReaderState;
}  // namespace detail
struct ReaderAccess;

// Receives each item of a callback fetch, on an engine thread. A failed item comes with ok() false and status()
// naming the object, range and cause (the same Error that next() would throw).
using ItemCallback = std::function<void(const ItemView&)>;

// The items of one fetch. Iterate in plan order (each item as soon as it is complete), or pass a callback to
// Store::fetch and wait(). Destroying a batch cancels what has not been read and waits (bounded) for reads in
// flight; destroyed on an engine thread it does not wait. When the engine's memory limit is reached and every byte
// of it is held by views the caller keeps, the waiting call throws Error(kResourceExhausted) and the batch ends.
class FetchBatch {
 public:
  FetchBatch() = default;
  FetchBatch(FetchBatch&&) noexcept = default;
  FetchBatch& operator=(FetchBatch&&) noexcept;
  ~FetchBatch();

  // The next item in plan order (zero-length items are skipped), blocking until it is complete; std::nullopt
  // after the last. Throws Error for an item that failed (the message names object, range and cause); the
  // following call goes on with the next item.
  std::optional<ItemView> next();

  // Blocks until every item is complete or failed. Throws the first item error, if any.
  void wait();

  size_t size() const;  // number of items that will be delivered

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = ItemView;
    using difference_type = std::ptrdiff_t;
    using pointer = const ItemView*;
    using reference = const ItemView&;
    iterator() = default;
    explicit iterator(FetchBatch* batch) : batch_(batch) { advance(); }
    reference operator*() const { return *current_; }
    pointer operator->() const { return &*current_; }
    iterator& operator++() { advance(); return *this; }
    void operator++(int) { advance(); }
    bool operator==(const iterator& other) const { return batch_ == other.batch_; }

   private:
    void advance() {
      current_.reset();  // drop the previous item's memory before waiting: the next item may need it
      current_ = batch_->next();
      if (!current_) batch_ = nullptr;
    }
    FetchBatch* batch_ = nullptr;
    std::optional<ItemView> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  friend class Store;
  friend struct ReaderAccess;
  explicit FetchBatch(std::shared_ptr<detail::FetchState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::FetchState> state_;
};

// Sequential access to one object, with the DCP-optimized reader's rules: reads inside the given ranges only,
// forward across ranges, backward only within the current range. Upcoming ranges are fetched in parallel while
// the caller reads. With no ranges it streams the whole object with read-ahead (any seek allowed).
class Reader {
 public:
  static constexpr size_t kAll = std::numeric_limits<size_t>::max();
  Reader(Reader&&) noexcept;
  Reader& operator=(Reader&&) noexcept;
  ~Reader();

  // Up to n bytes at the position, never past the end of the range that holds it (zero-copy; the view keeps the
  // memory). Empty at the end of the object. read(kAll) with ranges, and reads outside the ranges, throw
  // Error(kUnsupported).
  ItemView read(size_t n);
  // Copies bytes at the position into out, across adjacent ranges; returns the count (0 at the end).
  size_t readinto(std::span<std::byte> out);
  // whence: SEEK_SET or SEEK_CUR (SEEK_END is an error with ranges). Returns the new position.
  uint64_t seek(int64_t offset, int whence = SEEK_SET);
  uint64_t tell() const noexcept;
  uint64_t size() const noexcept;  // size of the object

 private:
  friend class Store;
  explicit Reader(std::unique_ptr<detail::ReaderState> state);
  std::unique_ptr<detail::ReaderState> state_;
};

class Store {
 public:
  // Opens a store rooted at `root_url`. Throws Error(kInvalidArgument) for a bad or unsupported URL, and for
  // file:// roots that are not directories.
  static Store open(std::string_view root_url, Engine& engine, StoreOptions options = {});

  // Plans and starts reading `plan`. Throws Error(kInvalidArgument) for bad items (the message names the item),
  // Error(kIo/kNetwork/...) when an object cannot be opened.
  FetchBatch fetch(const Plan& plan);
  // Same, delivering items to on_item (from an engine thread, in completion order) as they complete.
  FetchBatch fetch(const Plan& plan, ItemCallback on_item);

  // Sequential reader of `object`. Ranges may touch (each stays its own item with its own memory); overlapping ranges
  // are merged. Throws Error(kInvalidArgument) for a range past the object's end.
  Reader reader(std::string_view object, std::vector<Range> ranges = {}, ReaderOptions options = {});

  uint64_t size(std::string_view object);  // object size in bytes
  const std::string& root() const noexcept;
  Engine& engine() const noexcept;

  Store(Store&&) noexcept = default;
  Store& operator=(Store&&) noexcept = default;
  ~Store();

 private:
  friend struct detail::StoreState;
  explicit Store(std::shared_ptr<detail::StoreState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::StoreState> state_;
};

}  // namespace ringfetch
