// Files mapped into memory for the transfer commands. `get` maps its output MAP_SHARED and hands slices of the
// mapping to Store::fetch as plan-item destinations, so each part is received straight into the page cache: no
// arena, no bounce buffer, no write(2) copy, and memory in flight is bounded by the kernel's dirty-page writeback
// rather than by us. `put` maps its input read-only because S3Client::upload takes the body as one span; mapping
// lets a file of any size be uploaded without reading it into a buffer first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <sys/types.h>

namespace ringfetch::cli {

// A regular file mapped read-only. Throws Error(kIo) naming the path (missing, unreadable, not a regular file).
class MappedInputFile {
 public:
  explicit MappedInputFile(const std::string& path);
  ~MappedInputFile();
  MappedInputFile(const MappedInputFile&) = delete;
  MappedInputFile& operator=(const MappedInputFile&) = delete;

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// The temporary name of a download into `path` by process `pid`: "<path>.ringfetch-partial-<pid>".
std::string partial_file_name(const std::string& path, long pid);

// Removes the partial files ("*.ringfetch-partial-<pid>", regular files only) that processes no longer running
// left in `directory` (killed, or interrupted before this version removed them). Returns the names removed.
std::vector<std::string> remove_stale_partial_files(const std::string& directory);

// A download's output. It is written under a temporary name beside `path` and renamed over `path` by commit(), so
// a failed download neither leaves a partial file under the final name nor clobbers a file already there. The
// space is reserved up front (fallocate), so a full disk is an error here rather than a SIGBUS mid-download.
// `path` must not be a symlink (the caller resolves it: the rename would replace the link, not its target).
class MappedOutputFile {
 public:
  // Throws Error(kIo) naming the path when the file cannot be created, sized or mapped. `mode`: permission bits
  // to give the file (those of the file it replaces); nullopt: a new file's, 0666 less the umask.
  MappedOutputFile(const std::string& path, uint64_t size, std::optional<mode_t> mode = std::nullopt);
  ~MappedOutputFile();  // removes the temporary file unless committed
  MappedOutputFile(const MappedOutputFile&) = delete;
  MappedOutputFile& operator=(const MappedOutputFile&) = delete;

  std::span<std::byte> bytes() noexcept { return {data_, size_}; }
  const std::string& temporary_path() const noexcept { return temporary_path_; }
  // Unmaps the file and renames it to its final name. Throws Error(kIo).
  void commit();

 private:
  void unmap();

  std::string path_;
  std::string temporary_path_;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool committed_ = false;
};

}  // namespace ringfetch::cli
