// Plan files: the JSON form of a ringfetch::Plan that `ringfetch load` reads,
//   {"items": [{"key": "a/b", "offset": 0, "length": 10}, ...]}
// key is relative to the store root; offset and length are non-negative integers (length 0 is allowed and
// skipped by the engine). Unknown fields are ignored so that plan files can carry their own annotations.
#pragma once

#include <string>

#include "ringfetch/plan.hpp"

namespace ringfetch::cli {

// Reads and validates the plan file at `path`. Throws ringfetch::Error: kIo when the file cannot be read,
// kInvalidArgument for malformed JSON or a bad item (the message names the file, the item index and the field).
Plan read_plan_file(const std::string& path);

}  // namespace ringfetch::cli
