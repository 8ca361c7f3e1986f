// The exit gate (see lifecycle.hpp): two atomics and a drain loop. Sequentially consistent order makes the
// double check in enter() sound: a thread either is counted before close_and_drain() sees the count, or sees
// the gate closed and backs out.
#include "lifecycle.hpp"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace ringfetch::python {
namespace {

std::atomic<unsigned long> main_thread{0};
std::atomic<bool> gate_closed{false};
std::atomic<int> gate_active{0};
constexpr auto kDrainPoll = std::chrono::milliseconds(1);

void reset_in_child() {
  gate_active.store(0);
  gate_closed.store(false);
}

// For a thread that must never take the GIL again: the process is exiting without it.
[[noreturn]] void park_forever() noexcept {
  for (;;) ::pause();
}

bool interpreter_finalizing() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

}  // namespace

void remember_main_thread(unsigned long ident) noexcept { main_thread.store(ident); }

void park_if_interpreter_exiting() noexcept {
  if (!interpreter_finalizing() || PyThread_get_thread_ident() == main_thread.load()) return;
  park_forever();
}

bool ExitGate::enter() noexcept {
  if (gate_closed.load()) return false;
  gate_active.fetch_add(1);
  if (gate_closed.load()) {
    gate_active.fetch_sub(1);
    return false;
  }
  return true;
}

void ExitGate::leave() noexcept { gate_active.fetch_sub(1); }

bool ExitGate::closed() noexcept { return gate_closed.load(); }

void ExitGate::close_and_drain() noexcept {
  gate_closed.store(true);
  // Running callbacks, and threads coming back from C++, need the GIL to finish. This is the finalizing thread, so
  // it may take the GIL back while the interpreter exits.
  PyThreadState* saved = PyGILState_Check() ? PyEval_SaveThread() : nullptr;
  while (gate_active.load() > 0) std::this_thread::sleep_for(kDrainPoll);
  if (saved != nullptr) PyEval_RestoreThread(saved);
}

ReleaseGilIfHeld::ReleaseGilIfHeld() noexcept {
  if (!PyGILState_Check()) return;
  if (PyThread_get_thread_ident() != main_thread.load()) {
    gated_ = ExitGate::enter();
    park_after_ = !gated_;
  }
  saved_ = PyEval_SaveThread();
}

ReleaseGilIfHeld::~ReleaseGilIfHeld() {
  if (saved_ == nullptr) return;
  if (park_after_) park_forever();  // the interpreter is exiting; this daemon thread is not needed again
  park_if_interpreter_exiting();
  PyEval_RestoreThread(saved_);
  if (gated_) ExitGate::leave();  // after the GIL is back: the drain waits until this thread is back in Python
}

void ExitGate::install_fork_handler() noexcept { ::pthread_atfork(nullptr, nullptr, &reset_in_child); }

}  // namespace ringfetch::python
