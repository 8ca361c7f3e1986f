// Plan files: the JSON form of a ringfetch::Plan that `ringfetch load` reads,
//   {"items": [{"key": "a/b", "offset": 0, "length": 10}, ...]}
// key is relative to the store root; offset and length are non-negative integers (length 0 is allowed and
// skipped by the engine). Unknown fields are ignored so that plan files can carry their own annotations.
#pragma once

#include <string>
#include <string_view>

#include "ringfetch/plan.hpp"

namespace ringfetch::cli {

// Reads and validates the plan file at `path`. Throws ringfetch::Error: kIo when the file cannot be read,
// kInvalidArgument for malformed JSON or a bad item (the message names the file, the item index and the field).
// `path` "-" reads stdin.
Plan read_plan_file(const std::string& path);

// The same checks on a plan file's text; `name` is the file named in messages. Throws ringfetch::Error only.
Plan parse_plan_text(std::string_view text, const std::string& name);

}  // namespace ringfetch::cli
