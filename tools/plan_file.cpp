// Plan file reader: nlohmann::json does the parsing; every check after that is ours, so that a mistake in a
// hand-written plan produces a message naming the item and field instead of a type_error from the JSON library.
#include "plan_file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ringfetch/error.hpp"

namespace ringfetch::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kStdinName = "-";  // --plan - reads the plan from stdin

[[noreturn]] void invalid(const std::string& path, const std::string& what) {
  throw Error(ErrorKind::kInvalidArgument, "plan file '" + path + "': " + what);
}

std::string read_text(const std::string& path) {
  std::ifstream file;
  if (path != kStdinName) {
    file.open(path, std::ios::binary);
    if (!file) throw Error(ErrorKind::kIo, "cannot open plan file '" + path + "': " + std::strerror(errno));
  }
  std::istream& in = path == kStdinName ? std::cin : file;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(ErrorKind::kIo, "cannot read plan file '" + path + "'");
  return std::move(text).str();
}

json parse_json(std::string_view text, const std::string& path) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    invalid(path, std::string("not valid JSON: ") + e.what());
  } catch (const json::exception& e) {  // out_of_range: a number too large for a double (1e808), ...
    invalid(path, std::string("a number is out of range: ") + e.what());
  }
}

std::string item_name(size_t index) { return "item " + std::to_string(index); }

uint64_t unsigned_field(const std::string& path, const json& item, size_t index, const char* field) {
  const std::string where = item_name(index) + " field \"" + field + "\"";
  if (!item.contains(field)) invalid(path, item_name(index) + " has no \"" + field + "\"");
  const json& value = item.at(field);
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) invalid(path, where + " is negative (" + value.dump() + ")");
  if (value.is_number_float()) {
    invalid(path, where + " must be an integer between 0 and 18446744073709551615, not " + value.dump());
  }
  invalid(path, where + " is not a number (" + std::string(value.type_name()) + ")");
}

std::string key_field(const std::string& path, const json& item, size_t index) {
  if (!item.contains("key")) invalid(path, item_name(index) + " has no \"key\"");
  const json& key = item.at("key");
  if (!key.is_string()) invalid(path, item_name(index) + " field \"key\" is not a string");
  std::string text = key.get<std::string>();
  if (text.empty()) invalid(path, item_name(index) + " field \"key\" is empty");
  return text;
}

}  // namespace

Plan read_plan_file(const std::string& path) { return parse_plan_text(read_text(path), path); }

Plan parse_plan_text(std::string_view text, const std::string& path) {
  const json document = parse_json(text, path);
  if (!document.is_object() || !document.contains("items")) {
    invalid(path, "expected a JSON object with an \"items\" array");
  }
  const json& items = document.at("items");
  if (!items.is_array()) invalid(path, "\"items\" is not an array");
  Plan plan;
  for (size_t i = 0; i < items.size(); ++i) {
    const json& item = items[i];
    if (!item.is_object()) invalid(path, item_name(i) + " is not an object");
    std::string key = key_field(path, item, i);
    const uint64_t offset = unsigned_field(path, item, i, "offset");
    const uint64_t length = unsigned_field(path, item, i, "length");
    plan.add(key, offset, length);
  }
  return plan;
}

}  // namespace ringfetch::cli
