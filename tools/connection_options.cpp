// Connection flags -> StoreOptions. No validation here beyond the parser's: the library checks endpoints and
// profiles when the store or client opens, and its messages (which name the bad value) are the ones users see.
// The CLI's timeouts are shorter than the library's: a person waits at the terminal, so a server that accepts and
// never answers must fail within ~15 s (kDefaultAttempts x kDefaultReadTimeout), not after minutes.
#include "connection_options.hpp"

#include <string>
#include <vector>

namespace ringfetch::cli {
namespace {

constexpr uint64_t kDefaultConnectTimeoutSeconds = 5;
constexpr uint64_t kDefaultReadTimeoutSeconds = 5;
constexpr uint64_t kDefaultAttempts = 3;
constexpr uint64_t kMaxTimeoutSeconds = 3600;
constexpr uint64_t kMaxAttempts = 100;
constexpr uint32_t kMsPerSecond = 1000;

// "--endpoint-url a,b" and repeated flags both give several endpoints.
std::vector<std::string> endpoint_list(const CommandLine& line) {
  std::vector<std::string> endpoints;
  for (std::string_view text : line.values("--endpoint-url")) {
    while (!text.empty()) {
      const size_t comma = text.find(',');
      const std::string_view one = text.substr(0, comma);
      if (!one.empty()) endpoints.emplace_back(one);
      text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    }
  }
  return endpoints;
}

}  // namespace

const char kConnectionHelp[] =
    "connection options (as in awscli; defaults come from AWS_* variables, ~/.aws/config and ~/.aws/credentials):\n"
    "  --endpoint-url URL  S3 endpoint, e.g. http://127.0.0.1:9000 (also --endpoint); give it several times (or a\n"
    "                      comma-separated list) to spread requests over several endpoints\n"
    "  --no-sign-request   send unsigned requests (public buckets); no credentials are looked up\n"
    "  --region R          S3 region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile, us-east-1)\n"
    "  --profile P         profile of the AWS config and credentials files\n"
    "  --no-verify-ssl     do not check TLS certificates (https:// and S3 over https)\n"
    "  --ca-bundle FILE    PEM file of trusted certificates (default: AWS_CA_BUNDLE for s3://, SSL_CERT_FILE,\n"
    "                      the system's)\n"
    "  --connect-timeout S seconds to wait for a connection (default 5; also --cli-connect-timeout)\n"
    "  --read-timeout S    seconds a server may stay silent before an answer or inside one (default 5; also\n"
    "                      --cli-read-timeout)\n"
    "  --max-attempts N    tries per request, the first included (default 3)\n"
    "  --no-hedge          never send a late GET a second time (hedging: a GET whose first byte is later than the\n"
    "                      recent p95, at least 20 ms, goes out again on another connection; at most 5% more)\n";

std::vector<OptionSpec> with_connection_options(std::initializer_list<OptionSpec> own) {
  std::vector<OptionSpec> specs(own);
  specs.push_back({"--endpoint-url", true, "--endpoint"});
  specs.push_back({"--region", true});
  specs.push_back({"--profile", true});
  specs.push_back({"--no-verify-ssl", false});
  specs.push_back({"--ca-bundle", true});
  specs.push_back({"--no-sign-request", false});
  specs.push_back({"--connect-timeout", true, "--cli-connect-timeout"});
  specs.push_back({"--read-timeout", true, "--cli-read-timeout"});
  specs.push_back({"--max-attempts", true});
  specs.push_back({"--no-hedge", false});
  return specs;
}

StoreOptions connection_options(const CommandLine& line) {
  StoreOptions options;
  options.s3.endpoints = endpoint_list(line);
  options.s3.anonymous = line.has("--no-sign-request");
  const auto seconds = [&line](std::string_view name, uint64_t fallback) {
    return static_cast<uint32_t>(line.number(name, fallback, 1, kMaxTimeoutSeconds) * kMsPerSecond);
  };
  options.http.connect_timeout_ms = seconds("--connect-timeout", kDefaultConnectTimeoutSeconds);
  options.http.first_byte_timeout_ms = seconds("--read-timeout", kDefaultReadTimeoutSeconds);
  options.http.idle_timeout_ms = options.http.first_byte_timeout_ms;
  options.http.max_attempts = static_cast<unsigned>(line.number("--max-attempts", kDefaultAttempts, 1, kMaxAttempts));
  if (auto region = line.value("--region")) options.s3.region = std::string(*region);
  if (auto profile = line.value("--profile")) options.s3.profile = std::string(*profile);
  if (auto bundle = line.value("--ca-bundle")) options.http.ca_file = std::string(*bundle);
  options.http.verify_tls = !line.has("--no-verify-ssl");
  options.http.hedge = !line.has("--no-hedge");
  return options;
}

}  // namespace ringfetch::cli
