// `ringfetch get OBJECT_URL FILE`: downloads one object into a file with parallel ranged reads. The output is
// sized and mapped first (mapped_file.hpp) and the object is fetched as a plan of kGetPieceBytes items whose
// destinations are consecutive slices of the mapping, so the parts land in place, in parallel (the store keeps
// max_in_flight requests going), while timed_load consumes them in order and drives the progress bar. Any
// store works (s3://, http(s)://, file://, direct://); the object URL is split as for `cat`.
// Where the bytes go depends on what FILE is: a regular file (or a new name) is replaced atomically and keeps its
// permission bits; a symlink is followed to the file it names (the link stays a link); anything else (a device such
// as /dev/null, a FIFO) is written through as a stream, as a shell redirection would; `-` is stdout. Ctrl-C (or
// SIGTERM) removes the partial file; partial files that dead processes left beside FILE are removed first.
// One engine thread: a single ring drives all of the download's connections (the work is in the network and the
// kernel's copies, not in our threads), and with several threads, shutting the engine down right after a
// network store's last read can currently hang (the store's teardown, left to an engine thread, waits on a thread
// that has already stopped); one thread never waits on another.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "interrupts.hpp"
#include "mapped_file.hpp"
#include "object_url.hpp"
#include "ringfetch/ringfetch.hpp"
#include "timed_load.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kGetHelp[] =
    "usage: ringfetch get OBJECT_URL FILE [--part-size BYTES] [connection options]\n"
    "\n"
    "Downloads the object into FILE (or into FILE/<last part of the key> when FILE is a directory) with parallel\n"
    "ranged reads that land directly in the file, with a progress bar when stderr is a terminal. The download goes\n"
    "to a temporary file beside FILE, renamed to FILE only once it is complete (keeping FILE's permissions); Ctrl-C\n"
    "removes it. A symlink FILE is followed; a FILE that is not a regular file (/dev/null, a FIFO) is written\n"
    "through in order; FILE '-' is stdout. OBJECT_URL is a store root plus a key, as for 'ringfetch cat'\n"
    "(s3://bucket/prefix/key, http://host/dir/obj, file:///dir/blob).\n"
    "\n"
    "options:\n"
    "  --part-size BYTES  longest single request (default: the source's, 8 MiB; at least 64K); K, M, G suffixes\n"
    "                     allowed\n"
    "\n";

constexpr uint64_t kGetPieceBytes = uint64_t{8} << 20;  // one plan item: the progress bar's step
// Smaller requests cost more in round trips than they gain in parallelism (100-byte parts made a 150 MiB object
// 1.57 million requests).
constexpr uint64_t kMinGetPartBytes = uint64_t{64} << 10;
// A direct:// object whose size is not a multiple of the block size ends in a piece that O_DIRECT cannot read in
// place; it is read into the arena and copied, so the arena holds one piece (and its block padding).
constexpr uint64_t kGetArenaBytes = kGetPieceBytes + kMiB;
// Written through as a stream (stdout, devices, FIFOs): the pieces land in the arena and are written in order.
constexpr uint64_t kStreamPieceBytes = uint64_t{4} << 20;
constexpr uint64_t kStreamArenaBytes = 8 * kStreamPieceBytes + kMiB;
constexpr int kMaxSymlinkHops = 40;  // as the kernel's ELOOP limit
constexpr std::string_view kStdoutName = "-";

enum class OutputKind {
  kFile,    // a regular file or a new one: replaced atomically
  kStream,  // an existing file that is not regular (device, FIFO): opened and written in order
  kStdout,
};

struct Output {
  OutputKind kind = OutputKind::kFile;
  std::string path;           // symlinks resolved
  std::optional<mode_t> mode;  // permission bits of the regular file being replaced
};

struct GetOptions {
  std::string url;
  ObjectUrl object;
  std::string destination;
  StoreOptions store;
};

GetOptions parse_get_options(const Arguments& args) {
  const CommandLine line("ringfetch get", args,
                         with_connection_options({{"--part-size", true}}));
  line.expect_positional({"OBJECT_URL", "FILE"});
  GetOptions options;
  options.url = std::string(line.positional()[0]);
  options.object = split_object_url(options.url);
  options.destination = std::string(line.positional()[1]);
  options.store = connection_options(line);
  if (line.value("--part-size")) {
    options.store.part_size = line.byte_count("--part-size", 0, kMinGetPartBytes, UINT64_MAX - 1);
  }
  return options;
}

// FILE, or FILE/<key> when FILE is an existing directory (as cp and awscli do).
std::string output_path(const GetOptions& options) {
  if (options.destination == kStdoutName) return options.destination;
  std::error_code ignored;
  if (!std::filesystem::is_directory(options.destination, ignored)) return options.destination;
  return (std::filesystem::path(options.destination) / options.object.key).string();
}

Error output_error(const std::string& what, const std::string& path, int err) {
  return Error(ErrorKind::kIo, what + " '" + path + "': " + std::strerror(err));
}

// Follows `path` through symlinks to the name they end at (which may not exist yet: a dangling link's target is
// created, as a shell redirection would).
std::string resolve_symlinks(const std::string& path) {
  std::filesystem::path current = path;
  for (int hop = 0; hop < kMaxSymlinkHops; ++hop) {
    struct stat info {};
    if (::lstat(current.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) return current.string();
    std::error_code error;
    const std::filesystem::path target = std::filesystem::read_symlink(current, error);
    if (error) throw output_error("cannot read the symlink", current.string(), error.value());
    current = target.is_absolute() ? target : current.parent_path() / target;
  }
  throw output_error("cannot write to", path, ELOOP);
}

Output classify_output(const std::string& destination) {
  if (destination == kStdoutName) return {OutputKind::kStdout, destination, std::nullopt};
  Output output;
  output.path = resolve_symlinks(destination);
  struct stat info {};
  if (::stat(output.path.c_str(), &info) != 0) {
    if (errno == ENOENT) return output;
    throw output_error("cannot write to", destination, errno);
  }
  if (S_ISDIR(info.st_mode)) throw output_error("cannot write to", destination, EISDIR);
  if (S_ISREG(info.st_mode)) {
    output.mode = info.st_mode & 07777;
  } else {
    output.kind = OutputKind::kStream;
  }
  return output;
}

// Thrown when stdout's reader went away: the download stops quietly, like a filter whose consumer has seen enough.
struct PipeClosed {};

void write_all(int fd, std::span<const std::byte> bytes, const std::string& name) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE) throw PipeClosed{};
    if (n < 0) throw output_error("cannot write to", name, errno);
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

class OutputDescriptor {
 public:
  explicit OutputDescriptor(const Output& output) {
    if (output.kind == OutputKind::kStdout) return;
    fd_ = ::open(output.path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd_ < 0) throw output_error("cannot open", output.path, errno);
  }
  ~OutputDescriptor() {
    if (fd_ != STDOUT_FILENO) ::close(fd_);
  }
  OutputDescriptor(const OutputDescriptor&) = delete;
  OutputDescriptor& operator=(const OutputDescriptor&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_ = STDOUT_FILENO;
};

Plan stream_pieces(const std::string& key, uint64_t size) {
  Plan plan;
  for (uint64_t offset = 0; offset < size; offset += kStreamPieceBytes) {
    plan.add(key, offset, std::min<uint64_t>(kStreamPieceBytes, size - offset));
  }
  return plan;
}

Plan pieces_into(const std::string& key, std::span<std::byte> file) {
  Plan plan;
  for (uint64_t offset = 0; offset < file.size(); offset += kGetPieceBytes) {
    const uint64_t length = std::min<uint64_t>(kGetPieceBytes, file.size() - offset);
    plan.add(key, offset, length, file.subspan(offset, length));
  }
  return plan;
}

void print_summary(const GetOptions& options, const std::string& path, uint64_t size, const LoadResult& result) {
  std::printf("download: %s to %s (%s in %.2f s, %.2f GB/s)\n", options.url.c_str(), path.c_str(),
              human_bytes(size).c_str(), result.seconds, result.gbps());
}

LoadResult download_to_file(Store& store, const GetOptions& options, const Output& output, uint64_t size,
                            FileToRemoveOnInterrupt& partial) {
  const std::filesystem::path directory = std::filesystem::path(output.path).parent_path();
  for (const std::string& stale : remove_stale_partial_files(directory.empty() ? "." : directory.string())) {
    say("removed " + stale + ", left by a download that did not finish");
  }
  MappedOutputFile file(output.path, size, output.mode);
  partial.set(file.temporary_path());
  const LoadResult result = timed_load(store, pieces_into(options.object.key, file.bytes()), options.object.key);
  file.commit();
  partial.clear();
  return result;
}

LoadResult download_to_stream(Store& store, const GetOptions& options, const Output& output, uint64_t size) {
  const OutputDescriptor fd(output);
  const std::string name = output.kind == OutputKind::kStdout ? std::string("stdout") : output.path;
  return timed_load(store, stream_pieces(options.object.key, size), options.object.key,
                    [&](const ItemView& item) { write_all(fd.get(), item.bytes(), name); });
}

}  // namespace

int run_get(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kGetHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const GetOptions options = parse_get_options(args);
  const Output output = classify_output(output_path(options));
  FileToRemoveOnInterrupt partial;
  // Before the engine starts, so that its threads inherit the blocked signals.
  const InterruptHandler interrupts([&partial](int signal) {
    partial.remove_now();
    say("interrupted by " + signal_name(signal) + "; the partial download was removed");
    ::_exit(128 + signal);
  });
  if (output.kind == OutputKind::kStdout) std::signal(SIGPIPE, SIG_IGN);  // EPIPE from write(2) instead
  EngineOptions engine_options;
  engine_options.threads = 1;
  engine_options.arena_bytes = output.kind == OutputKind::kFile ? kGetArenaBytes : kStreamArenaBytes;
  Engine engine(engine_options);
  Store store = Store::open(options.object.root, engine, options.store);
  const uint64_t size = store.size(options.object.key);  // before any file exists: a missing object leaves none
  try {
    const LoadResult result = output.kind == OutputKind::kFile
                                  ? download_to_file(store, options, output, size, partial)
                                  : download_to_stream(store, options, output, size);
    if (output.kind != OutputKind::kStdout) print_summary(options, output.path, size, result);
  } catch (const PipeClosed&) {
  }
  return 0;
}

}  // namespace ringfetch::cli
