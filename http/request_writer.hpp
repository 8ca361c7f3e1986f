// Request heads: formats an HTTP/1.1 request head (request line, Host, the caller's fields in order, Range,
// Content-Length, Connection: close when asked) and refuses anything that could change the framing: CR, LF or
// other control characters anywhere, a method or field name that is not a token, a target that is not an
// origin-form path, and caller fields that the writer owns (Host, Content-Length, Transfer-Encoding, Connection,
// Range), so a second, conflicting copy can never reach the wire. Connections are kept alive by default (no
// Connection field). Errors are ErrorKind::kInvalidArgument and leave the output unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ringfetch/error.hpp"

namespace ringfetch::http {

struct RequestField {
  std::string name;
  std::string value;
};

// Bytes first..last inclusive, written "Range: bytes=first-last".
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
};

// Reuse one RequestHead per connection to keep string capacity across requests.
struct RequestHead {
  std::string method = "GET";
  std::string path = "/";       // origin-form, starts with '/', percent-encoded; no '?' or '#'
  std::string query;            // without '?'; empty for none
  std::string host;             // Host field value, e.g. Url::host_header(): "example.com", "[::1]:8080"
  std::vector<RequestField> fields;        // extra fields, written in this order
  std::optional<ByteRange> range;          // Range: bytes=first-last
  std::optional<uint64_t> content_length;  // Content-Length (also 0), for requests with a body
  bool close_connection = false;           // Connection: close
};

// Appends the head of `request` (through the blank line) to *out. On error *out is unchanged.
Status write_request_head(const RequestHead& request, std::string* out);

// "bytes=first-last", the Range field value; first must be <= last (not checked here; write_request_head checks).
std::string format_range(const ByteRange& range);

}  // namespace ringfetch::http
