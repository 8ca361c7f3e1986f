// A watchdog for tests that turn former hangs into failures: runs a body on its own thread and, if it does not
// return in time, fails the test and stops the binary (a hang must not eat the whole suite's timeout).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <thread>

namespace ringfetch::testing {

// Runs `body`; rethrows what it throws; aborts the test binary after `limit` with a test failure naming it.
inline void bounded(std::chrono::seconds limit, const std::function<void()>& body) {
  std::packaged_task<void()> task(body);
  std::future<void> done = task.get_future();
  std::thread runner(std::move(task));
  if (done.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "did not return within " << limit.count() << " s (hang)";
    std::fflush(nullptr);
    std::abort();
  }
  runner.join();
  done.get();
}

}  // namespace ringfetch::testing
