// Connection flags -> StoreOptions. No validation here beyond the parser's: the library checks endpoints and
// profiles when the store or client opens, and its messages (which name the bad value) are the ones users see.
#include "connection_options.hpp"

#include <string>

namespace ringfetch::cli {

const char kConnectionHelp[] =
    "connection options (as in awscli; defaults come from AWS_* variables, ~/.aws/config and ~/.aws/credentials):\n"
    "  --endpoint-url URL  S3 endpoint, e.g. http://127.0.0.1:9000 (also --endpoint)\n"
    "  --region R          S3 region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile, us-east-1)\n"
    "  --profile P         profile of the AWS config and credentials files\n"
    "  --no-verify-ssl     do not check TLS certificates (https:// and S3 over https)\n"
    "  --ca-bundle FILE    PEM file of trusted certificates (default: SSL_CERT_FILE, AWS_CA_BUNDLE, the system's)\n";

std::vector<OptionSpec> with_connection_options(std::initializer_list<OptionSpec> own) {
  std::vector<OptionSpec> specs(own);
  specs.push_back({"--endpoint-url", true, "--endpoint"});
  specs.push_back({"--region", true});
  specs.push_back({"--profile", true});
  specs.push_back({"--no-verify-ssl", false});
  specs.push_back({"--ca-bundle", true});
  return specs;
}

StoreOptions connection_options(const CommandLine& line) {
  StoreOptions options;
  if (auto endpoint = line.value("--endpoint-url")) options.s3.endpoints = {std::string(*endpoint)};
  if (auto region = line.value("--region")) options.s3.region = std::string(*region);
  if (auto profile = line.value("--profile")) options.s3.profile = std::string(*profile);
  if (auto bundle = line.value("--ca-bundle")) options.http.ca_file = std::string(*bundle);
  options.http.verify_tls = !line.has("--no-verify-ssl");
  return options;
}

}  // namespace ringfetch::cli
