// Resolves what an S3 store needs from the usual AWS places, in the order the AWS SDKs use: credentials, region,
// endpoint and addressing style from the environment, ~/.aws/credentials and ~/.aws/config. No network (instance
// metadata, SSO, assume-role and credential_process are not supported and say so). The environment is read through a
// lookup function so tests and embedding programs never have to mutate the real one.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "ringfetch/error.hpp"
#include "ringfetch/s3/s3_options.hpp"
#include "ringfetch/s3/sigv4.hpp"

namespace ringfetch::s3 {

// What the caller asks for. Every field has a usable default.
struct AwsConfigOptions {
  // Profile to read. Empty: AWS_PROFILE, then AWS_DEFAULT_PROFILE, then "default". Naming a profile here (not through
  // the environment) makes the profile outrank AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as in botocore.
  std::string profile;
  // Skip the credential lookup entirely: requests go out unsigned (public buckets).
  bool anonymous = false;
  // kPath or kVirtualHost override the configuration; an IP-literal or localhost endpoint always gets kPath.
  AddressingStyle addressing_style = AddressingStyle::kAuto;
  // Where environment variables come from; empty means process_environment().
  EnvironmentLookup environment;
};

struct AwsConfig {
  Credentials credentials;          // anonymous() when options.anonymous
  std::string credentials_source;   // "environment", "/root/.aws/credentials [dev]", "anonymous"; never the secret
  std::string region;               // e.g. "eu-central-1"; "us-east-1" when nothing says otherwise
  std::string endpoint;             // scheme://host[:port][/path], no trailing '/'
  AddressingStyle addressing_style = AddressingStyle::kVirtualHost;  // kVirtualHost or kPath, never kAuto
  std::string profile;              // the profile whose sections were read
};

// Resolves everything in AwsConfig:
//   credentials  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); then the profile's section of
//                AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials); then the profile's section of the config
//                file. aws_access_key_id, aws_secret_access_key, aws_session_token.
//   region       AWS_REGION, AWS_DEFAULT_REGION, the config file's `region`, else "us-east-1".
//   endpoint     AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the config file's services section `s3 = endpoint_url = ...`,
//                the profile's `endpoint_url`, else https://s3.<region>.amazonaws.com (.com.cn for cn-*). Configured
//                endpoints are skipped when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile's
//                ignore_configured_endpoint_urls is "true".
//   addressing   kPath when the endpoint host is an IP literal or localhost; else options.addressing_style unless
//                kAuto; else the profile's `s3 = addressing_style = ...`; else kVirtualHost.
// The config file is AWS_CONFIG_FILE (default ~/.aws/config); its sections are [default] and [profile NAME].
// Errors (no message ever contains a secret or a line of a file):
//   kInvalidArgument  "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or configure profile 'x' in
//                     /root/.aws/credentials"; "profile 'x' not found in FILE or FILE" (only for a profile that was
//                     asked for by name); one of the key variables set without the other; a profile with only half a
//                     key; a malformed file (FILE:LINE); an endpoint that is not http(s)://host; an unknown
//                     addressing_style.
//   kUnsupported      the profile only offers role_arn, sso, web identity or credential_process credentials.
//   kIo               a file exists but cannot be read.
Status resolve_aws_config(const AwsConfigOptions& options, AwsConfig* out);

// True when virtual-host addressing cannot work for `endpoint` ("http://127.0.0.1:9000", "http://[::1]:9000",
// "http://localhost:4569"), so buckets must go in the path.
bool endpoint_requires_path_style(std::string_view endpoint);

// Section name -> key -> value of one AWS shared file. Keys are lower-cased; an indented block under an empty value
// ("s3 =" then "  addressing_style = path") becomes "s3.addressing_style". Section names keep their spelling with
// whitespace runs collapsed ("profile dev").
using AwsIniSections = std::map<std::string, std::map<std::string, std::string>>;

// Parses the INI dialect of ~/.aws/config and ~/.aws/credentials: [section] headers, `key = value` lines, full-line
// comments starting with '#' or ';' (a ';' or '#' inside a value is kept: secrets may contain them), CRLF tolerated.
// kInvalidArgument names `file_name` and the line number, never the line.
Status parse_aws_ini(std::string_view text, std::string_view file_name, AwsIniSections* out);

}  // namespace ringfetch::s3
