// Url: parses the URLs ringfetch accepts as store roots and object names:
//   file:///abs/dir, direct:///abs/dir, http://host[:port]/path, https://[::1]:8443/path?query, s3://bucket/prefix
// Parsing only; no resolution, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ringfetch/error.hpp"

namespace ringfetch::engine {

struct Url {
  std::string scheme;  // lower-cased: "file", "direct", "http", "https", "s3"
  std::string host;    // without brackets for IPv6 literals ("::1"); bucket for s3; empty for file/direct
  uint16_t port = 0;   // explicit port, or the scheme default (80/443); 0 for file/direct/s3
  std::string path;    // starts with '/' for http(s)/file/direct (the percent-encoding is kept as given); for s3 the key prefix without a leading '/'
  std::string query;   // without '?'; empty when absent
  bool ipv6_literal = false;

  // "host:port" as written in a Host header ("[::1]:8080"; default ports are omitted).
  std::string host_header() const;
};

// Parses `text`. Errors (kInvalidArgument) quote the URL and say what is wrong: unknown scheme, missing host,
// bad port, relative file path, unterminated IPv6 bracket, empty bucket, userinfo (not supported), fragment.
Status parse_url(std::string_view text, Url* out);

// Joins a root path and a key with exactly one '/' between them ("/a/" + "b" -> "/a/b", "" + "b" -> "b").
std::string join_path(std::string_view root, std::string_view key);

}  // namespace ringfetch::engine
