// `ringfetch get OBJECT_URL FILE`: downloads one object into a file with parallel ranged reads. The output is
// sized and mapped first (mapped_file.hpp) and the object is fetched as a plan of kGetPieceBytes items whose
// destinations are consecutive slices of the mapping, so the parts land in place, in parallel (the store keeps
// max_in_flight requests going), while timed_load consumes them in order and drives the progress bar. Any
// store works (s3://, http(s)://, file://, direct://); the object URL is split as for `cat`.
// One engine thread: a single ring drives all of the download's connections (the work is in the network and the
// kernel's copies, not in our threads), and with several threads, shutting the engine down right after a
// network store's last read can currently hang (the store's teardown, left to an engine thread, waits on a thread
// that has already stopped); one thread never waits on another.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
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
    "to a temporary file beside FILE, renamed to FILE only once it is complete. OBJECT_URL is a store root plus a\n"
    "key, as for 'ringfetch cat' (s3://bucket/prefix/key, http://host/dir/obj, file:///dir/blob).\n"
    "\n"
    "options:\n"
    "  --part-size BYTES  longest single request (default: the source's, 8 MiB); K, M, G suffixes allowed\n"
    "\n";

constexpr uint64_t kGetPieceBytes = uint64_t{8} << 20;  // one plan item: the progress bar's step
// A direct:// object whose size is not a multiple of the block size ends in a piece that O_DIRECT cannot read in
// place; it is read into the arena and copied, so the arena holds one piece (and its block padding).
constexpr uint64_t kGetArenaBytes = kGetPieceBytes + kMiB;

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
  if (line.value("--part-size")) options.store.part_size = line.byte_count("--part-size", 0, 1, UINT64_MAX - 1);
  return options;
}

// FILE, or FILE/<key> when FILE is an existing directory (as cp and awscli do).
std::string output_path(const GetOptions& options) {
  std::error_code ignored;
  if (!std::filesystem::is_directory(options.destination, ignored)) return options.destination;
  return (std::filesystem::path(options.destination) / options.object.key).string();
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

}  // namespace

int run_get(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kGetHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const GetOptions options = parse_get_options(args);
  EngineOptions engine_options;
  engine_options.threads = 1;
  engine_options.arena_bytes = kGetArenaBytes;
  Engine engine(engine_options);
  Store store = Store::open(options.object.root, engine, options.store);
  const uint64_t size = store.size(options.object.key);  // before any file exists: a missing object leaves none
  const std::string path = output_path(options);
  MappedOutputFile file(path, size);
  const LoadResult result = timed_load(store, pieces_into(options.object.key, file.bytes()), options.object.key);
  file.commit();
  print_summary(options, path, size, result);
  return 0;
}

}  // namespace ringfetch::cli
