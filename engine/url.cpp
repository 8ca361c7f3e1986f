// Url parsing (see url.hpp). Strict on purpose: a URL that could mean two things is an error that says what is
// wrong, never a guess. Rules beyond the header's contract:
//  - whitespace and control characters are rejected everywhere; a '#' (fragment) is rejected everywhere;
//  - file:// and direct:// take an absolute path, no host (or "localhost") and no query;
//  - http(s) hosts are lower-cased; IPv6 literals must be bracketed; ports are 1-65535; paths and queries must be
//    ASCII with valid percent-escapes (they go on the wire as given);
//  - s3 buckets follow AWS's naming rule (3-63 of [a-z0-9.-], starting and ending with a letter or digit); one '/'
//    after the bucket is dropped, the rest is the key prefix as given; no query, no port;
//  - userinfo is rejected and redacted from the error message (it may hold a password).
#include "engine/url.hpp"

#include "engine/message_text.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <initializer_list>
#include <optional>

namespace ringfetch::engine {
namespace {

constexpr uint16_t kHttpDefaultPort = 80;
constexpr uint16_t kHttpsDefaultPort = 443;
constexpr size_t kMinBucketLength = 3;
constexpr size_t kMaxBucketLength = 63;
constexpr size_t kMaxQuotedUrlBytes = 200;  // longer URLs are cut in error messages

constexpr std::array<std::string_view, 5> kSchemes = {"file", "direct", "http", "https", "s3"};
constexpr std::string_view kExpectedSchemes = "expected file://, direct://, http://, https:// or s3://";

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_control_or_space(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte <= 0x20 || byte == 0x7f;
}
bool is_ascii(char c) { return static_cast<unsigned char>(c) < 0x80; }

std::string lower(std::string_view text) {
  std::string result(text);
  for (char& c : result) c = to_lower(c);
  return result;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

std::string concat(std::initializer_list<std::string_view> pieces) {
  size_t size = 0;
  for (std::string_view piece : pieces) size += piece.size();
  std::string result;
  result.reserve(size);
  for (std::string_view piece : pieces) result.append(piece);
  return result;
}

// The URL as quoted in messages: userinfo replaced by "***", non-printable bytes escaped, long URLs cut.
std::string quote_for_message(std::string_view text) {
  std::string redacted;
  const size_t authority = text.find("//");
  if (authority != std::string_view::npos) {
    const size_t authority_end = text.find_first_of("/?#", authority + 2);
    const size_t at = text.substr(0, authority_end).rfind('@');
    if (at != std::string_view::npos && at > authority) {
      redacted = concat({text.substr(0, authority + 2), "***", text.substr(at)});
      text = redacted;
    }
  }
  return escape_for_message(text, kMaxQuotedUrlBytes);
}

// "bad URL '<text>': <reason pieces...>".
Status bad_url(std::string_view text, std::initializer_list<std::string_view> reason) {
  std::string message = concat({"bad URL '", quote_for_message(text), "': "});
  for (std::string_view piece : reason) message.append(piece);
  return Status(ErrorKind::kInvalidArgument, std::move(message));
}

// Components of "scheme://authority/rest" before any scheme-specific rule is applied.
struct UrlParts {
  std::string scheme;          // lower-cased
  std::string_view authority;  // between "//" and the first '/' or '?'
  std::string_view path;       // from the first '/' after the authority up to '?' (may be empty)
  std::optional<std::string_view> query;  // after '?', when a '?' is present
};

Status split_scheme(std::string_view text, UrlParts* parts, std::string_view* after_scheme) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return bad_url(text, {"missing scheme (", kExpectedSchemes, ")"});
  }
  const std::string_view scheme = text.substr(0, colon);
  bool valid_scheme = is_alpha(scheme[0]);
  for (char c : scheme) valid_scheme = valid_scheme && (is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.');
  std::string scheme_lower = lower(scheme);
  bool known = false;
  for (std::string_view candidate : kSchemes) known = known || candidate == scheme_lower;
  if (!valid_scheme || !known) {
    return bad_url(text, {"unknown scheme '", quote_for_message(scheme), "' (", kExpectedSchemes, ")"});
  }
  parts->scheme = std::move(scheme_lower);
  *after_scheme = text.substr(colon + 1);
  return Status();
}

Status split_parts(std::string_view text, UrlParts* parts) {
  std::string_view rest;
  if (Status status = split_scheme(text, parts, &rest); !status.ok()) return status;
  const bool is_file = parts->scheme == "file" || parts->scheme == "direct";
  if (!rest.starts_with("//")) {
    if (is_file && !rest.starts_with('/')) {
      return bad_url(text, {"relative file path; expected ", parts->scheme, ":///absolute/path"});
    }
    if (is_file) return bad_url(text, {"expected ", parts->scheme, ":///absolute/path"});
    return bad_url(text, {"expected '//' after '", parts->scheme, ":'"});
  }
  rest.remove_prefix(2);
  const size_t authority_end = rest.find_first_of("/?");
  parts->authority = rest.substr(0, authority_end);
  if (parts->authority.find('@') != std::string_view::npos) {
    return bad_url(text, {"userinfo (user:password@) is not supported"});
  }
  rest = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  const size_t question = rest.find('?');
  parts->path = rest.substr(0, question);
  if (question != std::string_view::npos) parts->query = rest.substr(question + 1);
  return Status();
}

Status check_characters(std::string_view text) {
  if (text.empty()) return bad_url(text, {"empty URL"});
  for (char c : text) {
    if (is_control_or_space(c)) return bad_url(text, {"contains whitespace or control characters"});
  }
  if (text.find('#') != std::string_view::npos) return bad_url(text, {"fragments ('#...') are not supported"});
  return Status();
}

Status parse_file_url(std::string_view text, const UrlParts& parts, Url* url) {
  if (!parts.authority.empty() && !iequals(parts.authority, "localhost")) {
    return bad_url(text, {"a ", parts.scheme, " URL takes no host ('", parts.authority, "'); expected ", parts.scheme,
                         ":///absolute/path"});
  }
  if (parts.query) return bad_url(text, {"queries are not supported in ", parts.scheme, " URLs"});
  if (parts.path.empty()) return bad_url(text, {"missing path; expected ", parts.scheme, ":///absolute/path"});
  url->path = std::string(parts.path);
  return Status();
}

// An IPv6 address as inet_pton reads it (so "[:]" and "[a:]" are refused here, not later as "cannot resolve");
// zone ids ("%eth0") are not supported.
bool is_ipv6_literal(std::string_view text) {
  constexpr size_t kMaxLiteral = INET6_ADDRSTRLEN;
  if (text.empty() || text.size() >= kMaxLiteral) return false;
  const std::string terminated(text);
  in6_addr address{};
  return inet_pton(AF_INET6, terminated.c_str(), &address) == 1;
}

bool is_host_name(std::string_view text) {
  for (char c : text) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_') return false;
  }
  return !text.empty();
}

Status parse_port(std::string_view text, std::string_view port_text, uint16_t* port) {
  constexpr size_t kMaxPortDigits = 5;
  constexpr uint32_t kMaxPort = 65535;
  uint32_t value = 0;
  bool valid = !port_text.empty() && port_text.size() <= kMaxPortDigits;
  for (char c : port_text) {
    valid = valid && is_digit(c);
    if (valid) value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (!valid || value == 0 || value > kMaxPort) {
    return bad_url(text, {"bad port '", quote_for_message(port_text), "' (expected 1-65535)"});
  }
  *port = static_cast<uint16_t>(value);
  return Status();
}

// Splits "host", "host:port", "[v6]" or "[v6]:port" into host and port text; validates the host.
Status parse_http_authority(std::string_view text, std::string_view authority, Url* url,
                            std::optional<std::string_view>* port_text) {
  if (authority.empty()) return bad_url(text, {"missing host"});
  if (authority.find(',') != std::string_view::npos) {
    return bad_url(text, {"',' in the host: one URL names one endpoint (a list takes one URL per endpoint)"});
  }
  std::string_view after_host;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad_url(text, {"unterminated IPv6 bracket"});
    const std::string_view literal = authority.substr(1, close - 1);
    if (!is_ipv6_literal(literal)) {
      return bad_url(text, {"invalid IPv6 literal '[", literal, "]'"});
    }
    url->host = lower(literal);
    url->ipv6_literal = true;
    after_host = authority.substr(close + 1);
    if (!after_host.empty() && after_host.front() != ':') return bad_url(text, {"unexpected text after IPv6 literal"});
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos) {
      return bad_url(text, {"IPv6 literals must be written in brackets ([::1]:8080)"});
    }
    const std::string_view host = authority.substr(0, colon);
    if (host.empty()) return bad_url(text, {"missing host"});
    if (!is_host_name(host)) return bad_url(text, {"invalid character in host '", host, "'"});
    url->host = lower(host);
    after_host = colon == std::string_view::npos ? std::string_view() : authority.substr(colon);
  }
  if (!after_host.empty()) *port_text = after_host.substr(1);
  return Status();
}

// Paths and queries go on the wire as given, so they must already be valid request-target text.
Status check_wire_text(std::string_view text, std::string_view component) {
  for (size_t i = 0; i < component.size(); ++i) {
    if (!is_ascii(component[i])) return bad_url(text, {"non-ASCII characters must be percent-encoded"});
    if (component[i] == '%') {
      if (i + 2 >= component.size() || !is_hex(component[i + 1]) || !is_hex(component[i + 2])) {
        return bad_url(text, {"bad percent-encoding (expected '%' and two hex digits)"});
      }
    }
  }
  return Status();
}

Status parse_http_url(std::string_view text, const UrlParts& parts, Url* url) {
  std::optional<std::string_view> port_text;
  if (Status status = parse_http_authority(text, parts.authority, url, &port_text); !status.ok()) return status;
  url->port = parts.scheme == "https" ? kHttpsDefaultPort : kHttpDefaultPort;
  if (port_text) {
    if (Status status = parse_port(text, *port_text, &url->port); !status.ok()) return status;
  }
  const std::string_view query = parts.query.value_or(std::string_view());
  if (Status status = check_wire_text(text, parts.path); !status.ok()) return status;
  if (Status status = check_wire_text(text, query); !status.ok()) return status;
  url->path = parts.path.empty() ? "/" : std::string(parts.path);
  url->query = std::string(query);
  return Status();
}

bool is_bucket_name(std::string_view bucket) {
  if (bucket.size() < kMinBucketLength || bucket.size() > kMaxBucketLength) return false;
  const auto is_lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || is_digit(c); };
  for (char c : bucket) {
    if (!is_lower_alnum(c) && c != '.' && c != '-') return false;
  }
  return is_lower_alnum(bucket.front()) && is_lower_alnum(bucket.back());
}

Status parse_s3_url(std::string_view text, const UrlParts& parts, Url* url) {
  if (parts.authority.empty()) return bad_url(text, {"empty bucket name"});
  if (!is_bucket_name(parts.authority)) {
    return bad_url(text, {"invalid bucket name '", parts.authority,
                         "' (3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit)"});
  }
  if (parts.query) return bad_url(text, {"queries are not supported in s3 URLs"});
  url->host = std::string(parts.authority);
  std::string_view key_prefix = parts.path;
  if (key_prefix.starts_with('/')) key_prefix.remove_prefix(1);
  url->path = std::string(key_prefix);
  return Status();
}

}  // namespace

std::string Url::host_header() const {
  std::string header = ipv6_literal ? concat({"[", host, "]"}) : host;
  const bool default_port = port == 0 || (scheme == "http" && port == kHttpDefaultPort) ||
                            (scheme == "https" && port == kHttpsDefaultPort);
  if (!default_port) header.append(":").append(std::to_string(port));
  return header;
}

Status parse_url(std::string_view text, Url* out) {
  if (Status status = check_characters(text); !status.ok()) return status;
  UrlParts parts;
  if (Status status = split_parts(text, &parts); !status.ok()) return status;
  Url url;
  url.scheme = parts.scheme;
  Status status;
  if (url.scheme == "file" || url.scheme == "direct") {
    status = parse_file_url(text, parts, &url);
  } else if (url.scheme == "s3") {
    status = parse_s3_url(text, parts, &url);
  } else {
    status = parse_http_url(text, parts, &url);
  }
  if (status.ok()) *out = std::move(url);
  return status;
}

std::string join_path(std::string_view root, std::string_view key) {
  if (key.empty()) return std::string(root);
  const bool root_is_absolute = root.starts_with('/');
  while (root.ends_with('/')) root.remove_suffix(1);
  while (key.starts_with('/')) key.remove_prefix(1);
  if (root.empty()) return root_is_absolute ? concat({"/", key}) : std::string(key);
  return concat({root, "/", key});
}

}  // namespace ringfetch::engine
