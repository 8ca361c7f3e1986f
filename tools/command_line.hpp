// CommandLine: the option parser shared by the `ringfetch` subcommands. Each subcommand declares the options it
// takes; anything else (an unknown flag, a missing value, a number that does not parse) is a UsageError, which
// main turns into one line on stderr and exit status 2. Values are checked here so that commands read typed,
// already-validated numbers.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ringfetch::cli {

// A mistake in how the program was called (as opposed to a failure while running it).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string_view name;  // with the leading "--"
  bool takes_value = false;
  std::string_view alias = {};  // another spelling ("--endpoint" for "--endpoint-url"); reported as `name`
};

class CommandLine {
 public:
  // Parses `args` (the words after the subcommand name). `command` names the subcommand in messages
  // ("ringfetch load"). "--name value" and "--name=value" are both accepted; "--" ends the options. `options` is
  // usually a braced list; commands that share options (connection_options.hpp) build it as a vector.
  CommandLine(std::string_view command, const std::vector<std::string_view>& args, std::vector<OptionSpec> options);

  bool has(std::string_view name) const;
  std::optional<std::string_view> value(std::string_view name) const;
  // Every value given for a repeatable option, in order.
  std::vector<std::string_view> values(std::string_view name) const;
  // The option's value as an integer in [min, max], or `fallback` when absent.
  uint64_t number(std::string_view name, uint64_t fallback, uint64_t min, uint64_t max) const;
  // Like number(), but the value may end in K, M or G (KiB, MiB, GiB).
  uint64_t byte_count(std::string_view name, uint64_t fallback, uint64_t min, uint64_t max) const;

  const std::vector<std::string_view>& positional() const noexcept { return positional_; }
  // Throws UsageError unless exactly the named positional arguments were given.
  void expect_positional(std::initializer_list<std::string_view> names) const;

  [[noreturn]] void fail(const std::string& message) const;

 private:
  const OptionSpec* find_spec(std::string_view name) const;
  uint64_t parse_number(std::string_view name, std::string_view text, bool allow_suffix, uint64_t min,
                        uint64_t max) const;

  std::string command_;
  std::vector<OptionSpec> specs_;
  std::vector<std::pair<std::string_view, std::string_view>> given_;  // option -> value ("" for flags)
  std::vector<std::string_view> positional_;
};

// True when any word of `args` asks for help ("--help" or "-h").
bool wants_help(const std::vector<std::string_view>& args);

}  // namespace ringfetch::cli
