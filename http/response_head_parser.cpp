// ResponseHeadParser (see the header for the rules). The head is received line by line: each slice is copied up
// to and including its next '\n' (memchr, no per-byte work outside the line checks), and every completed line is
// validated at once, so a malformed status line fails on its first line rather than after 16 KiB of garbage.
#include "http/response_head_parser.hpp"

#include "engine/message_text.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace ringfetch::http {
namespace {

constexpr std::string_view kHttpPrefix = "HTTP/";
constexpr size_t kStatusLineMinBytes = 12;  // "HTTP/1.1 200"
constexpr size_t kMaxQuotedBytes = 64;      // longer values are cut in error messages
constexpr int kMinStatus = 100;
constexpr int kMaxStatus = 599;

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ows(char c) { return c == ' ' || c == '\t'; }

// Control characters other than HTAB; obs-text (0x80-0xff) is allowed in values.
bool is_forbidden_in_value(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return (byte < 0x20 && byte != '\t') || byte == 0x7f;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && is_ows(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_ows(text.back())) text.remove_suffix(1);
  return text;
}

// Digits only (no sign, no spaces), no overflow.
bool parse_decimal(std::string_view text, uint64_t* value) {
  if (text.empty()) return false;
  uint64_t result = 0;
  for (char c : text) {
    if (!is_digit(c)) return false;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (result > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    result = result * 10 + digit;
  }
  *value = result;
  return true;
}

// Text quoted in messages: control bytes escaped, long text cut.
std::string quote(std::string_view text) { return "'" + engine::escape_for_message(text, kMaxQuotedBytes) + "'"; }

Status malformed(std::string_view what) {
  return Status(ErrorKind::kIntegrity, "malformed HTTP response head: " + std::string(what));
}

// Calls visit(element) for each non-empty element of a comma-separated list (RFC 9110 5.6.1), OWS trimmed.
template <typename Visit>
Status for_each_list_element(std::string_view list, Visit visit) {
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty()) {
      if (Status status = visit(element); !status.ok()) return status;
    }
    if (comma == std::string_view::npos) return Status();
    list.remove_prefix(comma + 1);
  }
}

// "bytes first-last/complete", "bytes first-last/*" or "bytes */complete".
bool parse_content_range(std::string_view value, ContentRange* range) {
  constexpr std::string_view kUnit = "bytes ";
  if (value.size() < kUnit.size() || !iequals(value.substr(0, kUnit.size()), kUnit)) return false;
  value.remove_prefix(kUnit.size());
  const size_t slash = value.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view positions = value.substr(0, slash);
  const std::string_view complete = value.substr(slash + 1);
  ContentRange parsed;
  if (complete != "*") {
    uint64_t complete_length = 0;
    if (!parse_decimal(complete, &complete_length)) return false;
    parsed.complete_length = complete_length;
  }
  if (positions == "*") {
    parsed.unsatisfied = true;
    if (!parsed.complete_length) return false;  // "bytes */*" says nothing
    *range = parsed;
    return true;
  }
  const size_t dash = positions.find('-');
  if (dash == std::string_view::npos) return false;
  if (!parse_decimal(positions.substr(0, dash), &parsed.first)) return false;
  if (!parse_decimal(positions.substr(dash + 1), &parsed.last)) return false;
  if (parsed.first > parsed.last) return false;
  // A range of 2^64 bytes has a length no uint64_t holds (length() would wrap to 0); no object is that large.
  if (parsed.first == 0 && parsed.last == UINT64_MAX) return false;
  if (parsed.complete_length && parsed.last >= *parsed.complete_length) return false;
  *range = parsed;
  return true;
}

}  // namespace

// ---- ResponseHead ----

void ResponseHead::clear() {
  status = 0;
  http_minor = 1;
  content_length.reset();
  content_range.reset();
  chunked = false;
  connection_close = false;
  etag.clear();
  raw_.clear();
  fields_.clear();
  reason_begin_ = 0;
  reason_size_ = 0;
}

std::string_view ResponseHead::reason() const {
  return std::string_view(raw_).substr(reason_begin_, reason_size_);
}

HeaderView ResponseHead::header(size_t index) const {
  const FieldOffsets& field = fields_.at(index);
  const std::string_view raw(raw_);
  return HeaderView{raw.substr(field.name_begin, field.name_size), raw.substr(field.value_begin, field.value_size)};
}

std::optional<std::string_view> ResponseHead::find(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    const HeaderView field = header(i);
    if (iequals(field.name, name)) return field.value;
  }
  return std::nullopt;
}

// ---- ResponseHeadParser ----

ResponseHeadParser::ResponseHeadParser(ResponseHeadLimits limits) : limits_(limits) {
  // Field offsets are 32-bit; no sane head comes near that.
  limits_.max_head_bytes = std::min<size_t>(limits_.max_head_bytes, std::numeric_limits<uint32_t>::max());
  head_.raw_.reserve(std::min(limits_.max_head_bytes, kMaxHeadBytes));
  head_.fields_.reserve(std::min(limits_.max_headers, kMaxHeaders));
}

void ResponseHeadParser::reset() {
  head_.clear();
  state_ = State::kStatusLine;
  line_begin_ = 0;
  framing_ = FramingSeen();
  status_ = Status();
}

ResponseHeadParser::Result ResponseHeadParser::fail(size_t consumed, Status status) {
  state_ = State::kError;
  status_ = std::move(status);
  return Result{consumed, Progress::kError};
}

ResponseHeadParser::Result ResponseHeadParser::feed(std::span<const char> bytes) {
  if (state_ == State::kComplete) return Result{0, Progress::kComplete};
  if (state_ == State::kError) return Result{0, Progress::kError};
  size_t consumed = 0;
  while (consumed < bytes.size()) {
    const char* begin = bytes.data() + consumed;
    const size_t available = bytes.size() - consumed;
    const auto* newline = static_cast<const char*>(std::memchr(begin, '\n', available));
    const size_t take = newline != nullptr ? static_cast<size_t>(newline - begin) + 1 : available;
    if (head_.raw_.size() + take > limits_.max_head_bytes) {
      return fail(consumed, Status(ErrorKind::kIntegrity, "HTTP response head larger than " +
                                                              std::to_string(limits_.max_head_bytes) + " bytes"));
    }
    head_.raw_.append(begin, take);
    consumed += take;
    if (state_ == State::kStatusLine) {
      if (Status status = check_status_line_prefix(); !status.ok()) return fail(consumed, std::move(status));
    }
    if (newline == nullptr) break;
    if (Status status = process_line(); !status.ok()) return fail(consumed, std::move(status));
    if (state_ == State::kComplete) return Result{consumed, Progress::kComplete};
  }
  return Result{consumed, Progress::kNeedMore};
}

// Fails as soon as the first bytes show that the peer is not speaking HTTP/1.x (TLS, garbage, HTTP/2 preface).
Status ResponseHeadParser::check_status_line_prefix() const {
  const size_t checked = std::min(head_.raw_.size(), kHttpPrefix.size());
  if (std::string_view(head_.raw_).substr(0, checked) != kHttpPrefix.substr(0, checked)) {
    return malformed("status line does not start with 'HTTP/'");
  }
  return Status();
}

Status ResponseHeadParser::process_line() {
  const std::string_view line = std::string_view(head_.raw_).substr(line_begin_);  // ends in '\n'
  const size_t line_begin = line_begin_;
  line_begin_ = head_.raw_.size();
  if (line.size() < 2 || line[line.size() - 2] != '\r') return malformed("line ends in a bare LF (expected CRLF)");
  const std::string_view content = line.substr(0, line.size() - 2);
  if (content.find('\r') != std::string_view::npos) return malformed("bare CR inside a line");
  if (state_ == State::kStatusLine) {
    state_ = State::kFields;
    return parse_status_line(line_begin, content);
  }
  if (content.empty()) {
    state_ = State::kComplete;
    return finish_head();
  }
  return parse_field_line(line_begin, content);
}

// "HTTP/1.1 206 Partial Content", "HTTP/1.0 200", "HTTP/1.1 200 " (empty reason).
Status ResponseHeadParser::parse_status_line(size_t line_begin, std::string_view line) {
  if (line.size() < kStatusLineMinBytes || !is_digit(line[5]) || line[6] != '.' || !is_digit(line[7]) ||
      line[8] != ' ') {
    return malformed("bad status line " + quote(line));
  }
  if (line[5] != '1') return malformed("unsupported HTTP version " + quote(line.substr(0, 8)));
  head_.http_minor = line[7] - '0';
  const std::string_view code = line.substr(9, 3);
  if (!std::all_of(code.begin(), code.end(), is_digit) || (line.size() > 12 && line[12] != ' ')) {
    return malformed("bad status code in " + quote(line));
  }
  head_.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (head_.status < kMinStatus || head_.status > kMaxStatus) {
    return malformed("status code " + std::string(code) + " out of range 100-599");
  }
  const std::string_view reason = line.size() > 12 ? line.substr(13) : std::string_view();
  if (std::any_of(reason.begin(), reason.end(), is_forbidden_in_value)) {
    return malformed("control character in reason phrase");
  }
  head_.reason_begin_ = static_cast<uint32_t>(line_begin + 13);
  head_.reason_size_ = static_cast<uint32_t>(reason.size());
  return Status();
}

Status ResponseHeadParser::parse_field_line(size_t line_begin, std::string_view line) {
  if (is_ows(line.front())) return malformed("obsolete line folding is not supported");
  if (head_.fields_.size() >= limits_.max_headers) {
    return Status(ErrorKind::kIntegrity,
                  "HTTP response head has more than " + std::to_string(limits_.max_headers) + " header fields");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return malformed("header line without ':' " + quote(line));
  const std::string_view name = line.substr(0, colon);
  if (name.empty()) return malformed("empty header name");
  for (char c : name) {
    if (is_ows(c)) return malformed("whitespace in header name " + quote(name));
    if (!is_token_char(c)) return malformed("invalid character in header name " + quote(name));
  }
  const std::string_view value = trim_ows(line.substr(colon + 1));
  if (std::any_of(value.begin(), value.end(), is_forbidden_in_value)) {
    return malformed("control character in value of header " + quote(name));
  }
  const size_t value_begin = line_begin + static_cast<size_t>(value.data() - line.data());
  head_.fields_.push_back(ResponseHead::FieldOffsets{static_cast<uint32_t>(line_begin),
                                                     static_cast<uint32_t>(name.size()),
                                                     static_cast<uint32_t>(value_begin),
                                                     static_cast<uint32_t>(value.size())});
  return interpret_field(name, value);
}

Status ResponseHeadParser::interpret_field(std::string_view name, std::string_view value) {
  if (iequals(name, "Content-Length")) return interpret_content_length(value);
  if (iequals(name, "Transfer-Encoding")) return interpret_transfer_encoding(value);
  if (iequals(name, "Connection")) return interpret_connection(value);
  if (iequals(name, "Content-Range")) return interpret_content_range(value);
  if (iequals(name, "ETag")) return interpret_etag(value);
  return Status();
}

// A list of identical values ("42, 42") is one length (RFC 9110 8.6); any disagreement is an error.
Status ResponseHeadParser::interpret_content_length(std::string_view value) {
  bool any = false;
  Status status = for_each_list_element(value, [&](std::string_view element) {
    uint64_t length = 0;
    if (!parse_decimal(element, &length)) return malformed("bad Content-Length " + quote(value));
    if (head_.content_length && *head_.content_length != length) {
      return malformed("conflicting Content-Length values");
    }
    head_.content_length = length;
    any = true;
    return Status();
  });
  if (status.ok() && !any) return malformed("bad Content-Length " + quote(value));
  return status;
}

// Only "chunked" is supported; it may appear once (over all Transfer-Encoding fields).
Status ResponseHeadParser::interpret_transfer_encoding(std::string_view value) {
  bool any = false;
  Status status = for_each_list_element(value, [&](std::string_view coding) {
    if (!iequals(coding, "chunked")) return malformed("unsupported Transfer-Encoding " + quote(coding));
    if (head_.chunked) return malformed("Transfer-Encoding chunked applied more than once");
    head_.chunked = true;
    any = true;
    return Status();
  });
  if (status.ok() && !any) return malformed("empty Transfer-Encoding");
  return status;
}

Status ResponseHeadParser::interpret_connection(std::string_view value) {
  return for_each_list_element(value, [&](std::string_view option) {
    if (iequals(option, "close")) framing_.close = true;
    if (iequals(option, "keep-alive")) framing_.keep_alive = true;
    return Status();
  });
}

Status ResponseHeadParser::interpret_content_range(std::string_view value) {
  ContentRange range;
  if (!parse_content_range(value, &range)) return malformed("bad Content-Range " + quote(value));
  if (head_.content_range && *head_.content_range != range) return malformed("conflicting Content-Range values");
  head_.content_range = range;
  return Status();
}

// A head with two different ETags cannot be pinned to one version of the object.
Status ResponseHeadParser::interpret_etag(std::string_view value) {
  if (framing_.etag && head_.etag != value) return malformed("conflicting ETag values");
  framing_.etag = true;
  head_.etag.assign(value);
  return Status();
}

Status ResponseHeadParser::finish_head() {
  if (head_.chunked && head_.content_length) {
    return malformed("both Content-Length and Transfer-Encoding: chunked");
  }
  if (head_.chunked && head_.http_minor == 0) return malformed("Transfer-Encoding in an HTTP/1.0 response");
  head_.connection_close = framing_.close || (head_.http_minor == 0 && !framing_.keep_alive);
  return Status();
}

}  // namespace ringfetch::http
