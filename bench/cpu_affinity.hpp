// CPU placement for the harness: the client (this process and every thread it starts later, ringfetch's engine
// thread included) on one CPU, nginx (master and workers) on another, the same way for every contender, so that no
// contender gains or loses from where the scheduler happens to put the server. Both may also be given a scheduling
// priority above ordinary work (SCHED_FIFO, or nice -20), so that other work on a shared machine (builds) disturbs
// the runs less.
#pragma once

#include <sys/types.h>

#include <string>

namespace ringfetch::bench {

// Pins the calling thread (and so the threads it creates afterwards) to `cpu`. Returns "" or why it failed.
std::string pin_self(int cpu);

// Pins every process of process group `pgid` (nginx's master is its group leader; the workers are in it) to
// `cpu`. Returns the number of processes pinned, or -1 with *error set.
int pin_process_group(pid_t pgid, int cpu, std::string* error);

enum class SchedulingClass {
  kNormal,  // leave it alone
  kNice,    // SCHED_OTHER at nice -20
  kFifo,    // SCHED_FIFO at a low real-time priority (kFifoPriority)
};

// Applies `cls` to the calling thread (threads it creates later inherit it). Returns "" or why it failed.
std::string prioritize_self(SchedulingClass cls);

// Applies `cls` to every process of group `pgid`. Returns "" or why it failed.
std::string prioritize_process_group(pid_t pgid, SchedulingClass cls);

// Number of CPUs this process may run on.
int usable_cpus();

}  // namespace ringfetch::bench
