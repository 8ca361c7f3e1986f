// Engine sizing for the CLI: how many engine threads a one-shot command uses. Page-cache reads through io_uring
// are CPU-bound copies in the kernel, so a second ring roughly doubles file:// throughput on a 2-core machine
// (measured: 5.5 -> 10 GB/s for a 1 GiB load); beyond kMaxDefaultThreads the gain does not pay for the threads.
// Commands that only make S3Client calls (ls, put, rm) never take memory from the arena (those calls send the
// caller's memory and get small documents back), so theirs is a token size (memory is mapped only as it is used).
#pragma once

#include <cstdint>

#include "ringfetch/engine.hpp"

namespace ringfetch::cli {

constexpr unsigned kMaxDefaultThreads = 4;

// min(kMaxDefaultThreads, hardware threads), at least 1.
unsigned default_engine_threads();

constexpr uint64_t kTokenArenaBytes = uint64_t{1} << 20;

// For S3Client-only commands: default_engine_threads() and a kTokenArenaBytes arena.
EngineOptions client_engine_options();

}  // namespace ringfetch::cli
