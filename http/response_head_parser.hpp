// ResponseHeadParser: incremental parser of one HTTP/1.1 (or 1.0) response head, fed slices as they arrive from
// the socket. It copies the head (at most Limits::max_head_bytes) into storage it owns and reuses across
// responses, so steady-state parsing allocates nothing; bytes after the blank line that ends the head are left
// unconsumed for the caller to treat as body. The framing headers (Content-Length, Transfer-Encoding, Connection,
// Content-Range, ETag) are checked and extracted; anything ambiguous is an error, never a guess:
//  - lines end in CRLF (a bare LF or bare CR is an error), obsolete line folding is an error;
//  - header names are tokens (a space before ':' is an error); values have OWS trimmed and no control characters;
//  - Content-Length values that disagree, Content-Length together with chunked, a transfer coding other than
//    chunked, and Transfer-Encoding in an HTTP/1.0 response are errors;
//  - ETag and Content-Range fields that appear twice with different values are errors.
// All errors are ErrorKind::kIntegrity. Interim (1xx) responses are returned like any other head; the caller
// skips them and reset()s. Whether a status needs a Content-Range or a body is the caller's decision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringfetch/error.hpp"

namespace ringfetch::http {

inline constexpr size_t kMaxHeadBytes = 16 * 1024;  // status line + fields + final CRLF
inline constexpr size_t kMaxHeaders = 100;          // header fields per head

struct ResponseHeadLimits {
  size_t max_head_bytes = kMaxHeadBytes;
  size_t max_headers = kMaxHeaders;
};

// Content-Range of a 206 ("bytes first-last/complete" or ".../*") or a 416 ("bytes */complete").
struct ContentRange {
  bool unsatisfied = false;                 // "bytes */N": first and last are 0 and meaningless
  uint64_t first = 0;                       // first byte position
  uint64_t last = 0;                        // last byte position, inclusive (first <= last)
  std::optional<uint64_t> complete_length;  // nullopt when the server sent '*'; else last < complete_length

  uint64_t length() const { return unsatisfied ? 0 : last - first + 1; }
  friend bool operator==(const ContentRange&, const ContentRange&) = default;
};

struct HeaderView {
  std::string_view name;   // as sent (case kept)
  std::string_view value;  // OWS trimmed
};

// A parsed head. The views it hands out point into its own storage: valid until it is changed or destroyed
// (a copy has its own storage).
class ResponseHead {
 public:
  int status = 0;
  int http_minor = 1;                        // 0 for HTTP/1.0, 1 for HTTP/1.1
  std::optional<uint64_t> content_length;
  std::optional<ContentRange> content_range;
  bool chunked = false;                      // Transfer-Encoding: chunked
  bool connection_close = false;             // Connection: close, or HTTP/1.0 without Connection: keep-alive
  std::string etag;                          // as sent (quotes and W/ kept); empty when absent

  std::string_view reason() const;           // reason phrase; may be empty
  size_t header_count() const { return fields_.size(); }
  HeaderView header(size_t index) const;     // in the order received
  // Value of the first field called `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> find(std::string_view name) const;
  std::string_view raw() const { return raw_; }  // the head as received, through the final CRLF

 private:
  friend class ResponseHeadParser;
  struct FieldOffsets {
    uint32_t name_begin = 0;
    uint32_t name_size = 0;
    uint32_t value_begin = 0;
    uint32_t value_size = 0;
  };
  void clear();  // keeps capacity

  std::string raw_;
  std::vector<FieldOffsets> fields_;
  uint32_t reason_begin_ = 0;
  uint32_t reason_size_ = 0;
};

class ResponseHeadParser {
 public:
  enum class Progress { kNeedMore, kComplete, kError };
  struct Result {
    size_t consumed = 0;  // bytes of the slice that belong to the head
    Progress progress = Progress::kNeedMore;
  };

  explicit ResponseHeadParser(ResponseHeadLimits limits = {});

  // Consumes head bytes from `bytes`. kComplete: head() is ready and bytes[consumed..] is body (or the next
  // response). kError: status() says why; further feeds consume nothing. Feeding after kComplete consumes nothing.
  Result feed(std::span<const char> bytes);

  const ResponseHead& head() const { return head_; }
  const Status& status() const { return status_; }
  bool complete() const { return state_ == State::kComplete; }
  size_t buffered_bytes() const { return head_.raw_.size(); }  // 0 means nothing of a response arrived yet

  // Prepares for the next response on the same connection; keeps the storage.
  void reset();

 private:
  enum class State { kStatusLine, kFields, kComplete, kError };
  struct FramingSeen {
    bool close = false;       // Connection: close
    bool keep_alive = false;  // Connection: keep-alive
    bool etag = false;        // an ETag field was seen (its value may be empty)
  };

  Result fail(size_t consumed, Status status);
  Status check_status_line_prefix() const;
  Status process_line();
  Status parse_status_line(size_t line_begin, std::string_view line);
  Status parse_field_line(size_t line_begin, std::string_view line);
  Status interpret_field(std::string_view name, std::string_view value);
  Status interpret_content_length(std::string_view value);
  Status interpret_transfer_encoding(std::string_view value);
  Status interpret_connection(std::string_view value);
  Status interpret_content_range(std::string_view value);
  Status interpret_etag(std::string_view value);
  Status finish_head();

  ResponseHeadLimits limits_;
  State state_ = State::kStatusLine;
  size_t line_begin_ = 0;  // offset in head_.raw_ of the line being received
  FramingSeen framing_;
  ResponseHead head_;
  Status status_;
};

}  // namespace ringfetch::http
