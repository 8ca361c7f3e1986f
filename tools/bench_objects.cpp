// Bench objects: names, content, creation on file:// and s3:// roots, and their removal. Uploads run on plain
// threads, one S3Client::upload call each at a time: the client is shared (its calls may run concurrently) and
// each thread owns one object-sized buffer, filled once and re-stamped per object.
#include "bench_objects.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>

#include "demo_dataset.hpp"
#include "interrupts.hpp"
#include "ringfetch/error.hpp"

namespace ringfetch::cli {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15;
constexpr uint64_t kWordBytes = 8;
constexpr uint64_t kStampStride = uint64_t{4} << 10;
constexpr uint64_t kWriteChunkBytes = uint64_t{4} << 20;
constexpr uint64_t kWorkerSeedBase = uint64_t{1} << 40;  // worker buffers' seeds: apart from the objects' seeds

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

// The directory of a file:// or direct:// root (everything after "scheme://").
std::string root_directory(std::string_view root_url) {
  const size_t scheme_end = root_url.find("://");
  std::string path(root_url.substr(scheme_end + 3));
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

void write_one_file(const std::string& path, uint64_t seed, uint64_t size, std::vector<std::byte>& buffer) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorKind::kIo, "cannot create " + path + ": " + std::strerror(errno));
  try {
    for (uint64_t offset = 0; offset < size; offset += buffer.size()) {
      const std::span<std::byte> chunk(buffer.data(), std::min<uint64_t>(buffer.size(), size - offset));
      fill_object_bytes(seed, offset, chunk);
      write_all(fd, chunk.data(), chunk.size(), path);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw Error(ErrorKind::kIo, "cannot write " + path + ": " + std::strerror(errno));
}

Error cancelled() { return Error(ErrorKind::kCancelled, "interrupted"); }

}  // namespace

RootKind root_kind(std::string_view root_url) {
  if (root_url.starts_with("file://") || root_url.starts_with("direct://")) return RootKind::kFile;
  if (root_url.starts_with("http://") || root_url.starts_with("https://")) return RootKind::kHttp;
  if (root_url.starts_with("s3://")) return RootKind::kS3;
  throw Error(ErrorKind::kInvalidArgument, "bad URL '" + std::string(root_url) +
                                               "': expected a file://, direct://, http(s):// or s3:// store root");
}

std::string unique_bench_prefix() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return "ringfetch-bench-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "/";
}

std::vector<BenchObject> bench_object_names(const std::string& prefix, size_t count, uint64_t size) {
  std::vector<BenchObject> objects;
  for (size_t i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "obj-%04zu", i);
    objects.push_back({prefix + name, size});
  }
  return objects;
}

void fill_object_bytes(uint64_t seed, uint64_t offset, std::span<std::byte> out) {
  const uint64_t base = mix(seed + 1);
  uint64_t word_index = offset / kWordBytes;
  size_t i = 0;
  for (; i + kWordBytes <= out.size(); i += kWordBytes, ++word_index) {
    const uint64_t word = mix(base + word_index * kGolden);
    std::memcpy(out.data() + i, &word, kWordBytes);
  }
  if (i < out.size()) {
    const uint64_t word = mix(base + word_index * kGolden);
    std::memcpy(out.data() + i, &word, out.size() - i);
  }
}

void stamp_object_bytes(uint64_t seed, std::span<std::byte> buffer) {
  const uint64_t base = mix(seed + 1);
  for (uint64_t at = 0; at + kWordBytes <= buffer.size(); at += kStampStride) {
    const uint64_t word = mix(base + at);
    std::memcpy(buffer.data() + at, &word, kWordBytes);
  }
}

CreatedObjects::~CreatedObjects() {
  if (!keep_) remove_all();
}

void CreatedObjects::add(std::string key) {
  std::lock_guard lock(mutex_);
  // Repeated write runs rewrite the same keys; each is removed once.
  if (std::find(keys_.begin(), keys_.end(), key) == keys_.end()) keys_.push_back(std::move(key));
}

size_t CreatedObjects::count() const {
  std::lock_guard lock(mutex_);
  return keys_.size();
}

size_t CreatedObjects::remove_all() {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mutex_);
    keys.swap(keys_);
  }
  if (keys.empty()) return 0;
  try {
    remover_(keys);
    return keys.size();
  } catch (const std::exception& e) {
    say("warning: could not remove the bench objects under '" + prefix_ + "': " + e.what());
    return 0;
  }
}

std::vector<BenchObject> write_file_objects(std::string_view root_url, CreatedObjects& created, size_t count,
                                           uint64_t size, const std::atomic<bool>& cancel) {
  const std::string directory = root_directory(root_url);
  const std::string prefix_path = directory + "/" + created.prefix();
  if (::mkdir(prefix_path.c_str(), 0755) != 0) {
    throw Error(ErrorKind::kIo, "cannot create " + prefix_path + ": " + std::strerror(errno));
  }
  std::vector<BenchObject> objects = bench_object_names(created.prefix(), count, size);
  std::vector<std::byte> buffer(std::min(size, kWriteChunkBytes));
  for (size_t i = 0; i < objects.size(); ++i) {
    if (cancel.load()) throw cancelled();
    const std::string path = directory + "/" + objects[i].key;
    created.add(objects[i].key);  // before writing: a half-written file is removed too
    write_one_file(path, i, size, buffer);
  }
  return objects;
}

void remove_file_objects(std::string_view root_url, const std::string& prefix, const std::vector<std::string>& keys) {
  const std::string directory = root_directory(root_url);
  for (const std::string& key : keys) {
    const std::string path = directory + "/" + key;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      throw Error(ErrorKind::kIo, "cannot remove " + path + ": " + std::strerror(errno));
    }
  }
  const std::string prefix_path = directory + "/" + prefix;
  if (::rmdir(prefix_path.c_str()) != 0 && errno != ENOENT) {
    throw Error(ErrorKind::kIo, "cannot remove " + prefix_path + ": " + std::strerror(errno));
  }
}

std::string S3Root::full_key(std::string_view relative) const {
  return prefix.empty() ? std::string(relative) : prefix + "/" + std::string(relative);
}

S3Root parse_s3_root(std::string_view root_url) {
  S3Location location = parse_s3_url(root_url);
  while (!location.key.empty() && location.key.back() == '/') location.key.pop_back();
  return {std::move(location.bucket), std::move(location.key)};
}

double cpu_seconds_so_far() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

namespace {

// The shared state of one upload_objects call.
struct UploadRun {
  s3::S3Client& client;
  const S3Root& root;
  CreatedObjects& created;
  const std::vector<BenchObject>& objects;
  const std::atomic<bool>& cancel;
  const std::function<void(uint64_t)>& progress;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> acknowledged{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr first_error;

  void record_failure() {
    std::lock_guard lock(error_mutex);
    if (!first_error) first_error = std::current_exception();
    failed.store(true);
  }
};

// Counts one upload's acknowledged bytes into the run's total. The client may report parts from several engine
// threads and not in order, so the largest figure seen wins.
class UploadProgress {
 public:
  explicit UploadProgress(UploadRun& run) : run_(run) {}
  void start_object() {
    std::lock_guard lock(mutex_);
    counted_ = 0;
  }
  void report(uint64_t done) {
    std::lock_guard lock(mutex_);
    if (done <= counted_) return;
    const uint64_t total = run_.acknowledged.fetch_add(done - counted_) + (done - counted_);
    counted_ = done;
    if (run_.progress) run_.progress(total);
  }

 private:
  UploadRun& run_;
  std::mutex mutex_;
  uint64_t counted_ = 0;
};

// One upload thread: takes the next object until none is left or a sibling failed. `buffer` holds the largest
// object, already filled; only the per-object stamp is written here, inside the measurement.
void upload_worker(UploadRun& run, std::vector<std::byte>& buffer) {
  UploadProgress progress(run);
  s3::UploadControl control;
  control.cancel = &run.cancel;
  control.on_progress = [&progress](uint64_t done) { progress.report(done); };
  for (size_t i = run.next++; i < run.objects.size() && !run.failed.load(); i = run.next++) {
    if (run.cancel.load()) throw cancelled();
    const BenchObject& object = run.objects[i];
    const std::span<std::byte> body(buffer.data(), object.size);
    stamp_object_bytes(i, body);
    progress.start_object();
    const s3::UploadStats stats = run.client.upload(run.root.bucket, run.root.full_key(object.key), body, control);
    run.created.add(object.key);
    run.requests += stats.parts;
  }
}

}  // namespace

UploadReport upload_objects(s3::S3Client& client, const S3Root& root, CreatedObjects& created,
                            const std::vector<BenchObject>& objects, unsigned concurrency,
                            const std::atomic<bool>& cancel, const std::function<void(uint64_t)>& progress) {
  UploadRun run{client, root, created, objects, cancel, progress};
  const size_t threads = std::max<size_t>(1, std::min<size_t>(concurrency, objects.size()));
  uint64_t largest = 0;
  for (const BenchObject& object : objects) largest = std::max(largest, object.size);
  std::vector<std::vector<std::byte>> buffers(threads, std::vector<std::byte>(largest));
  for (size_t w = 0; w < threads; ++w) fill_object_bytes(kWorkerSeedBase + w, 0, buffers[w]);
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds_so_far();
  std::vector<std::thread> workers;
  for (size_t w = 0; w < threads; ++w) {
    workers.emplace_back([&run, &buffers, w] {
      try {
        upload_worker(run, buffers[w]);
      } catch (...) {
        run.record_failure();
      }
    });
  }
  for (std::thread& t : workers) t.join();
  if (run.first_error) std::rethrow_exception(run.first_error);
  UploadReport report;
  report.cpu_seconds = cpu_seconds_so_far() - cpu_start;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.requests = run.requests.load();
  for (const BenchObject& object : objects) report.bytes += object.size;
  return report;
}

}  // namespace ringfetch::cli
