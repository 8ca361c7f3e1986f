// The Python classes' C++ parts (see objects.hpp). Every call that may block (planning opens objects, next()
// waits for bytes, destructors wait for reads in flight) runs with the GIL released.
#include "objects.hpp"

#include <cstring>
#include <set>
#include <vector>

#include "errors.hpp"

namespace ringfetch::python {
namespace {

// Every live object of the classes below, for shut_down_everything(). Only touched with the GIL held.
struct LiveObjects {
  std::set<PyEngine*> engines;
  std::set<PyStore*> stores;
  std::set<PyBatch*> batches;
  std::set<PyReader*> readers;
  std::set<PyRegistration*> registrations;
  bool shut_down = false;
};

LiveObjects& live() {
  static auto* objects = new LiveObjects();  // never destroyed: objects may outlive static destruction
  return *objects;
}

std::set<PyEngine*>& live_set(PyEngine*) { return live().engines; }
std::set<PyStore*>& live_set(PyStore*) { return live().stores; }
std::set<PyBatch*>& live_set(PyBatch*) { return live().batches; }
std::set<PyReader*>& live_set(PyReader*) { return live().readers; }
std::set<PyRegistration*>& live_set(PyRegistration*) { return live().registrations; }

[[noreturn]] void throw_shut_down(const char* what) {
  throw Error(ErrorKind::kCancelled, std::string("this ") + what + " was stopped because the interpreter is exiting");
}

}  // namespace

template <class T>
LiveToken<T>::LiveToken(T* object) : object_(object) {
  live_set(object_).insert(object_);
}

template <class T>
LiveToken<T>::~LiveToken() {
  live_set(object_).erase(object_);
}

template class LiveToken<PyEngine>;
template class LiveToken<PyStore>;
template class LiveToken<PyBatch>;
template class LiveToken<PyReader>;
template class LiveToken<PyRegistration>;

// Closes every live object of one class, keeping its Python object alive meanwhile (close() releases the GIL,
// and another thread may drop its last reference then). Re-scans after each close: the set may change.
template <class T, class Close>
void close_all(std::set<T*>& objects, Close close) {
  std::set<T*> done;
  for (;;) {
    T* next = nullptr;
    for (T* object : objects) {
      if (!done.count(object)) {
        next = object;
        break;
      }
    }
    if (next == nullptr) return;
    done.insert(next);
    py::object keep = py::cast(next, py::return_value_policy::reference);
    close(*next);
  }
}

void shut_down_everything() {
  LiveObjects& l = live();
  l.shut_down = true;
  ExitGate::close_and_drain();  // no thread is inside C++ (or a callback) after this
  close_all(l.batches, [](PyBatch& b) { b.close(); });
  close_all(l.readers, [](PyReader& r) { r.close(); });
  close_all(l.registrations, [](PyRegistration& r) { r.close(); });
  close_all(l.stores, [](PyStore& s) { s.shut_down(); });
  close_all(l.engines, [](PyEngine& e) { e.close(); });
}

std::string forked_message(const char* what, pid_t maker) {
  return std::string("this ") + what + " was made in process " + std::to_string(maker) +
         " and cannot be used in process " + std::to_string(::getpid()) +
         " (after fork()): fetches, readers and their views do not cross a fork. Start it again in this process; "
         "ringfetch.Engine and ringfetch.Store re-create themselves in a forked child, or create them in the "
         "worker (e.g. in a DataLoader worker_init_fn)";
}

// ---- Engine

PyEngine::PyEngine(EngineConfig config) : config_(std::move(config)) {
  box();
}

std::shared_ptr<EngineBox> PyEngine::box() {
  if (live().shut_down) throw_shut_down("engine");
  if (closed_) throw py::value_error("this ringfetch.Engine is closed");
  if (box_ && box_->usable()) return box_;
  EngineOptions options = config_.options;
  auto engine = without_gil([&] { return std::make_unique<Engine>(options); });
  box_ = std::make_shared<EngineBox>(std::move(engine));
  return box_;
}

void PyEngine::close() {
  closed_ = true;
  box_.reset();  // the engine itself goes when the last store, batch or reader using it goes
}

// ---- Plan

size_t PyPlan::add(const std::string& key, py::handle offset, py::handle length, py::handle into) {
  const uint64_t off = to_u64(offset, "offset");
  const uint64_t len = to_u64(length, "length");
  if (len > UINT64_MAX - off) throw py::value_error("offset + length does not fit in 64 bits");
  if (key.empty()) throw py::value_error("key must not be empty");
  std::shared_ptr<Destination> destination;
  size_t index;
  if (into.is_none()) {
    index = plan.add(key, off, len);
  } else {
    destination = Destination::acquire(into, "into");
    if (destination->bytes().size() != len) {
      throw py::value_error("into= holds " + std::to_string(destination->bytes().size()) +
                            " bytes but the item's length is " + std::to_string(len));
    }
    index = plan.add(key, off, len, destination->bytes());
  }
  destinations.push_back(std::move(destination));
  return index;
}

// ---- Store

PyStore::PyStore(py::object engine, std::string url, py::dict options)
    : engine_(std::move(engine)), url_(std::move(url)), option_kwargs_(std::move(options)),
      options_(store_options(option_kwargs_)) {
  store();
}

void PyStore::shut_down() {
  store_.reset();
  engine_box_.reset();
}

Store& PyStore::store() {
  if (store_.usable()) return store_.get();
  if (live().shut_down) throw_shut_down("store");
  engine_box_ = engine_.cast<PyEngine&>().box();
  Engine& engine = engine_box_->get();
  auto opened = without_gil([&] { return std::make_unique<Store>(Store::open(url_, engine, options_)); });
  store_ = ProcessBound<Store>(std::move(opened));
  return store_.get();
}

// ---- Batch

PyBatch::PyBatch(PyStore& store, PyPlan& plan, py::object callback)
    : engine_box_(store.engine_box()), destinations_(plan.destinations) {
  Store& s = store.store();
  const Plan& p = plan.plan;
  if (callback.is_none()) {
    batch_ = ProcessBound<FetchBatch>(without_gil([&] { return std::make_unique<FetchBatch>(s.fetch(p)); }));
    return;
  }
  if (!PyCallable_Check(callback.ptr())) throw py::type_error("callback must be callable");
  callback_ = std::make_unique<CallbackState>();
  callback_->callback = std::move(callback);
  callback_->destinations = &destinations_;
  CallbackState* state = callback_.get();
  ItemCallback on_item = [state](const ItemView& item) {
    if (!ExitGate::enter()) return;  // the interpreter is exiting: drop the item
    {
      py::gil_scoped_acquire locked;
      try {
        const auto& destinations = *state->destinations;
        PyView view{item, item.index() < destinations.size() ? destinations[item.index()] : nullptr};
        state->callback(py::cast(std::move(view)));
      } catch (py::error_already_set& e) {
        if (!state->first_exception) state->first_exception = e.value();
      }
    }
    ExitGate::leave();
  };
  batch_ = ProcessBound<FetchBatch>(
      without_gil([&] { return std::make_unique<FetchBatch>(s.fetch(p, std::move(on_item))); }));
}

PyBatch::~PyBatch() {
  close();
}

FetchBatch& PyBatch::batch() {
  if (batch_.foreign()) throw py::value_error(forked_message("fetch batch", batch_.pid()));
  if (batch_.empty() && live().shut_down) throw_shut_down("fetch batch");
  if (batch_.empty()) throw py::value_error("this fetch batch is closed");
  return batch_.get();
}

std::optional<PyView> PyBatch::next() {
  FetchBatch& b = batch();
  std::optional<ItemView> item = without_gil([&] {
    std::lock_guard lock(use_);
    return b.next();
  });
  if (!item) return std::nullopt;
  const size_t index = item->index();
  return PyView{std::move(*item), index < destinations_.size() ? destinations_[index] : nullptr};
}

void PyBatch::wait() {
  FetchBatch& b = batch();
  without_gil([&] {
    std::lock_guard lock(use_);
    b.wait();
  });
  if (callback_ && callback_->first_exception) {
    py::object e = callback_->first_exception;
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(e.ptr())), e.ptr());
    throw py::error_already_set();
  }
}

size_t PyBatch::size() { return batch().size(); }

void PyBatch::close() {
  if (batch_.empty()) return;
  if (batch_.foreign()) return batch_.reset();  // abandoned; the lock may be held by a parent thread
  ReleaseGilIfHeld unlocked;
  std::lock_guard lock(use_);
  batch_.reset();  // cancels what is not read yet and waits for reads in flight and running callbacks
}

// ---- Reader

PyReader::PyReader(PyStore& store, const std::string& key, py::object ranges)
    : key_(key), engine_box_(store.engine_box()) {
  std::vector<Range> list;
  if (!ranges.is_none()) {
    for (py::handle r : ranges) {
      uint64_t offset, length;
      if (py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r)) {
        py::sequence pair = py::reinterpret_borrow<py::sequence>(r);
        if (pair.size() != 2) throw py::value_error("each range must be (offset, length)");
        offset = to_u64(pair[0], "range offset");
        length = to_u64(pair[1], "range length");
      } else if (py::hasattr(r, "offset") && py::hasattr(r, "length")) {
        offset = to_u64(r.attr("offset"), "range offset");
        length = to_u64(r.attr("length"), "range length");
      } else {
        throw py::type_error("ranges must be (offset, length) pairs");
      }
      list.push_back({offset, length});
    }
    whole_object_ = list.empty();
  }
  Store& s = store.store();
  try {
    reader_ = ProcessBound<Reader>(
        without_gil([&] { return std::make_unique<Reader>(s.reader(key_, std::move(list))); }));
  } catch (const Error& e) {
    raise_error(e, ErrorOrigin::kReader);
  }
}

PyReader::~PyReader() {
  close();
}

Reader& PyReader::reader() {
  if (reader_.foreign()) throw py::value_error(forked_message("reader", reader_.pid()));
  if (reader_.empty() && live().shut_down) throw_shut_down("reader");
  if (reader_.empty()) throw py::value_error("I/O operation on closed reader");
  return reader_.get();
}

py::bytes PyReader::read(py::handle size) {
  Reader& r = reader();
  const uint64_t n = to_u64(size, "size");
  const uint64_t left = r.size() > r.tell() ? r.size() - r.tell() : 0;
  const size_t want = static_cast<size_t>(std::min(n, left));
  PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(want));
  if (raw == nullptr) throw py::error_already_set();
  py::bytes out = py::reinterpret_steal<py::bytes>(raw);
  std::span<std::byte> span{reinterpret_cast<std::byte*>(PyBytes_AS_STRING(raw)), want};
  size_t got = 0;
  try {
    got = without_gil([&] {
      std::lock_guard lock(use_);
      return r.readinto(span);
    });
  } catch (const Error& e) {
    raise_error(e, ErrorOrigin::kReader);
  }
  if (got == want) return out;
  return py::bytes(PyBytes_AS_STRING(raw), got);
}

py::bytes PyReader::readall() {
  Reader& r = reader();
  if (!whole_object_) {
    try {
      (void)r.read(Reader::kAll);  // throws the C++ reader's "only sequential access" error
    } catch (const Error& e) {
      raise_error(e, ErrorOrigin::kReader);
    }
  }
  return read(py::int_(r.size() > r.tell() ? r.size() - r.tell() : 0));
}

size_t PyReader::readinto(py::handle buffer) {
  Reader& r = reader();
  std::shared_ptr<Destination> out = Destination::acquire(buffer, "buffer");
  try {
    return without_gil([&] {
      std::lock_guard lock(use_);
      return r.readinto(out->bytes());
    });
  } catch (const Error& e) {
    raise_error(e, ErrorOrigin::kReader);
  }
}

PyView PyReader::read_view(py::handle size) {
  Reader& r = reader();
  const uint64_t n = to_u64(size, "size");
  try {
    ItemView item = without_gil([&] {
      std::lock_guard lock(use_);
      return r.read(n == UINT64_MAX ? Reader::kAll - 1 : static_cast<size_t>(n));
    });
    return PyView{std::move(item), nullptr};
  } catch (const Error& e) {
    raise_error(e, ErrorOrigin::kReader);
  }
}

uint64_t PyReader::seek(int64_t offset, int whence) {
  Reader& r = reader();
  try {
    return without_gil([&] {
      std::lock_guard lock(use_);
      return r.seek(offset, whence);
    });
  } catch (const Error& e) {
    raise_error(e, ErrorOrigin::kReader);
  }
}

uint64_t PyReader::tell() { return reader().tell(); }
uint64_t PyReader::size() { return reader().size(); }

void PyReader::close() {
  if (reader_.empty()) return;
  if (reader_.foreign()) return reader_.reset();  // abandoned; the lock may be held by a parent thread
  ReleaseGilIfHeld unlocked;
  std::lock_guard lock(use_);
  reader_.reset();
}

// ---- Memory registration

PyRegistration::PyRegistration(PyEngine& engine, py::handle buffer) {
  memory = Destination::acquire(buffer, "buffer");
  engine_box_ = engine.box();
  Engine& e = engine_box_->get();
  std::span<std::byte> bytes = memory->bytes();
  registration_ = ProcessBound<MemoryRegistration>(
      without_gil([&] { return std::make_unique<MemoryRegistration>(e.register_memory(bytes)); }));
}

PyRegistration::~PyRegistration() {
  close();
}

void PyRegistration::close() {
  registration_.reset();
  engine_box_.reset();
}

}  // namespace ringfetch::python
