// `ringfetch load --safetensors OBJECT_URL [--tensors GLOB]...`: loads the tensors of one safetensors file (all of
// them, or those whose names match any GLOB) and reports the load like `load --plan`. The file's first 8 bytes are
// the header's length (u64, little-endian), then a JSON object maps each tensor's name to its dtype, shape and
// data_offsets [begin, end) counted from the first byte after the header. The header is read with one small
// fetch (a second only when it is longer than the first read), then the selected tensors become one plan, fetched
// and coalesced like any other.
#include <fnmatch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "byte_units.hpp"
#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "object_url.hpp"
#include "ringfetch/ringfetch.hpp"
#include "timed_load.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kSafetensorsHelp[] =
    "usage: ringfetch load --safetensors OBJECT_URL [--tensors GLOB]... [--json] [--threads N] [--arena-mib N]\n"
    "                      [--part-size BYTES] [--max-gap BYTES] [connection options]\n"
    "\n"
    "Loads the tensors of a safetensors file (file://, direct://, http(s)://, s3:// object URL): all of them, or\n"
    "those whose names match a --tensors GLOB (shell patterns, e.g. 'layers.*.weight'; repeat for more), and\n"
    "reports the load as `ringfetch load` does, plus the number of tensors.\n"
    "\n";

constexpr uint64_t kFirstReadBytes = 64 * 1024;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr uint64_t kMaxThreads = 64;
constexpr uint64_t kDefaultArenaBytes = uint64_t{256} << 20;
constexpr uint64_t kMaxArenaMiB = uint64_t{1} << 20;

struct TensorRange {
  std::string name;
  uint64_t begin = 0;  // object offsets
  uint64_t end = 0;
};

std::string read_bytes(Store& store, const std::string& key, uint64_t offset, uint64_t length) {
  Plan plan;
  plan.add(key, offset, length);
  std::string out;
  for (const ItemView& item : store.fetch(plan)) {
    out.append(reinterpret_cast<const char*>(item.bytes().data()), item.size());
  }
  return out;
}

Error bad_file(const std::string& url, const std::string& why) {
  return Error(ErrorKind::kIntegrity, url + " is not a safetensors file: " + why);
}

uint64_t element_bytes(const std::string& url, const std::string& dtype) {
  static const std::pair<const char*, uint64_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"U16", 2}, {"I16", 2}, {"F16", 2},
      {"BF16", 2}, {"U32", 4}, {"I32", 4}, {"F32", 4}, {"U64", 8}, {"I64", 8}, {"F64", 8}, {"C64", 8}};
  for (const auto& [name, size] : kSizes) {
    if (dtype == name) return size;
  }
  throw bad_file(url, "unknown dtype " + dtype);
}

// Every tensor of the header, with its object byte range, checked against its dtype, shape and the object size.
std::vector<TensorRange> read_header(Store& store, const std::string& url, const std::string& key) {
  const uint64_t size = store.size(key);
  if (size < 8) throw bad_file(url, std::to_string(size) + " bytes is shorter than the header length");
  std::string head = read_bytes(store, key, 0, std::min(size, kFirstReadBytes));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(head[i]);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    throw bad_file(url, "header length " + std::to_string(header_len) + " does not fit the object");
  }
  if (8 + header_len > head.size()) head += read_bytes(store, key, head.size(), 8 + header_len - head.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(head.begin() + 8, head.begin() + 8 + static_cast<std::ptrdiff_t>(header_len));
  } catch (const nlohmann::json::exception& e) {
    throw bad_file(url, std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) throw bad_file(url, "header is not a JSON object");
  const uint64_t data_start = 8 + header_len;
  std::vector<TensorRange> tensors;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      const uint64_t begin = info.at("data_offsets").at(0).get<uint64_t>();
      const uint64_t end = info.at("data_offsets").at(1).get<uint64_t>();
      uint64_t elements = 1;
      for (const auto& dim : info.at("shape")) elements *= dim.get<uint64_t>();
      const uint64_t expected = elements * element_bytes(url, info.at("dtype").get<std::string>());
      if (end < begin || end - begin != expected || data_start + end > size) {
        throw bad_file(url, "tensor '" + name + "' has data_offsets [" + std::to_string(begin) + ", " +
                                std::to_string(end) + ") that do not match its dtype and shape or the object");
      }
      tensors.push_back({name, data_start + begin, data_start + end});
    } catch (const nlohmann::json::exception& e) {
      throw bad_file(url, "tensor '" + name + "' has a malformed entry: " + e.what());
    }
  }
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.begin < b.begin; });
  return tensors;
}

bool selected(const std::string& name, const std::vector<std::string>& globs) {
  if (globs.empty()) return true;
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& glob) { return fnmatch(glob.c_str(), name.c_str(), 0) == 0; });
}

std::vector<std::string> glob_arguments(const Arguments& args) {
  std::vector<std::string> globs;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--tensors" && i + 1 < args.size()) globs.emplace_back(args[++i]);
    if (args[i].starts_with("--tensors=")) globs.emplace_back(args[i].substr(std::strlen("--tensors=")));
  }
  return globs;
}

}  // namespace

bool is_safetensors_load(const Arguments& args) {
  return std::any_of(args.begin(), args.end(), [](std::string_view word) {
    return word == "--safetensors" || word.starts_with("--safetensors=");
  });
}

int run_load_safetensors(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kSafetensorsHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const CommandLine line("ringfetch load", args,
                         with_connection_options({{"--safetensors", true}, {"--tensors", true}, {"--json", false},
                                                  {"--threads", true}, {"--arena-mib", true},
                                                  {"--part-size", true}, {"--max-gap", true}}));
  line.expect_positional({});
  const std::string url(*line.value("--safetensors"));
  const std::vector<std::string> globs = glob_arguments(args);
  StoreOptions store_options = connection_options(line);
  if (line.value("--part-size")) store_options.part_size = line.byte_count("--part-size", 0, 1, UINT64_MAX - 1);
  if (line.value("--max-gap")) store_options.max_gap = line.byte_count("--max-gap", 0, 0, UINT64_MAX - 1);
  const ObjectUrl object = split_object_url(url);

  EngineOptions engine_options;
  engine_options.threads =
      static_cast<unsigned>(line.number("--threads", default_engine_threads(), 1, kMaxThreads));
  const uint64_t arena_mib = line.number("--arena-mib", 0, 1, kMaxArenaMiB);
  engine_options.arena_bytes = arena_mib != 0 ? arena_mib * kMiB : kDefaultArenaBytes;
  Engine engine(engine_options);
  Store store = Store::open(object.root, engine, store_options);

  Plan plan;
  uint64_t largest = 0;
  size_t count = 0;
  for (const TensorRange& tensor : read_header(store, url, object.key)) {
    if (!selected(tensor.name, globs)) continue;
    ++count;
    largest = std::max(largest, tensor.end - tensor.begin);
    plan.add(object.key, tensor.begin, tensor.end - tensor.begin);
  }
  if (count == 0) throw Error(ErrorKind::kInvalidArgument, url + ": no tensor matches the --tensors patterns");
  if (largest > engine_options.arena_bytes) {
    throw Error(ErrorKind::kInvalidArgument, "the largest selected tensor (" + std::to_string(largest) +
                                                 " bytes) does not fit in the arena; raise --arena-mib");
  }
  const LoadResult result = timed_load(store, plan, object.key);
  if (line.has("--json")) {
    nlohmann::json report = load_json(result);
    report["tensors"] = count;
    std::printf("%s\n", report.dump().c_str());
  } else {
    print_load_table(stdout, std::span<const LoadResult>(&result, 1));
    std::printf("tensors: %zu\n", count);
  }
  return 0;
}

}  // namespace ringfetch::cli
