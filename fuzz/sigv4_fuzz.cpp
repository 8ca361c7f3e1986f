// SigV4 canonicalisation of fuzzed requests (method, path, query and headers as separate fields): no crash, the
// same canonical request and signature every time, and the canonical request keeps its shape (6 lines plus one
// per signed header) whenever no field holds a line break of its own and header names are HTTP tokens.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "ringfetch/s3/sigv4.hpp"

namespace {

bool has_line_break(const std::string& text) { return text.find_first_of("\r\n") != std::string::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  ringfetch::s3::SignableRequest request;
  request.method = in.ConsumeRandomLengthString(16);
  request.host = in.ConsumeRandomLengthString(64);
  request.path = in.ConsumeRandomLengthString(256);
  bool breaks = has_line_break(request.method) || has_line_break(request.host) || has_line_break(request.path);
  const size_t query_count = in.ConsumeIntegralInRange<size_t>(0, 6);
  for (size_t i = 0; i < query_count; ++i) {
    request.query.emplace_back(in.ConsumeRandomLengthString(32), in.ConsumeRandomLengthString(32));
  }
  const size_t header_count = in.ConsumeIntegralInRange<size_t>(0, 6);
  for (size_t i = 0; i < header_count; ++i) {
    std::string name = in.ConsumeRandomLengthString(24);
    std::string value = in.ConsumeRandomLengthString(48);
    // Names outside HTTP's token characters (the request writer refuses them) may break the shape too.
    breaks = breaks || has_line_break(name) || has_line_break(value) || name.empty() ||
             name.find_first_of(":; \t") != std::string::npos;
    request.headers.emplace_back(std::move(name), std::move(value));
  }
  request.payload_sha256 = in.ConsumeBool() ? std::string(ringfetch::s3::kUnsignedPayload) : std::string();
  const ringfetch::s3::SigV4Signer signer({"AKIDFUZZ", "fuzz/secret", in.ConsumeBool() ? "token" : ""}, "us-east-1");
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));

  ringfetch::s3::SignableRequest first = request;
  ringfetch::s3::SignableRequest second = request;
  signer.sign(first, now);
  signer.sign(second, now);
  const std::string canonical = signer.canonical_request(first);
  RINGFETCH_FUZZ_CHECK(canonical == signer.canonical_request(second), "canonical request not deterministic");
  RINGFETCH_FUZZ_CHECK(first.headers == second.headers, "signing not deterministic");
  signer.sign(first, now);  // re-signing a retried request replaces, never duplicates
  RINGFETCH_FUZZ_CHECK(first.headers == second.headers, "re-signing changed the headers");
  if (!breaks) {
    const size_t signed_line = canonical.rfind('\n', canonical.size() - 1);
    const size_t headers_end = canonical.rfind('\n', signed_line - 1);
    const std::string signed_headers = canonical.substr(headers_end + 1, signed_line - headers_end - 1);
    const size_t signed_count = static_cast<size_t>(std::count(signed_headers.begin(), signed_headers.end(), ';')) + 1;
    const size_t lines = static_cast<size_t>(std::count(canonical.begin(), canonical.end(), '\n'));
    if (lines != 5 + signed_count) std::fprintf(stderr, "canonical request:\n%s\n", canonical.c_str());
    RINGFETCH_FUZZ_CHECK(lines == 5 + signed_count, "canonical request lost its shape");
  }
  return 0;
}
