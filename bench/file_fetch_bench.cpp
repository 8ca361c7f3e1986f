// Local-file head-to-head: ringfetch's file:// and direct:// sources against the plain loop an application would
// otherwise write — pread() of each item into pre-faulted memory (buffered, page cache warm) and pread() with
// O_DIRECT into aligned memory. All four read the same checkpoint-like plan over a 1 GiB file: a few thousand
// items of 4 KiB .. 64 MiB, small ones far more common, each tensor 4 KiB-aligned behind a 4 KiB header block
// (the headers keep O_DIRECT-widened items apart; the engine merges widened extents that touch, so a gap-less
// plan would become one extent larger than the arena). Reported: bytes/s of item bytes (wall clock) and process
// CPU time, which includes the engine threads. The file is created once in $RINGFETCH_BENCH_DIR (default /tmp)
// and reused; a bounded number of iterations keeps the whole binary well under a minute.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ringfetch/ringfetch.hpp"

namespace {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kFileBytes = uint64_t{1} << 30;
constexpr char kFileName[] = "ringfetch-file-bench-1g.bin";
constexpr uint64_t kBlockBytes = 4 * kKiB;           // O_DIRECT alignment and header block size
constexpr uint64_t kSmallestItem = 4 * kKiB;
constexpr uint64_t kLargestItem = 64 * kMiB;
constexpr uint64_t kItemGranule = 256;               // item lengths are multiples of this (not of the block)
constexpr double kSizeDecay = 0.6;                   // density ~ size^-0.6 on a log scale: a few thousand items/GiB
constexpr uint64_t kArenaBytes = 256 * kMiB;         // ringfetch's arena; the pread loops reuse a buffer this size
constexpr uint64_t kWriteChunk = 8 * kMiB;
constexpr int kFileIterations = 5;                   // ~0.1-0.4 s each (page cache)
constexpr int kDirectIterations = 2;                 // ~1 s each (device)

struct Item {
  uint64_t offset;
  uint64_t length;
};

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
uint64_t align_down(uint64_t v, uint64_t a) { return v / a * a; }

std::vector<Item> checkpoint_items() {
  std::vector<Item> items;
  uint64_t state = 0x62656e6368;  // "bench"
  const double lo = std::log2(static_cast<double>(kSmallestItem));
  const double span = std::log2(static_cast<double>(kLargestItem)) - lo;
  uint64_t offset = 0;
  while (true) {
    offset = align_up(offset, kBlockBytes) + kBlockBytes;  // the header block
    const double unit = static_cast<double>(mix(state += 0x9e3779b97f4a7c15) >> 11) * 0x1p-53;
    const double log_size = lo - std::log2(1.0 - unit * (1.0 - std::exp2(-kSizeDecay * span))) / kSizeDecay;
    const uint64_t length = std::max(kSmallestItem, align_down(static_cast<uint64_t>(std::exp2(log_size)), kItemGranule));
    if (offset + length > kFileBytes) break;
    items.push_back({offset, length});
    offset += length;
  }
  return items;
}

uint64_t total_bytes(const std::vector<Item>& items) {
  uint64_t total = 0;
  for (const Item& item : items) total += item.length;
  return total;
}

std::string bench_dir() {
  const char* dir = std::getenv("RINGFETCH_BENCH_DIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

void write_file(const std::string& path) {
  const std::string temporary = path + ".partial";
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + temporary + ": " + std::strerror(errno));
  std::vector<uint64_t> words(kWriteChunk / sizeof(uint64_t));
  for (uint64_t done = 0; done < kFileBytes; done += kWriteChunk) {
    for (size_t i = 0; i < words.size(); ++i) words[i] = mix(done / sizeof(uint64_t) + i);
    if (write(fd, words.data(), kWriteChunk) != static_cast<ssize_t>(kWriteChunk)) {
      close(fd);
      throw std::runtime_error("cannot write " + temporary + ": " + std::strerror(errno));
    }
  }
  fdatasync(fd);
  close(fd);
  if (rename(temporary.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename to " + path);
}

// Reads the whole file once so that the buffered benchmarks start with a warm page cache.
void warm_page_cache(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<char> buffer(kWriteChunk);
  while (fd >= 0 && read(fd, buffer.data(), buffer.size()) > 0) {
  }
  if (fd >= 0) close(fd);
}

// The benchmark file and plan, made once per process.
struct Dataset {
  std::string dir = bench_dir();
  std::string path = dir + "/" + kFileName;
  std::vector<Item> items = checkpoint_items();
  uint64_t item_bytes = total_bytes(items);

  Dataset() {
    struct stat st{};
    if (stat(path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != kFileBytes) write_file(path);
    warm_page_cache(path);
  }
  ringfetch::Plan plan() const {
    ringfetch::Plan plan;
    for (const Item& item : items) plan.add(kFileName, item.offset, item.length);
    return plan;
  }
};

const Dataset& dataset() {
  static const Dataset instance;
  return instance;
}

// Memory for the pread loops: mapped, pre-faulted, page-aligned (so O_DIRECT can use it), reused round-robin.
class PrefaultedBuffer {
 public:
  explicit PrefaultedBuffer(uint64_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    data_ = static_cast<char*>(p);
    std::memset(data_, 0, bytes_);
  }
  ~PrefaultedBuffer() { munmap(data_, bytes_); }
  PrefaultedBuffer(const PrefaultedBuffer&) = delete;
  PrefaultedBuffer& operator=(const PrefaultedBuffer&) = delete;
  // Where an item of `length` bytes goes next: after the previous one, wrapping to the start.
  char* next(uint64_t length) {
    length = align_up(length, kBlockBytes);
    if (cursor_ + length > bytes_) cursor_ = 0;
    char* at = data_ + cursor_;
    cursor_ += length;
    return at;
  }

 private:
  char* data_ = nullptr;
  uint64_t bytes_;
  uint64_t cursor_ = 0;
};

bool pread_fully(int fd, char* out, uint64_t length, uint64_t offset) {
  while (length > 0) {
    const ssize_t n = pread(fd, out, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

// Reads items [first, last) with plain pread (or O_DIRECT preads widened to whole blocks).
bool pread_items(int fd, const std::vector<Item>& items, size_t first, size_t last, bool direct,
                 PrefaultedBuffer& buffer) {
  for (size_t i = first; i < last; ++i) {
    const Item& item = items[i];
    const uint64_t start = direct ? align_down(item.offset, kBlockBytes) : item.offset;
    const uint64_t end = direct ? std::min(align_up(item.offset + item.length, kBlockBytes), kFileBytes)
                                : item.offset + item.length;
    char* out = buffer.next(end - start);
    if (!pread_fully(fd, out, end - start, start)) return false;
    benchmark::DoNotOptimize(out);
  }
  return true;
}

void report(benchmark::State& state, uint64_t bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iteration) * state.iterations());
  state.counters["items"] = static_cast<double>(dataset().items.size());
}

void ringfetch_fetch(benchmark::State& state, const char* scheme) {
  const Dataset& data = dataset();
  ringfetch::EngineOptions options;
  options.threads = static_cast<unsigned>(state.range(0));
  options.arena_bytes = kArenaBytes;
  ringfetch::Engine engine(options);
  ringfetch::Store store = ringfetch::Store::open(std::string(scheme) + "://" + data.dir, engine);
  const ringfetch::Plan plan = data.plan();
  for (auto _ : state) {
    engine.reset_stats();
    try {
      ringfetch::FetchBatch batch = store.fetch(plan);
      while (std::optional<ringfetch::ItemView> item = batch.next()) benchmark::DoNotOptimize(item->bytes().data());
    } catch (const ringfetch::Error& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
  const ringfetch::Stats stats = engine.stats();
  report(state, data.item_bytes);
  state.counters["requests"] = static_cast<double>(stats.requests);
  state.counters["overfetch_MiB"] = static_cast<double>(stats.bytes_fetched - stats.bytes_requested) / kMiB;
  state.SetLabel(stats.backend + (stats.buffers_registered ? ", registered" : ", unregistered"));
}

void pread_loop(benchmark::State& state, bool direct) {
  const Dataset& data = dataset();
  const int fd = open(data.path.c_str(), O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0) {
    state.SkipWithError(("cannot open " + data.path + (direct ? " with O_DIRECT: " : ": ") + std::strerror(errno)).c_str());
    return;
  }
  const auto threads = static_cast<size_t>(state.range(0));
  std::vector<std::unique_ptr<PrefaultedBuffer>> buffers;
  for (size_t t = 0; t < threads; ++t) buffers.push_back(std::make_unique<PrefaultedBuffer>(kArenaBytes / threads));
  for (auto _ : state) {
    std::vector<std::thread> workers;
    std::atomic<bool> ok = true;
    const size_t per_thread = (data.items.size() + threads - 1) / threads;
    for (size_t t = 0; t < threads; ++t) {
      const size_t first = std::min(data.items.size(), t * per_thread);
      const size_t last = std::min(data.items.size(), first + per_thread);
      workers.emplace_back([&, t, first, last] {
        if (!pread_items(fd, data.items, first, last, direct, *buffers[t])) ok = false;
      });
    }
    for (std::thread& worker : workers) worker.join();
    if (!ok) state.SkipWithError("pread failed");
  }
  close(fd);
  report(state, data.item_bytes);
}

void BM_RingfetchFile(benchmark::State& state) { ringfetch_fetch(state, "file"); }
void BM_PreadFile(benchmark::State& state) { pread_loop(state, false); }
void BM_RingfetchDirect(benchmark::State& state) { ringfetch_fetch(state, "direct"); }
void BM_PreadDirect(benchmark::State& state) { pread_loop(state, true); }

}  // namespace

// Arg: engine threads for ringfetch, reader threads for the pread loops.
BENCHMARK(BM_RingfetchFile)->Arg(1)->Arg(2)->Iterations(kFileIterations)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PreadFile)->Arg(1)->Arg(2)->Iterations(kFileIterations)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RingfetchDirect)->Arg(1)->Iterations(kDirectIterations)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PreadDirect)->Arg(1)->Iterations(kDirectIterations)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
