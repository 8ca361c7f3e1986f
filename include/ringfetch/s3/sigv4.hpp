// AWS Signature Version 4 for S3 requests (header signing, as in AWS's "Authenticating Requests: Using the
// Authorization Header"). Pure computation: no I/O, no clock reads (the caller passes `now`), OpenSSL for the crypto.
// The S3 layer fills a SignableRequest, calls SigV4Signer::sign() and sends exactly request_target(), `host` and
// `headers`; the signer never re-encodes anything the wire will not carry.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringfetch::s3 {

// x-amz-content-sha256 value for a body that is not hashed (S3 GETs, and PUTs over TLS when hashing is too slow).
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
// SHA-256 of zero bytes: the payload hash of every request without a body.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// An access key. Deliberately has no operator<<: print redacted() instead, so a secret never reaches a log.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless these are temporary (STS) credentials

  // True when there is no key to sign with: requests go out unsigned (public buckets).
  bool anonymous() const noexcept { return access_key_id.empty(); }

  // "anonymous", or the key id and whether a session token is present; never the secret or the token.
  std::string redacted() const;
};

// GoogleTest (and anything else that looks up PrintTo by ADL) prints redacted(), not the bytes of the secret.
void PrintTo(const Credentials& credentials, std::ostream* out);

// One HTTP request as the signer sees it. Names and values are raw (not percent-encoded); the signer encodes them
// with S3's rules and request_target() produces the matching request-line target.
struct SignableRequest {
  std::string method;  // "GET", "HEAD", "PUT", ...
  std::string host;    // Host header value as sent ("bucket.s3.us-east-1.amazonaws.com", "127.0.0.1:9000")
  std::string path;    // raw object path, e.g. "/bucket/my key+x"; empty means "/"
  std::vector<std::pair<std::string, std::string>> query;    // decoded name/value pairs, any order
  std::vector<std::pair<std::string, std::string>> headers;  // everything sent except Host; sign() appends its own
  // Hex SHA-256 of the body, or kUnsignedPayload. Empty means "no body" (kEmptyPayloadSha256).
  std::string payload_sha256 = std::string(kUnsignedPayload);
};

using Sha256Digest = std::array<unsigned char, 32>;

// Percent-encodes with S3's rules: A-Z a-z 0-9 - _ . ~ are kept, '/' is kept unless `encode_slash`, every other
// byte (including each byte of UTF-8 sequences) becomes %XX with upper-case hex. Used once per component: S3 paths
// are not double-encoded.
std::string uri_encode(std::string_view text, bool encode_slash);

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::span<const std::byte> data);
std::string sha256_hex(std::string_view text);

// HMAC-SHA256(key, message).
Sha256Digest hmac_sha256(std::span<const unsigned char> key, std::string_view message);

// The request-line target that matches what sign() signed: uri_encode(path, false), then the query in canonical
// order ("/bucket/my%20key%2Bx?list-type=2&prefix=a%2Fb").
std::string request_target(const SignableRequest& request);

// Signs requests for one (credentials, region, service). Thread-safe: sign() may run concurrently on many engine
// threads; the derived signing key is cached per UTC day (it depends on date, region and service only).
class SigV4Signer {
 public:
  SigV4Signer(Credentials credentials, std::string region, std::string service = "s3");

  // Adds x-amz-date, x-amz-content-sha256 (service "s3" only), x-amz-security-token (when the credentials carry a
  // session token) and Authorization, replacing earlier copies of those headers, so re-signing a retried request is
  // safe. With anonymous credentials it changes nothing. `request.headers` must not contain Host (that is
  // `request.host`). User-Agent, Expect and X-Amzn-Trace-Id are sent but not signed (proxies rewrite them).
  void sign(SignableRequest& request, std::chrono::system_clock::time_point now) const;

  // The canonical request of `request` as it stands (sign() calls this after adding its headers).
  std::string canonical_request(const SignableRequest& request) const;

  // "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of canonical_request>"; amz_date is "20130524T000000Z".
  std::string string_to_sign(std::string_view canonical_request, std::string_view amz_date) const;

  // "20130524/us-east-1/s3/aws4_request" for amz_date "20130524T000000Z".
  std::string credential_scope(std::string_view amz_date) const;

  // Lower-case hex HMAC of string_to_sign with the signing key of amz_date's day (cached).
  std::string signature(std::string_view string_to_sign, std::string_view amz_date) const;

  const std::string& region() const noexcept { return region_; }
  const std::string& service() const noexcept { return service_; }
  bool anonymous() const noexcept { return credentials_.anonymous(); }

  // "20130524T000000Z" for `time` (UTC, seconds truncated).
  static std::string format_amz_date(std::chrono::system_clock::time_point time);

 private:
  Sha256Digest signing_key(std::string_view date) const;

  Credentials credentials_;
  std::string region_;
  std::string service_;

  mutable std::mutex key_cache_mutex_;
  mutable std::string cached_key_date_;  // "YYYYMMDD" of cached_key_, empty before the first signature
  mutable Sha256Digest cached_key_{};
};

}  // namespace ringfetch::s3
