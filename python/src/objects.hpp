// The C++ side of the Python classes: each holds what keeps the C++ objects it uses alive (engine before store
// before batch), and checks that it is used in the process that made it.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "conversions.hpp"
#include "destination.hpp"
#include "lifecycle.hpp"
#include "ringfetch/ringfetch.hpp"

namespace ringfetch::python {

namespace py = pybind11;

using EngineBox = ProcessBound<Engine>;

// Membership of an object in the registry shut_down_everything() walks. Declared as the last member of its
// class: it joins once every other member is built and leaves first, also when a constructor throws.
template <class T>
class LiveToken {
 public:
  explicit LiveToken(T* object);
  ~LiveToken();
  LiveToken(const LiveToken&) = delete;
  LiveToken& operator=(const LiveToken&) = delete;

 private:
  T* object_;
};

// Python's Engine. After a fork the child gets a fresh C++ Engine with the same options on first use (the
// parent's threads do not exist there); the parent's engine is abandoned in the child, never destroyed.
class PyEngine {
 public:
  explicit PyEngine(EngineConfig config);
  std::shared_ptr<EngineBox> box();  // the engine of this process, made on first use after a fork
  Engine& engine() { return box()->get(); }
  const EngineConfig& config() const noexcept { return config_; }
  void close();
  bool closed() const noexcept { return closed_; }

 private:
  EngineConfig config_;
  std::shared_ptr<EngineBox> box_;
  bool closed_ = false;
  LiveToken<PyEngine> live_{this};
};

// One delivered item: the C++ view (a share of its memory) and, for items with into=, the destination's owner.
// In a forked child a view from the parent is never released (releasing returns memory to the parent's engine).
struct PyView {
  PyView(ItemView i, std::shared_ptr<Destination> d) : item(std::move(i)), destination(std::move(d)) {}
  PyView(PyView&&) = default;
  ~PyView() {
    if (pid != ::getpid()) new ItemView(item);  // an abandoned share: the memory stays as it was
  }
  ItemView item;
  std::shared_ptr<Destination> destination;
  pid_t pid = ::getpid();
};

class PyPlan {
 public:
  size_t add(const std::string& key, py::handle offset, py::handle length, py::handle into);
  Plan plan;
  std::vector<std::shared_ptr<Destination>> destinations;  // per item; null without into=
};

class PyStore {
 public:
  PyStore(py::object engine, std::string url, py::dict options);
  Store& store();  // re-opened in this process after a fork
  void shut_down();  // at interpreter exit: drops the C++ store (and its hold on the engine)
  std::shared_ptr<EngineBox> engine_box() { store(); return engine_box_; }
  const std::string& url() const noexcept { return url_; }
  py::object engine_object() const { return engine_; }
  const py::dict& options() const noexcept { return option_kwargs_; }

 private:
  py::object engine_;           // the Python Engine (kept alive; asked for this process's engine)
  std::string url_;
  py::dict option_kwargs_;
  StoreOptions options_;
  std::shared_ptr<EngineBox> engine_box_;  // declared before store_: destroyed after it
  ProcessBound<Store> store_;
  LiveToken<PyStore> live_{this};
};

// Python callables run from engine threads; owned by the batch, whose C++ part is destroyed first.
struct CallbackState {
  py::object callback;
  std::vector<std::shared_ptr<Destination>>* destinations = nullptr;
  std::mutex mutex;
  py::object first_exception;  // raised by the callback (guarded by the GIL)
};

class PyBatch {
 public:
  PyBatch(PyStore& store, PyPlan& plan, py::object callback);
  ~PyBatch();
  std::optional<PyView> next();  // nullopt at the end
  void wait();
  size_t size();
  void close();

 private:
  FetchBatch& batch();
  std::shared_ptr<EngineBox> engine_box_;
  std::vector<std::shared_ptr<Destination>> destinations_;
  std::unique_ptr<CallbackState> callback_;
  std::mutex use_;  // one thread at a time in the C++ batch (taken with the GIL released)
  ProcessBound<FetchBatch> batch_;
  LiveToken<PyBatch> live_{this};
};

class PyReader {
 public:
  PyReader(PyStore& store, const std::string& key, py::object ranges);
  ~PyReader();
  py::bytes read(py::handle size);
  py::bytes readall();
  size_t readinto(py::handle buffer);
  PyView read_view(py::handle size);
  uint64_t seek(int64_t offset, int whence);
  uint64_t tell();
  uint64_t size();
  void close();
  bool closed() const noexcept { return reader_.empty(); }
  const std::string& key() const noexcept { return key_; }

 private:
  Reader& reader();
  std::string key_;
  bool whole_object_ = true;
  std::shared_ptr<EngineBox> engine_box_;
  std::mutex use_;
  ProcessBound<Reader> reader_;
  LiveToken<PyReader> live_{this};
};

class PyRegistration {
 public:
  PyRegistration(PyEngine& engine, py::handle buffer);
  ~PyRegistration();
  bool registered() const noexcept { return registration_.usable() && registration_.get().registered(); }
  void close();
  std::shared_ptr<Destination> memory;

 private:
  std::shared_ptr<EngineBox> engine_box_;
  ProcessBound<MemoryRegistration> registration_;
  LiveToken<PyRegistration> live_{this};
};

// The message of the error raised when an object made before a fork is used in the child.
std::string forked_message(const char* what, pid_t maker);

// At interpreter exit (atexit, before finalization): stops the callbacks, closes every batch and reader, drops
// every store and engine, so that no engine thread is still working when the process exits (OpenSSL's and the
// C++ runtime's exit handlers would pull state from under it). Later calls raise ringfetch.CancelledError.
void shut_down_everything();

}  // namespace ringfetch::python
