// The objects `ringfetch bench` reads and writes. A bench makes its own objects under a fresh prefix
// (ringfetch-bench-<pid>-<unix time>/) so that it never touches anything it did not create, and removes exactly
// what it created when it ends (normally, on an error or after Ctrl-C) unless told to keep it. file:// and
// direct:// roots get files written into the root directory; s3:// roots get objects uploaded through S3Client.
// http(s):// roots are read-only, so the caller names existing objects instead.
//
// Object content: a splitmix64 word per 8 bytes, seeded per object, so that no two objects (and no two 4 KiB
// blocks) are alike and a store that deduplicates or compresses gains nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "object_url.hpp"
#include "ringfetch/s3/s3_client.hpp"

namespace ringfetch::cli {

enum class RootKind { kFile, kHttp, kS3 };

// By scheme: file:// and direct:// are kFile, http:// and https:// kHttp, s3:// kS3. Throws Error(kInvalidArgument)
// ("bad URL ...", a usage error) for anything else.
RootKind root_kind(std::string_view root_url);

struct BenchObject {
  std::string key;  // relative to the store root
  uint64_t size = 0;
};

// "ringfetch-bench-<pid>-<unix time>/": unique per run, recognisable when one is left behind by a kill -9.
std::string unique_bench_prefix();

// Fills `out` with the bytes of object `seed` starting at `offset` (a multiple of 8).
void fill_object_bytes(uint64_t seed, uint64_t offset, std::span<std::byte> out);

// Makes every 4 KiB block of `buffer` (already filled with some pattern) different for object `seed`, by writing
// one word per block: far cheaper than generating the whole object, so uploads measure the network, not the fill.
void stamp_object_bytes(uint64_t seed, std::span<std::byte> buffer);

// What a bench created and must remove: the keys (relative to the root) that exist now. Thread-safe, since
// uploads finish on several threads. remove_all() runs once (the destructor runs it unless kept) and reports, never
// throws: a failed clean-up is a warning line, not a second error on top of the one that got us here.
class CreatedObjects {
 public:
  using Remover = std::function<void(const std::vector<std::string>& keys)>;
  CreatedObjects(std::string prefix, Remover remover) : prefix_(std::move(prefix)), remover_(std::move(remover)) {}
  ~CreatedObjects();
  CreatedObjects(const CreatedObjects&) = delete;
  CreatedObjects& operator=(const CreatedObjects&) = delete;

  void add(std::string key);
  void keep() noexcept { keep_ = true; }
  // Removes every key added so far; returns how many were removed (0 after a failure, which is reported).
  size_t remove_all();
  const std::string& prefix() const noexcept { return prefix_; }
  size_t count() const;

 private:
  std::string prefix_;
  Remover remover_;
  mutable std::mutex mutex_;
  std::vector<std::string> keys_;
  bool keep_ = false;
};

// Writes `count` files of `size` bytes named <prefix>obj-NNNN into the directory of a file:// or direct:// root and
// registers each in `created` once written. Stops with Error(kCancelled) when *cancel becomes true.
std::vector<BenchObject> write_file_objects(std::string_view root_url, CreatedObjects& created, size_t count,
                                           uint64_t size, const std::atomic<bool>& cancel);
// Removes files (relative keys) of a file:// or direct:// root, then the prefix directory.
void remove_file_objects(std::string_view root_url, const std::string& prefix, const std::vector<std::string>& keys);

// Where an s3:// root puts relative keys: bucket and the full key of `relative`.
struct S3Root {
  std::string bucket;
  std::string prefix;  // without a trailing '/'; may be empty
  std::string full_key(std::string_view relative) const;
};
S3Root parse_s3_root(std::string_view root_url);

struct UploadReport {
  uint64_t bytes = 0;
  uint64_t requests = 0;  // PUTs, or parts of multipart uploads
  double seconds = 0;
  double cpu_seconds = 0;
};

// Uploads `count` objects of `size` bytes named <prefix>obj-NNNN with `concurrency` uploads in flight (each a
// PUT, or a multipart upload with parallel parts from the client's threshold on), registering each in `created`
// as it lands. `progress` (may be empty) sees the bytes acknowledged so far, from any thread. Throws the first
// failure; with *cancel set, the uploads in flight are aborted and Error(kCancelled) is thrown.
UploadReport upload_objects(s3::S3Client& client, const S3Root& root, CreatedObjects& created,
                            const std::vector<BenchObject>& objects, unsigned concurrency,
                            const std::atomic<bool>& cancel, const std::function<void(uint64_t)>& progress);

// The objects <prefix>obj-0000 ... of `size` bytes each.
std::vector<BenchObject> bench_object_names(const std::string& prefix, size_t count, uint64_t size);

// user + system CPU seconds of the whole process so far.
double cpu_seconds_so_far();

}  // namespace ringfetch::cli
