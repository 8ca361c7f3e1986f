// Test files on disk: a private temporary directory that removes itself, small file helpers, and a deterministic
// pseudo-random byte pattern that tests write to disk and later check fetched ranges against. The pattern is
// position-addressable (any slice can be regenerated without the rest), so files of several GiB are written in
// chunks and verified range by range without ever being held in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringfetch::testing {

// Where test servers and temporary files live: RINGFETCH_TEST_BUILD_DIR when the build defines it, else /tmp.
// Created if missing.
std::filesystem::path test_build_dir();

// A fresh directory `<base>/<prefix>XXXXXX` (mode 0700), removed recursively on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "ringfetch-", const std::filesystem::path& base = test_build_dir());
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  // path() / relative; no file is created.
  std::filesystem::path operator/(const std::filesystem::path& relative) const { return path_ / relative; }

 private:
  std::filesystem::path path_;
};

// Creates or truncates `path` and writes exactly `bytes`. Throws std::system_error on failure.
void write_file(const std::filesystem::path& path, std::span<const std::byte> bytes);
void write_file(const std::filesystem::path& path, std::string_view text);

// Whole file contents. Throws std::system_error on failure.
std::string read_file(const std::filesystem::path& path);
// Descriptors this process has open (entries of /proc/self/fd): tests check that work leaks none.
std::ptrdiff_t open_fd_count();

// The last `max_bytes` of a file (all of it if shorter); "" if it cannot be read. For failure messages.
std::string tail_of_file(const std::filesystem::path& path, std::size_t max_bytes);

// Bytes [offset, offset + out.size()) of the pattern for `seed`: little-endian splitmix64 words, word k being
// splitmix64 of counter k. Different seeds give unrelated content.
void fill_pattern(std::span<std::byte> out, uint64_t offset, uint64_t seed);

// Bytes [offset, offset + length) of the pattern for `seed`.
std::vector<std::byte> pattern_slice(uint64_t offset, uint64_t length, uint64_t seed);

// The first `size` bytes of the pattern for `seed` (== pattern_slice(0, size, seed)).
std::vector<std::byte> make_pattern(uint64_t size, uint64_t seed);

// Writes the first `size` bytes of the pattern to `path` in bounded chunks (memory use is one chunk).
void write_pattern_file(const std::filesystem::path& path, uint64_t size, uint64_t seed);

}  // namespace ringfetch::testing
