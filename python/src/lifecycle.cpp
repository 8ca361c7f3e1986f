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
  for (;;) ::pause();
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
  ReleaseGilIfHeld unlocked;  // running callbacks need the GIL to finish
  while (gate_active.load() > 0) std::this_thread::sleep_for(kDrainPoll);
}

void ExitGate::install_fork_handler() noexcept { ::pthread_atfork(nullptr, nullptr, &reset_in_child); }

}  // namespace ringfetch::python
