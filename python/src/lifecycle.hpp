// Process and interpreter lifecycle for the binding: objects that must not be touched after a fork, the GIL
// around blocking C++ calls and destructors, and the gate engine threads pass to run Python callbacks.
#pragma once

#include <Python.h>
#include <sys/types.h>
#include <unistd.h>

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "ringfetch/error.hpp"

namespace ringfetch::python {

// Called with the GIL released, before taking it back. A non-main thread that comes back from C++ while the
// interpreter finalizes would be ended by CPython (pthread_exit) inside the GIL's acquisition; that unwinding
// through C++ destructors aborts the process, so such a thread parks for good instead (the process is exiting).
void park_if_interpreter_exiting() noexcept;
// Records the main thread's ident (threading.main_thread().ident), the thread that finalizes.
void remember_main_thread(unsigned long ident) noexcept;

// Engine threads run Python callbacks, and Python threads run C++ calls with the GIL released, only between
// enter() and leave(). At interpreter exit (atexit, before finalization starts) close_and_drain() stops new
// entries and waits, with the GIL released, for those in progress: afterwards a callback is dropped instead of
// touching a finalizing interpreter, a call raises CancelledError, and the caller may tear everything down.
class ExitGate {
 public:
  static bool enter() noexcept;
  static void leave() noexcept;
  static void close_and_drain() noexcept;
  static bool closed() noexcept;
  // Installed once at import: resets the gate in a forked child, whose counters may count parent threads.
  static void install_fork_handler() noexcept;
};

// Runs f() with the GIL released (inside the exit gate) and takes the GIL back outside any destructor, so
// that a C++ exception from f() crosses back into Python as usual.
template <class F>
auto without_gil(F&& f) {
  using Result = std::invoke_result_t<F&>;
  if (!ExitGate::enter()) {
    throw Error(ErrorKind::kCancelled, "ringfetch was shut down because the interpreter is exiting");
  }
  std::exception_ptr error;
  PyThreadState* saved = PyEval_SaveThread();
  if constexpr (std::is_void_v<Result>) {
    try {
      f();
    } catch (...) {
      error = std::current_exception();
    }
    park_if_interpreter_exiting();
    PyEval_RestoreThread(saved);
    ExitGate::leave();  // after the GIL is back: the drain waits until the caller is back in Python
    if (error) std::rethrow_exception(error);
  } else {
    std::optional<Result> result;
    try {
      result.emplace(f());
    } catch (...) {
      error = std::current_exception();
    }
    park_if_interpreter_exiting();
    PyEval_RestoreThread(saved);
    ExitGate::leave();  // after the GIL is back: the drain waits until the caller is back in Python
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }
}

// Releases the GIL for its scope when the calling thread holds it. C++ destructors that wait for engine threads
// (batches, readers, stores, engines) run under it: an engine thread may be waiting for the GIL to run a callback.
// CPython ends a thread that asks for the GIL while the interpreter finalizes (pthread_exit), and that unwinding
// through this destructor aborts the process. So on any thread but the main one the GIL is released inside the exit
// gate, and the drain at exit waits until the thread holds it again; once the gate is closed (only daemon threads
// are left then), such a thread still releases the GIL for the C++ work but parks for good instead of asking for it
// back.
class ReleaseGilIfHeld {
 public:
  ReleaseGilIfHeld() noexcept;
  ~ReleaseGilIfHeld();
  ReleaseGilIfHeld(const ReleaseGilIfHeld&) = delete;
  ReleaseGilIfHeld& operator=(const ReleaseGilIfHeld&) = delete;

 private:
  PyThreadState* saved_ = nullptr;
  bool gated_ = false;       // counted by the exit gate until the GIL is back
  bool park_after_ = false;  // the gate was closed: never ask for the GIL again
};

// A C++ object that belongs to the process that made it. Engines own threads, and batches, readers and stores
// talk to them; after fork() the child has none of those threads, so it must never run their destructors (they
// would wait for threads that do not exist). In another process the object is abandoned instead of destroyed.
template <class T>
class ProcessBound {
 public:
  ProcessBound() = default;
  explicit ProcessBound(std::unique_ptr<T> value) : value_(std::move(value)), pid_(::getpid()) {}
  ProcessBound(ProcessBound&& other) noexcept : value_(std::move(other.value_)), pid_(other.pid_) {}
  ProcessBound& operator=(ProcessBound&& other) noexcept {
    if (this != &other) {
      reset();
      value_ = std::move(other.value_);
      pid_ = other.pid_;
    }
    return *this;
  }
  ~ProcessBound() { reset(); }

  bool empty() const noexcept { return value_ == nullptr; }
  // Made in another process (before a fork): unusable here.
  bool foreign() const noexcept { return value_ != nullptr && pid_ != ::getpid(); }
  bool usable() const noexcept { return value_ != nullptr && pid_ == ::getpid(); }
  T& get() const noexcept { return *value_; }
  pid_t pid() const noexcept { return pid_; }

  void reset() noexcept {
    if (!value_) return;
    if (pid_ != ::getpid()) {
      (void)value_.release();  // abandoned: its threads live in the parent
      return;
    }
    ReleaseGilIfHeld unlocked;
    value_.reset();
  }

 private:
  std::unique_ptr<T> value_;
  pid_t pid_ = -1;
};


}  // namespace ringfetch::python
