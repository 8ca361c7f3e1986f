// CPU placement (see cpu_affinity.hpp): sched_setaffinity and sched_setscheduler / setpriority on ourselves, and on
// each process of nginx's group as found in /proc (`taskset -p`, `chrt -p` or `renice` on every nginx pid).
#include "cpu_affinity.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace ringfetch::bench {
namespace {

// Field 5 of /proc/PID/stat is the process group; the command name (field 2) may hold spaces, so count from the ')'.
bool process_group_of(pid_t pid, pid_t* pgid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 1));
  std::string state;
  pid_t ppid = 0;
  fields >> state >> ppid >> *pgid;
  return static_cast<bool>(fields);
}

// Every pid of process group `pgid`.
std::vector<pid_t> members_of(pid_t pgid) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    pid_t group = 0;
    if (process_group_of(pid, &group) && group == pgid) out.push_back(pid);
  }
  return out;
}

constexpr int kFifoPriority = 10;  // above every SCHED_OTHER task, below the kernel's own real-time threads
constexpr int kHighestNice = -20;

// pid 0: the calling thread.
std::string prioritize(pid_t pid, SchedulingClass cls) {
  const std::string who = pid == 0 ? "self" : std::to_string(pid);
  if (cls == SchedulingClass::kFifo) {
    sched_param param{};
    param.sched_priority = kFifoPriority;
    if (sched_setscheduler(pid, SCHED_FIFO, &param) != 0)
      return "sched_setscheduler(" + who + ", SCHED_FIFO): " + std::strerror(errno);
  } else if (cls == SchedulingClass::kNice) {
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(pid), kHighestNice) != 0)
      return "setpriority(" + who + "): " + std::strerror(errno);
  }
  return {};
}

cpu_set_t only(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return set;
}

}  // namespace

std::string pin_self(int cpu) {
  const cpu_set_t set = only(cpu);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return "sched_setaffinity(self, CPU " + std::to_string(cpu) + "): " + std::strerror(errno);
  }
  return {};
}

int pin_process_group(pid_t pgid, int cpu, std::string* error) {
  const cpu_set_t set = only(cpu);
  int pinned = 0;
  for (pid_t pid : members_of(pgid)) {
    if (sched_setaffinity(pid, sizeof(set), &set) != 0) {
      *error = "sched_setaffinity(" + std::to_string(pid) + ", CPU " + std::to_string(cpu) + "): " +
               std::strerror(errno);
      return -1;
    }
    ++pinned;
  }
  return pinned;
}

std::string prioritize_self(SchedulingClass cls) { return prioritize(0, cls); }

std::string prioritize_process_group(pid_t pgid, SchedulingClass cls) {
  for (pid_t pid : members_of(pgid)) {
    std::string error = prioritize(pid, cls);
    if (!error.empty()) return error;
  }
  return {};
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return CPU_COUNT(&set);
}

}  // namespace ringfetch::bench
