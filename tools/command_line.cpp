// CommandLine implementation: a single left-to-right pass over the words; numbers go through std::from_chars
// so that "12abc", "-3" and values that overflow 64 bits are rejected rather than truncated.
#include "command_line.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

namespace ringfetch::cli {
namespace {

constexpr uint64_t kKiB = uint64_t{1} << 10;

// Multiplier for a K/M/G suffix (case-insensitive, optional "iB"/"B" after it), or 0 when `suffix` is not one.
uint64_t suffix_multiplier(std::string_view suffix) {
  if (suffix.empty()) return 1;
  if (suffix == "B" || suffix == "b") return 1;
  const char unit = static_cast<char>(suffix[0] | 0x20);  // lower-case ASCII letter
  const std::string_view rest = suffix.substr(1);
  if (!rest.empty() && rest != "iB" && rest != "B" && rest != "ib" && rest != "b") return 0;
  switch (unit) {
    case 'k': return kKiB;
    case 'm': return kKiB * kKiB;
    case 'g': return kKiB * kKiB * kKiB;
    default: return 0;
  }
}

}  // namespace

CommandLine::CommandLine(std::string_view command, const std::vector<std::string_view>& args,
                         std::vector<OptionSpec> options)
    : command_(command), specs_(std::move(options)) {
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view word = args[i];
    if (options_ended || word.size() < 2 || word[0] != '-') {
      positional_.push_back(word);
      continue;
    }
    if (word == "--") {
      options_ended = true;
      continue;
    }
    const size_t equals = word.find('=');
    const std::string_view name = word.substr(0, equals);
    const OptionSpec* spec = find_spec(name);
    if (spec == nullptr) fail("unknown option '" + std::string(name) + "'");
    if (!spec->takes_value) {
      if (equals != std::string_view::npos) fail("option '" + std::string(name) + "' takes no value");
      given_.emplace_back(spec->name, std::string_view());
    } else if (equals != std::string_view::npos) {
      given_.emplace_back(spec->name, word.substr(equals + 1));
    } else {
      if (i + 1 >= args.size()) fail("option '" + std::string(name) + "' needs a value");
      given_.emplace_back(spec->name, args[++i]);
    }
  }
}

const OptionSpec* CommandLine::find_spec(std::string_view name) const {
  auto it = std::find_if(specs_.begin(), specs_.end(), [&](const OptionSpec& s) {
    return s.name == name || (!s.alias.empty() && s.alias == name);
  });
  return it == specs_.end() ? nullptr : &*it;
}

bool CommandLine::has(std::string_view name) const {
  return std::any_of(given_.begin(), given_.end(), [&](const auto& g) { return g.first == name; });
}

std::optional<std::string_view> CommandLine::value(std::string_view name) const {
  // The last occurrence wins, as in most Unix tools.
  for (auto it = given_.rbegin(); it != given_.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return std::nullopt;
}

std::vector<std::string_view> CommandLine::values(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& [given, text] : given_) {
    if (given == name) out.push_back(text);
  }
  return out;
}

uint64_t CommandLine::number(std::string_view name, uint64_t fallback, uint64_t min, uint64_t max) const {
  const std::optional<std::string_view> text = value(name);
  return text ? parse_number(name, *text, false, min, max) : fallback;
}

uint64_t CommandLine::byte_count(std::string_view name, uint64_t fallback, uint64_t min, uint64_t max) const {
  const std::optional<std::string_view> text = value(name);
  return text ? parse_number(name, *text, true, min, max) : fallback;
}

uint64_t CommandLine::parse_number(std::string_view name, std::string_view text, bool allow_suffix, uint64_t min,
                                   uint64_t max) const {
  uint64_t parsed = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  const std::string quoted = "'" + std::string(name) + " " + std::string(text) + "'";
  if (error == std::errc::result_out_of_range) fail(quoted + ": number too large");
  if (error != std::errc() || text.empty()) fail(quoted + ": expected a non-negative integer");
  const std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
  const uint64_t multiplier = allow_suffix ? suffix_multiplier(suffix) : (suffix.empty() ? 1 : 0);
  if (multiplier == 0) {
    fail(quoted + (allow_suffix ? ": expected an integer with an optional K, M or G suffix"
                                : ": expected a non-negative integer"));
  }
  if (parsed > UINT64_MAX / multiplier) fail(quoted + ": number too large");
  const uint64_t result = parsed * multiplier;
  if (result < min || result > max) {
    fail(quoted + ": must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return result;
}

void CommandLine::expect_positional(std::initializer_list<std::string_view> names) const {
  if (positional_.size() < names.size()) {
    fail("missing " + std::string(names.begin()[positional_.size()]));
  }
  if (positional_.size() > names.size()) {
    fail("unexpected argument '" + std::string(positional_[names.size()]) + "'");
  }
}

void CommandLine::fail(const std::string& message) const {
  throw UsageError(command_ + ": " + message + " (see '" + command_ + " --help')");
}

bool wants_help(const std::vector<std::string_view>& args) {
  for (std::string_view word : args) {
    if (word == "--") return false;
    if (word == "--help" || word == "-h") return true;
  }
  return false;
}

}  // namespace ringfetch::cli
