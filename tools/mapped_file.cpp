// MappedInputFile and MappedOutputFile. Empty files are not mapped (mmap of length 0 is an error); their span is
// empty. Descriptors are closed as soon as the mapping exists: the mapping keeps the file. fallocate is
// best-effort: on filesystems without it (EOPNOTSUPP) the output is only ftruncate'd, sparse.
#include "mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "ringfetch/error.hpp"

namespace ringfetch::cli {
namespace {

constexpr mode_t kNewFileMode = 0666;  // before the umask, as for any file a shell command creates
constexpr std::string_view kPartialSuffix = ".ringfetch-partial-";

class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

Error io_error(const std::string& what, const std::string& path, int err) {
  return Error(ErrorKind::kIo, what + " '" + path + "': " + std::strerror(err));
}

std::byte* map(int fd, size_t size, int protection, int flags, const std::string& path) {
  if (size == 0) return nullptr;
  void* address = ::mmap(nullptr, size, protection, flags, fd, 0);
  if (address == MAP_FAILED) throw io_error("cannot map", path, errno);
  return static_cast<std::byte*>(address);
}

void reserve(int fd, uint64_t size, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw io_error("cannot size", path, errno);
  if (size == 0 || ::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0) return;
  if (errno == EOPNOTSUPP || errno == ENOSYS) return;
  throw io_error("cannot reserve " + std::to_string(size) + " bytes for", path, errno);
}

}  // namespace

MappedInputFile::MappedInputFile(const std::string& path) {
  const Descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw io_error("cannot open", path, errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw io_error("cannot stat", path, errno);
  if (!S_ISREG(info.st_mode)) throw Error(ErrorKind::kIo, "cannot read '" + path + "': not a regular file");
  size_ = static_cast<size_t>(info.st_size);
  data_ = map(fd.get(), size_, PROT_READ, MAP_PRIVATE, path);
  if (data_ != nullptr) ::madvise(data_, size_, MADV_SEQUENTIAL);
}

MappedInputFile::~MappedInputFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

std::string partial_file_name(const std::string& path, long pid) {
  return path + std::string(kPartialSuffix) + std::to_string(pid);
}

std::vector<std::string> remove_stale_partial_files(const std::string& directory) {
  std::vector<std::string> removed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(kPartialSuffix);
    if (at == std::string::npos || at == 0) continue;
    const std::string digits = name.substr(at + kPartialSuffix.size());
    long pid = 0;
    const auto [end, parsed] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (digits.empty() || parsed != std::errc() || end != digits.data() + digits.size() || pid <= 0) continue;
    // kill(pid, 0) fails with ESRCH only when no such process exists; EPERM means it runs as another user.
    if (pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    struct stat info {};
    if (::lstat(entry.path().c_str(), &info) != 0 || !S_ISREG(info.st_mode)) continue;
    if (::unlink(entry.path().c_str()) == 0) removed.push_back(entry.path().string());
  }
  return removed;
}

MappedOutputFile::MappedOutputFile(const std::string& path, uint64_t size, std::optional<mode_t> mode)
    : path_(path), temporary_path_(partial_file_name(path, ::getpid())), size_(size) {
  const Descriptor fd(::open(temporary_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                             mode ? *mode & 0600 : kNewFileMode));  // never wider than the file it replaces
  if (fd.get() < 0) throw io_error("cannot create", path_, errno);  // the user named path_, not the temporary
  try {
    if (mode && ::fchmod(fd.get(), *mode & 07777) != 0) throw io_error("cannot set the mode of", temporary_path_, errno);
    reserve(fd.get(), size, temporary_path_);
    data_ = map(fd.get(), size_, PROT_READ | PROT_WRITE, MAP_SHARED, temporary_path_);
  } catch (...) {
    ::unlink(temporary_path_.c_str());
    throw;
  }
}

MappedOutputFile::~MappedOutputFile() {
  unmap();
  if (!committed_) ::unlink(temporary_path_.c_str());
}

void MappedOutputFile::unmap() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
}

void MappedOutputFile::commit() {
  unmap();
  if (::rename(temporary_path_.c_str(), path_.c_str()) != 0) throw io_error("cannot rename to", path_, errno);
  committed_ = true;
}

}  // namespace ringfetch::cli
