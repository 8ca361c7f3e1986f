// Engine sizing for the CLI: how many engine threads a one-shot command uses. Page-cache reads through io_uring
// are CPU-bound copies in the kernel, so a second ring roughly doubles file:// throughput on a 2-core machine
// (measured: 5.5 -> 10 GB/s for a 1 GiB load); beyond kMaxDefaultThreads the gain does not pay for the threads.
#pragma once

namespace ringfetch::cli {

constexpr unsigned kMaxDefaultThreads = 4;

// min(kMaxDefaultThreads, hardware threads), at least 1.
unsigned default_engine_threads();

}  // namespace ringfetch::cli
