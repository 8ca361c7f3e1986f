// SigV4Signer and the SigV4 helpers (URI encoding, SHA-256, HMAC) declared in ringfetch/s3/sigv4.hpp.
// The canonical form follows AWS's SigV4 specification for S3: paths are encoded once and never normalized, the query
// is sorted by encoded name then value, header values are trimmed with inner whitespace runs collapsed. The digests
// come from OpenSSL 3 (algorithms fetched once, then reused), never from hand-written crypto.
#include "ringfetch/s3/sigv4.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <memory>
#include <ostream>

#include "ringfetch/error.hpp"

namespace ringfetch::s3 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kTerminator = "aws4_request";
constexpr char kHexUpper[] = "0123456789ABCDEF";
constexpr char kHexLower[] = "0123456789abcdef";

// Sent but never signed, as botocore does: proxies and HTTP stacks may rewrite them; Authorization cannot sign itself.
constexpr std::string_view kUnsignedHeaderNames[] = {"authorization", "expect", "user-agent", "x-amzn-trace-id"};
// Headers sign() owns: removed before it adds fresh ones.
constexpr std::string_view kSignerOwnedHeaderNames[] = {"authorization", "x-amz-content-sha256", "x-amz-date",
                                                        "x-amz-security-token"};

[[noreturn]] void throw_openssl_failure(std::string_view what) {
  throw Error(ErrorKind::kUnsupported, "OpenSSL " + std::string(what) + " failed (is the default provider loaded?)");
}

const EVP_MD* sha256_algorithm() {
  static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (algorithm == nullptr) throw_openssl_failure("fetch of SHA256");
  return algorithm;
}

EVP_MAC* hmac_algorithm() {
  static EVP_MAC* const algorithm = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (algorithm == nullptr) throw_openssl_failure("fetch of HMAC");
  return algorithm;
}

// One HMAC-SHA256 context per thread, its digest set once: creating a context and fetching its digest per call costs
// more than the MAC itself. EVP_MAC_init with a new key (and no parameters) restarts it.
EVP_MAC_CTX* thread_hmac_context() {
  struct ContextDeleter {
    void operator()(EVP_MAC_CTX* context) const { EVP_MAC_CTX_free(context); }
  };
  thread_local const std::unique_ptr<EVP_MAC_CTX, ContextDeleter> context = [] {
    std::unique_ptr<EVP_MAC_CTX, ContextDeleter> created(EVP_MAC_CTX_new(hmac_algorithm()));
    char digest_name[] = "SHA256";
    const OSSL_PARAM parameters[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                                     OSSL_PARAM_construct_end()};
    if (created == nullptr || EVP_MAC_CTX_set_params(created.get(), parameters) != 1) {
      throw_openssl_failure("HMAC context setup");
    }
    return created;
  }();
  return context.get();
}

Sha256Digest sha256(const void* data, size_t size) {
  Sha256Digest digest;
  unsigned int digest_size = 0;
  if (EVP_Digest(data, size, digest.data(), &digest_size, sha256_algorithm(), nullptr) != 1 ||
      digest_size != digest.size()) {
    throw_openssl_failure("SHA-256");
  }
  return digest;
}

std::string to_hex(std::span<const unsigned char> bytes) {
  std::string hex(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    hex[2 * i] = kHexLower[bytes[i] >> 4];
    hex[2 * i + 1] = kHexLower[bytes[i] & 0xF];
  }
  return hex;
}

std::span<const unsigned char> as_bytes(std::string_view text) {
  return {reinterpret_cast<const unsigned char*>(text.data()), text.size()};
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), ascii_lower);
  return lower;
}

bool is_one_of(std::string_view lower_name, std::span<const std::string_view> names) {
  return std::find(names.begin(), names.end(), lower_name) != names.end();
}

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

// SigV4 "Trimall": no leading/trailing whitespace, each inner run of spaces/tabs becomes one space.
std::string trim_all(std::string_view value) {
  std::string trimmed;
  trimmed.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      pending_space = !trimmed.empty();
      continue;
    }
    if (pending_space) trimmed.push_back(' ');
    pending_space = false;
    trimmed.push_back(c);
  }
  return trimmed;
}

std::string absolute_path(std::string_view path) {
  if (!path.empty() && path.front() == '/') return std::string(path);
  return "/" + std::string(path);
}

std::string canonical_query(const SignableRequest& request) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(request.query.size());
  for (const auto& [name, value] : request.query) {
    encoded.emplace_back(uri_encode(name, true), uri_encode(value, true));
  }
  std::sort(encoded.begin(), encoded.end());  // by encoded name, then encoded value
  std::string joined;
  for (const auto& [name, value] : encoded) {
    if (!joined.empty()) joined.push_back('&');
    joined.append(name).append("=").append(value);
  }
  return joined;
}

struct CanonicalHeaders {
  std::string block;           // "name:value\n" per signed header, sorted by name
  std::string signed_headers;  // "host;range;x-amz-date"
};

// Lower-cased, trimmed, sorted by name; repeated names become one line with the values joined by ',' in send order.
CanonicalHeaders canonicalize_headers(const SignableRequest& request) {
  std::vector<std::pair<std::string, std::string>> lines;
  lines.reserve(request.headers.size() + 1);
  lines.emplace_back("host", trim_all(request.host));
  for (const auto& [name, value] : request.headers) {
    std::string lower_name = to_lower(name);
    assert(lower_name != "host" && "the Host header comes from SignableRequest::host");
    if (is_one_of(lower_name, kUnsignedHeaderNames)) continue;
    lines.emplace_back(std::move(lower_name), trim_all(value));
  }
  std::stable_sort(lines.begin(), lines.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  CanonicalHeaders canonical;
  for (size_t i = 0; i < lines.size(); ++i) {
    const bool continues_previous = i > 0 && lines[i].first == lines[i - 1].first;
    if (continues_previous) {
      canonical.block.back() = ',';  // replace the previous line's '\n'
    } else {
      if (!canonical.signed_headers.empty()) canonical.signed_headers.push_back(';');
      canonical.signed_headers.append(lines[i].first);
      canonical.block.append(lines[i].first).push_back(':');
    }
    canonical.block.append(lines[i].second).push_back('\n');
  }
  return canonical;
}

std::string_view payload_hash(const SignableRequest& request) {
  return request.payload_sha256.empty() ? kEmptyPayloadSha256 : std::string_view(request.payload_sha256);
}

std::string canonical_request_text(const SignableRequest& request, const CanonicalHeaders& headers) {
  std::string text;
  text.reserve(256 + headers.block.size() + request.path.size() * 3);
  text.append(request.method).push_back('\n');
  text.append(uri_encode(absolute_path(request.path), false)).push_back('\n');
  text.append(canonical_query(request)).push_back('\n');
  text.append(headers.block).push_back('\n');
  text.append(headers.signed_headers).push_back('\n');
  text.append(payload_hash(request));
  return text;
}

void remove_signer_owned_headers(SignableRequest& request) {
  std::erase_if(request.headers,
                [](const auto& header) { return is_one_of(to_lower(header.first), kSignerOwnedHeaderNames); });
}

}  // namespace

std::string Credentials::redacted() const {
  if (anonymous()) return "anonymous";
  std::string text = "access key " + access_key_id + " (secret hidden";
  text += session_token.empty() ? ")" : ", with session token)";
  return text;
}

void PrintTo(const Credentials& credentials, std::ostream* out) { *out << credentials.redacted(); }

std::string uri_encode(std::string_view text, bool encode_slash) {
  std::string encoded;
  encoded.reserve(text.size() + text.size() / 2);
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_unreserved(byte) || (byte == '/' && !encode_slash)) {
      encoded.push_back(c);
    } else {
      encoded.push_back('%');
      encoded.push_back(kHexUpper[byte >> 4]);
      encoded.push_back(kHexUpper[byte & 0xF]);
    }
  }
  return encoded;
}

std::string sha256_hex(std::span<const std::byte> data) { return to_hex(sha256(data.data(), data.size())); }

std::string sha256_hex(std::string_view text) { return to_hex(sha256(text.data(), text.size())); }

Sha256Digest hmac_sha256(std::span<const unsigned char> key, std::string_view message) {
  EVP_MAC_CTX* context = thread_hmac_context();
  Sha256Digest mac;
  size_t mac_size = 0;
  const bool ok = EVP_MAC_init(context, key.data(), key.size(), nullptr) == 1 &&
                  EVP_MAC_update(context, as_bytes(message).data(), message.size()) == 1 &&
                  EVP_MAC_final(context, mac.data(), &mac_size, mac.size()) == 1 && mac_size == mac.size();
  if (!ok) throw_openssl_failure("HMAC-SHA256");
  return mac;
}

std::string request_target(const SignableRequest& request) {
  std::string target = uri_encode(absolute_path(request.path), false);
  if (!request.query.empty()) target.append("?").append(canonical_query(request));
  return target;
}

SigV4Signer::SigV4Signer(Credentials credentials, std::string region, std::string service)
    : credentials_(std::move(credentials)), region_(std::move(region)), service_(std::move(service)) {}

void SigV4Signer::sign(SignableRequest& request, std::chrono::system_clock::time_point now) const {
  if (anonymous()) return;
  remove_signer_owned_headers(request);
  const std::string amz_date = format_amz_date(now);
  request.headers.emplace_back("x-amz-date", amz_date);
  if (service_ == "s3") request.headers.emplace_back("x-amz-content-sha256", payload_hash(request));
  if (!credentials_.session_token.empty()) {
    request.headers.emplace_back("x-amz-security-token", credentials_.session_token);
  }
  const CanonicalHeaders headers = canonicalize_headers(request);
  const std::string canonical = canonical_request_text(request, headers);
  const std::string signature_hex = signature(string_to_sign(canonical, amz_date), amz_date);
  request.headers.emplace_back("Authorization", std::string(kAlgorithm) + " Credential=" +
                                                    credentials_.access_key_id + "/" + credential_scope(amz_date) +
                                                    ", SignedHeaders=" + headers.signed_headers +
                                                    ", Signature=" + signature_hex);
}

std::string SigV4Signer::canonical_request(const SignableRequest& request) const {
  return canonical_request_text(request, canonicalize_headers(request));
}

std::string SigV4Signer::string_to_sign(std::string_view canonical_request, std::string_view amz_date) const {
  std::string text(kAlgorithm);
  text.append("\n").append(amz_date);
  text.append("\n").append(credential_scope(amz_date));
  text.append("\n").append(sha256_hex(canonical_request));
  return text;
}

std::string SigV4Signer::credential_scope(std::string_view amz_date) const {
  std::string scope(amz_date.substr(0, 8));
  scope.append("/").append(region_).append("/").append(service_).append("/").append(kTerminator);
  return scope;
}

std::string SigV4Signer::signature(std::string_view string_to_sign, std::string_view amz_date) const {
  return to_hex(hmac_sha256(signing_key(amz_date.substr(0, 8)), string_to_sign));
}

Sha256Digest SigV4Signer::signing_key(std::string_view date) const {
  {
    std::lock_guard lock(key_cache_mutex_);
    if (cached_key_date_ == date) return cached_key_;
  }
  // Derived outside the lock: four HMACs, done once per day per signer.
  std::string seed = "AWS4" + credentials_.secret_access_key;
  Sha256Digest key = hmac_sha256(as_bytes(seed), date);
  OPENSSL_cleanse(seed.data(), seed.size());  // no stray copy of the secret left in freed memory
  key = hmac_sha256(key, region_);
  key = hmac_sha256(key, service_);
  key = hmac_sha256(key, kTerminator);
  std::lock_guard lock(key_cache_mutex_);
  cached_key_date_ = date;
  cached_key_ = key;
  return key;
}

std::string SigV4Signer::format_amz_date(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto seconds_since_epoch = floor<seconds>(time);
  const auto day = floor<days>(seconds_since_epoch);
  const year_month_day date{day};
  const hh_mm_ss clock{seconds_since_epoch - day};
  char text[32];
  std::snprintf(text, sizeof text, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                static_cast<int>(clock.seconds().count()));
  return text;
}

}  // namespace ringfetch::s3
