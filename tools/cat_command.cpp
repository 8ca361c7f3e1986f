// `ringfetch cat OBJECT_URL [--range A-B]`: writes an object, or bytes A..B of it (inclusive, as HTTP ranges
// are written), to stdout. The object URL is split at its last '/' into store root and key (object_url.hpp),
// for file://, direct://, http(s):// and s3:// alike. A whole object is streamed with Store::reader; a range is
// fetched as a plan of kRangePieceBytes items so that a range of any length flows through a small arena. The
// arena is small on purpose: printing a few bytes must not fault in hundreds of MiB first.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "object_url.hpp"
#include "ringfetch/ringfetch.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kCatHelp[] =
    "usage: ringfetch cat OBJECT_URL [--range A-B] [connection options]\n"
    "\n"
    "Writes the object to stdout, or only bytes A through B (inclusive, as in an HTTP Range header; 'A-' means\n"
    "from A to the end; B past the end is clamped to the last byte).\n"
    "OBJECT_URL is a store root plus a key, split at the last '/':\n"
    "  file:///tmp/x/blob        -> root file:///tmp/x, key blob\n"
    "  s3://bucket/prefix/key    -> root s3://bucket/prefix, key key\n"
    "  http://host:8080/dir/obj  -> root http://host:8080/dir, key obj\n"
    "\n"
    "options:\n"
    "  --range A-B   byte range to write (default: the whole object)\n"
    "\n";

constexpr uint64_t kCatArenaBytes = uint64_t{32} << 20;
constexpr uint64_t kRangePieceBytes = uint64_t{4} << 20;  // one plan item; requests still coalesce them
// Covers the reader's part_size pieces (8 MiB by default) and O_DIRECT widening of a small range.
constexpr uint64_t kArenaSlackBytes = uint64_t{1} << 20;
constexpr uint64_t kSmallCatArenaBytes = uint64_t{2} << 20;

struct ByteRange {
  uint64_t first = 0;
  std::optional<uint64_t> last;  // inclusive; nullopt: to the end
};

std::optional<uint64_t> parse_offset(std::string_view text) {
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

ByteRange parse_range(const CommandLine& line, std::string_view text) {
  const size_t dash = text.find('-');
  const std::string quoted = "'--range " + std::string(text) + "'";
  if (dash == std::string_view::npos) line.fail(quoted + ": expected A-B (first and last byte, inclusive)");
  const std::optional<uint64_t> first = parse_offset(text.substr(0, dash));
  const std::string_view last_text = text.substr(dash + 1);
  const std::optional<uint64_t> last = last_text.empty() ? std::nullopt : parse_offset(last_text);
  if (!first || (!last_text.empty() && !last)) {
    line.fail(quoted + ": A and B must be non-negative integers (A-B, or A- for the rest of the object)");
  }
  if (last && *last < *first) {
    line.fail(quoted + ": the last byte " + std::to_string(*last) + " comes before the first byte " +
              std::to_string(*first));
  }
  return {*first, last};
}

// write(2) until done. Returns false when the reader went away (EPIPE): the caller stops quietly, like a
// filter in a pipeline whose consumer has seen enough.
bool write_stdout(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE) return false;
    if (n < 0) throw Error(ErrorKind::kIo, std::string("cannot write to stdout: ") + std::strerror(errno));
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return true;
}

void cat_whole(Store& store, const std::string& key) {
  Reader reader = store.reader(key);
  for (ItemView chunk = reader.read(Reader::kAll); chunk.size() > 0; chunk = reader.read(Reader::kAll)) {
    if (!write_stdout(chunk.bytes())) return;
  }
}

// Writes [first, end) of the object.
void cat_range(Store& store, const std::string& key, uint64_t first, uint64_t end) {
  Plan plan;
  for (uint64_t offset = first; offset < end; offset += kRangePieceBytes) {
    plan.add(key, offset, std::min(kRangePieceBytes, end - offset));
  }
  FetchBatch batch = store.fetch(plan);
  while (std::optional<ItemView> piece = batch.next()) {
    if (!write_stdout(piece->bytes())) return;
  }
}

uint64_t arena_for(const std::optional<ByteRange>& range) {
  if (!range || !range->last) return kCatArenaBytes;
  const uint64_t length = std::min(*range->last - range->first, kCatArenaBytes);  // one less; no overflow
  return std::clamp(length + 1 + kArenaSlackBytes, kSmallCatArenaBytes, kCatArenaBytes);
}

void cat(const ObjectUrl& object, const std::optional<ByteRange>& range, const StoreOptions& options) {
  EngineOptions engine_options;
  engine_options.arena_bytes = arena_for(range);
  Engine engine(engine_options);
  Store store = Store::open(object.root, engine, options);
  if (!range) return cat_whole(store, object.key);
  const uint64_t size = store.size(object.key);
  if (range->first >= size) {
    throw Error(ErrorKind::kInvalidArgument, "range starts at byte " + std::to_string(range->first) + " but " +
                                                 object.root + "/" + object.key + " has " + std::to_string(size) +
                                                 " bytes");
  }
  const uint64_t end = range->last && *range->last < size ? *range->last + 1 : size;
  cat_range(store, object.key, range->first, end);
}

}  // namespace

int run_cat(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kCatHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const CommandLine line("ringfetch cat", args, with_connection_options({{"--range", true}}));
  line.expect_positional({"OBJECT_URL"});
  std::optional<ByteRange> range;
  if (std::optional<std::string_view> text = line.value("--range")) range = parse_range(line, *text);
  const ObjectUrl object = split_object_url(line.positional()[0]);
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe becomes EPIPE from write(2), handled above
  cat(object, range, connection_options(line));
  return 0;
}

}  // namespace ringfetch::cli
