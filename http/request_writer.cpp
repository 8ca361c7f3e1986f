// write_request_head (see the header): validate every piece first, then append. Validation is complete before
// the first byte is written, so a rejected request leaves the caller's buffer as it was.
#include "http/request_writer.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace ringfetch::http {
namespace {

// Fields whose value the writer derives from RequestHead; a caller copy could contradict it.
constexpr std::array<std::string_view, 5> kWriterOwnedFields = {"Host", "Content-Length", "Transfer-Encoding",
                                                                "Connection", "Range"};

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) { return !text.empty() && std::all_of(text.begin(), text.end(), is_token_char); }

bool is_cr_or_lf(char c) { return c == '\r' || c == '\n'; }

bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return (byte < 0x20 && byte != '\t') || byte == 0x7f;
}

// Visible ASCII only: request targets carry no spaces, controls or raw non-ASCII bytes.
bool is_target_char(char c) { return c > 0x20 && c < 0x7f && c != '#'; }

Status invalid(std::string what) {
  return Status(ErrorKind::kInvalidArgument, "invalid HTTP request: " + std::move(what));
}

Status check_field_value(std::string_view name, std::string_view value) {
  if (std::any_of(value.begin(), value.end(), is_cr_or_lf)) {
    return invalid("value of field '" + std::string(name) + "' contains CR or LF");
  }
  if (std::any_of(value.begin(), value.end(), is_control)) {
    return invalid("value of field '" + std::string(name) + "' contains a control character");
  }
  return Status();
}

Status check_field(const RequestField& field) {
  if (std::any_of(field.name.begin(), field.name.end(), is_cr_or_lf)) {
    return invalid("field name contains CR or LF");
  }
  if (!is_token(field.name)) return invalid("field name '" + field.name + "' is not a token");
  for (std::string_view owned : kWriterOwnedFields) {
    if (iequals(field.name, owned)) {
      return invalid("field '" + field.name + "' is set by the request writer; use RequestHead's member instead");
    }
  }
  return check_field_value(field.name, field.value);
}

Status check_target(const RequestHead& request) {
  if (request.path.empty() || request.path.front() != '/') return invalid("path must start with '/'");
  if (!std::all_of(request.path.begin(), request.path.end(), is_target_char)) {
    return invalid("path contains a space, control character, '#' or non-ASCII byte (percent-encode it)");
  }
  if (request.path.find('?') != std::string::npos) return invalid("path contains '?' (put the query in query)");
  if (!std::all_of(request.query.begin(), request.query.end(), is_target_char)) {
    return invalid("query contains a space, control character, '#' or non-ASCII byte (percent-encode it)");
  }
  return Status();
}

Status check_request(const RequestHead& request) {
  if (std::any_of(request.method.begin(), request.method.end(), is_cr_or_lf) || !is_token(request.method)) {
    return invalid("method '" + request.method + "' is not a token");
  }
  if (Status status = check_target(request); !status.ok()) return status;
  if (request.host.empty()) return invalid("empty Host");
  if (Status status = check_field_value("Host", request.host); !status.ok()) return status;
  if (request.host.find_first_of(" \t") != std::string::npos) return invalid("Host contains whitespace");
  for (const RequestField& field : request.fields) {
    if (Status status = check_field(field); !status.ok()) return status;
  }
  if (request.range && request.range->first > request.range->last) {
    return invalid("range first byte " + std::to_string(request.range->first) + " is after last byte " +
                   std::to_string(request.range->last));
  }
  return Status();
}

void append_number(uint64_t value, std::string* out) {
  char digits[20];
  const auto result = std::to_chars(digits, digits + sizeof(digits), value);
  out->append(digits, result.ptr);
}

void append_field(std::string_view name, std::string_view value, std::string* out) {
  out->append(name).append(": ").append(value).append("\r\n");
}

}  // namespace

std::string format_range(const ByteRange& range) {
  std::string value = "bytes=";
  append_number(range.first, &value);
  value += '-';
  append_number(range.last, &value);
  return value;
}

Status write_request_head(const RequestHead& request, std::string* out) {
  if (Status status = check_request(request); !status.ok()) return status;
  out->append(request.method).append(" ").append(request.path);
  if (!request.query.empty()) out->append("?").append(request.query);
  out->append(" HTTP/1.1\r\n");
  append_field("Host", request.host, out);
  for (const RequestField& field : request.fields) append_field(field.name, field.value, out);
  if (request.range) {
    out->append("Range: bytes=");
    append_number(request.range->first, out);
    out->append("-");
    append_number(request.range->last, out);
    out->append("\r\n");
  }
  if (request.content_length) {
    out->append("Content-Length: ");
    append_number(*request.content_length, out);
    out->append("\r\n");
  }
  if (request.close_connection) append_field("Connection", "close", out);
  out->append("\r\n");
  return Status();
}

}  // namespace ringfetch::http
