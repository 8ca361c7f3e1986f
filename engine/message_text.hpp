// Text from the outside world (URLs, header values) as it may appear in an error message: control bytes escaped
// so a message stays one readable line, and cut after a bound so a hostile peer cannot make it huge.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace ringfetch::engine {

// `text` with bytes below 0x20 and 0x7f written as \xNN, cut after max_bytes with "..." appended.
inline std::string escape_for_message(std::string_view text, size_t max_bytes) {
  constexpr char kHexDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 3);
  for (size_t i = 0; i < text.size() && i < max_bytes; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHexDigits[byte >> 4];
      out += kHexDigits[byte & 0xf];
    } else {
      out += text[i];
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

}  // namespace ringfetch::engine
