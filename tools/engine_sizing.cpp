// Engine sizing. std::thread::hardware_concurrency() may report 0 when unknown; that means one thread.
#include "engine_sizing.hpp"

#include <algorithm>
#include <thread>

namespace ringfetch::cli {

unsigned default_engine_threads() {
  return std::clamp(std::thread::hardware_concurrency(), 1u, kMaxDefaultThreads);
}

EngineOptions client_engine_options() {
  EngineOptions options;
  options.threads = default_engine_threads();
  options.arena_bytes = kTokenArenaBytes;
  return options;
}

}  // namespace ringfetch::cli
