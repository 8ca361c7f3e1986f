// Temporary directories, file helpers and the deterministic test pattern (see temp_dir.hpp). The pattern is
// counter-based splitmix64 so that any byte can be computed from its offset alone: this is what lets a test check a
// range of a multi-GiB file without reading or generating the bytes before it.
#include "servers/temp_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace ringfetch::testing {
namespace {

#ifdef RINGFETCH_TEST_BUILD_DIR
constexpr const char* kBuildDir = RINGFETCH_TEST_BUILD_DIR;
#else
constexpr const char* kBuildDir = "/tmp";
#endif

constexpr uint64_t kWordBytes = 8;
// Chunk for streaming the pattern to disk: large enough for full-speed writes, small enough to not matter.
constexpr std::size_t kPatternChunkBytes = 4u << 20;
constexpr mode_t kFileMode = 0644;

[[noreturn]] void throw_errno(const std::string& what, const std::filesystem::path& path) {
  throw std::system_error(errno, std::generic_category(), what + " " + path.string());
}

uint64_t splitmix64(uint64_t counter, uint64_t seed) {
  uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Byte `index` (0..7) of word `word`, little-endian.
std::byte word_byte(uint64_t word, uint64_t index) { return static_cast<std::byte>(word >> (8 * index)); }

void store_word(std::byte* out, uint64_t word) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out, &word, kWordBytes);
  } else {
    for (uint64_t i = 0; i < kWordBytes; ++i) out[i] = word_byte(word, i);
  }
}

void write_all(int fd, const std::byte* data, std::size_t size, const std::filesystem::path& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("write", path);
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// An fd that closes itself; write errors are reported by close() too (NFS, quotas), so close is checked.
class OutputFile {
 public:
  explicit OutputFile(const std::filesystem::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kFileMode);
    if (fd_ < 0) throw_errno("open", path);
  }
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(std::span<const std::byte> bytes) { write_all(fd_, bytes.data(), bytes.size(), path_); }
  void close() {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_errno("close", path_);
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace

std::filesystem::path test_build_dir() {
  std::filesystem::path dir(kBuildDir);
  std::filesystem::create_directories(dir);
  return dir;
}

TempDir::TempDir(std::string_view prefix, const std::filesystem::path& base) {
  std::filesystem::create_directories(base);
  std::string templ = (base / (std::string(prefix) + "XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) throw_errno("mkdtemp", templ);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  OutputFile file(path);
  file.write(bytes);
  file.close();
}

void write_file(const std::filesystem::path& path, std::string_view text) {
  write_file(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

std::string read_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("open", path);
  std::string out;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      errno = saved;
      throw_errno("read", path);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string tail_of_file(const std::filesystem::path& path, std::size_t max_bytes) {
  try {
    std::string all = read_file(path);
    return all.size() <= max_bytes ? all : all.substr(all.size() - max_bytes);
  } catch (const std::exception&) {
    return {};
  }
}

void fill_pattern(std::span<std::byte> out, uint64_t offset, uint64_t seed) {
  std::size_t i = 0;
  // Leading bytes up to the next word boundary.
  for (; i < out.size() && (offset + i) % kWordBytes != 0; ++i) {
    uint64_t pos = offset + i;
    out[i] = word_byte(splitmix64(pos / kWordBytes, seed), pos % kWordBytes);
  }
  // Whole words.
  for (; i + kWordBytes <= out.size(); i += kWordBytes)
    store_word(&out[i], splitmix64((offset + i) / kWordBytes, seed));
  // Trailing bytes of a partial last word.
  for (; i < out.size(); ++i) {
    uint64_t pos = offset + i;
    out[i] = word_byte(splitmix64(pos / kWordBytes, seed), pos % kWordBytes);
  }
}

std::vector<std::byte> pattern_slice(uint64_t offset, uint64_t length, uint64_t seed) {
  std::vector<std::byte> out(length);
  fill_pattern(out, offset, seed);
  return out;
}

std::vector<std::byte> make_pattern(uint64_t size, uint64_t seed) { return pattern_slice(0, size, seed); }

void write_pattern_file(const std::filesystem::path& path, uint64_t size, uint64_t seed) {
  OutputFile file(path);
  std::vector<std::byte> chunk(static_cast<std::size_t>(std::min<uint64_t>(size, kPatternChunkBytes)));
  for (uint64_t offset = 0; offset < size;) {
    std::span<std::byte> part(chunk.data(), static_cast<std::size_t>(std::min<uint64_t>(chunk.size(), size - offset)));
    fill_pattern(part, offset, seed);
    file.write(part);
    offset += part.size();
  }
  file.close();
}

std::ptrdiff_t open_fd_count() {
  return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator());
}

}  // namespace ringfetch::testing
