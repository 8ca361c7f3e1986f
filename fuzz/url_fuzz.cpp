// parse_url on hostile text: an accepted URL has a known scheme, a host where one is needed, a port in range for
// http(s), an IPv6 literal that is an address, and the same result when parsed again.
#include <arpa/inet.h>

#include <string>

#include "engine/url.hpp"
#include "fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ringfetch::engine::Url url;
  if (!ringfetch::engine::parse_url(text, &url).ok()) return 0;
  const bool http = url.scheme == "http" || url.scheme == "https";
  RINGFETCH_FUZZ_CHECK(http || url.scheme == "file" || url.scheme == "direct" || url.scheme == "s3",
                       "unknown scheme accepted");
  if (http) {
    RINGFETCH_FUZZ_CHECK(!url.host.empty() && url.port != 0, "http URL without host or port");
    RINGFETCH_FUZZ_CHECK(url.host.find_first_of(",/?#@ ") == std::string::npos, "odd character in the host");
    (void)url.host_header();
  }
  if (url.ipv6_literal) {
    in6_addr address{};
    RINGFETCH_FUZZ_CHECK(inet_pton(AF_INET6, url.host.c_str(), &address) == 1, "IPv6 literal that is no address");
  }
  ringfetch::engine::Url again;
  RINGFETCH_FUZZ_CHECK(ringfetch::engine::parse_url(text, &again).ok(), "second parse failed");
  RINGFETCH_FUZZ_CHECK(again.scheme == url.scheme && again.host == url.host && again.port == url.port &&
                           again.path == url.path,
                       "second parse differs");
  return 0;
}
