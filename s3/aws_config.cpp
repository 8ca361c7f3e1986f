// resolve_aws_config() and the AWS shared-file INI parser declared in ringfetch/s3/aws_config.hpp.
// Each setting has one small resolver that walks its sources in the SDKs' order and stops at the first that says
// something; the two files are read once per resolution. Error messages name variables, files, profiles and line
// numbers only, so a secret can never leak through one.
#include "ringfetch/s3/aws_config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ringfetch::s3 {
namespace {

constexpr std::string_view kDefaultProfile = "default";
constexpr std::string_view kDefaultRegion = "us-east-1";
constexpr std::string_view kWhitespace = " \t";

using Section = std::map<std::string, std::string>;

std::string_view trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kWhitespace) - begin + 1);
}

std::string to_lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && to_lower(text.substr(0, prefix.size())) == prefix;
}

// "[ profile   dev ]" -> "profile dev".
std::string section_name(std::string_view bracketed) {
  std::string name;
  for (char c : trim(bracketed.substr(1, bracketed.size() - 2))) {
    const bool space = c == ' ' || c == '\t';
    if (space && !name.empty() && name.back() == ' ') continue;
    name.push_back(space ? ' ' : c);
  }
  return name;
}

Status ini_error(std::string_view file_name, size_t line_number, std::string_view problem) {
  return Status(ErrorKind::kInvalidArgument,
                std::string(file_name) + ":" + std::to_string(line_number) + ": " + std::string(problem));
}

// One AWS shared file as read for a resolution. `exists` is false when there is no such file (not an error).
struct SharedFile {
  std::string path;
  bool exists = false;
  AwsIniSections sections;
};

Status read_whole_file(const std::string& path, bool* exists, std::string* text) {
  *exists = false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return {};
    return Status(ErrorKind::kIo, "cannot read " + path + ": " + std::strerror(errno));
  }
  *exists = true;
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got == 0) break;
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      return Status(ErrorKind::kIo, "cannot read " + path + ": " + std::strerror(error));
    }
    text->append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  return {};
}

Status load_shared_file(std::string path, SharedFile* out) {
  out->path = std::move(path);
  std::string text;
  Status status = read_whole_file(out->path, &out->exists, &text);
  if (!status.ok() || !out->exists) return status;
  return parse_aws_ini(text, out->path, &out->sections);
}

const Section* find_section(const SharedFile& file, const std::string& name) {
  const auto it = file.sections.find(name);
  return it == file.sections.end() ? nullptr : &it->second;
}

std::string value_in(const Section* section, const std::string& key) {
  if (section == nullptr) return {};
  const auto it = section->find(key);
  return it == section->end() ? std::string() : it->second;
}

std::string home_directory(const EnvironmentLookup& environment) {
  if (auto home = environment("HOME")) return *home;
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* result = nullptr;
  if (getpwuid_r(getuid(), &entry, buffer.data(), buffer.size(), &result) == 0 && result != nullptr) {
    return result->pw_dir;
  }
  return "~";  // only shows up in messages: no file will be found there
}

std::string expand_home(std::string path, const std::string& home) {
  if (path == "~" || path.starts_with("~/")) path.replace(0, 1, home);
  return path;
}

// Everything the per-setting resolvers share.
struct Resolution {
  EnvironmentLookup environment;
  std::string profile;
  bool profile_named = false;            // by the caller or AWS_PROFILE: must exist
  bool profile_named_by_caller = false;  // outranks the key variables
  SharedFile credentials_file;
  SharedFile config_file;
  const Section* credentials_section = nullptr;
  const Section* config_section = nullptr;

  std::optional<std::string> env(const std::string& name) const { return environment(name); }
  std::string config_value(const std::string& key) const { return value_in(config_section, key); }
};

void choose_profile(const AwsConfigOptions& options, Resolution* resolution) {
  resolution->profile_named_by_caller = !options.profile.empty();
  std::optional<std::string> named;
  if (resolution->profile_named_by_caller) named = options.profile;
  if (!named) named = resolution->env("AWS_PROFILE");
  if (!named) named = resolution->env("AWS_DEFAULT_PROFILE");
  resolution->profile_named = named.has_value();
  resolution->profile = named.value_or(std::string(kDefaultProfile));
}

Status load_files(Resolution* resolution) {
  const std::string home = home_directory(resolution->environment);
  const std::string credentials_path = expand_home(
      resolution->env("AWS_SHARED_CREDENTIALS_FILE").value_or(home + "/.aws/credentials"), home);
  const std::string config_path = expand_home(resolution->env("AWS_CONFIG_FILE").value_or(home + "/.aws/config"), home);
  if (Status status = load_shared_file(credentials_path, &resolution->credentials_file); !status.ok()) return status;
  if (Status status = load_shared_file(config_path, &resolution->config_file); !status.ok()) return status;

  const std::string& profile = resolution->profile;
  resolution->credentials_section = find_section(resolution->credentials_file, profile);
  resolution->config_section = find_section(resolution->config_file, "profile " + profile);
  if (resolution->config_section == nullptr && profile == kDefaultProfile) {
    resolution->config_section = find_section(resolution->config_file, std::string(kDefaultProfile));
  }
  const bool found = resolution->credentials_section != nullptr || resolution->config_section != nullptr;
  if (resolution->profile_named && !found) {
    return Status(ErrorKind::kInvalidArgument, "profile '" + profile + "' not found in " +
                                                   resolution->credentials_file.path + " or " +
                                                   resolution->config_file.path);
  }
  return {};
}

Status credentials_from_environment(const Resolution& resolution, std::optional<Credentials>* out) {
  const auto key_id = resolution.env("AWS_ACCESS_KEY_ID");
  const auto secret = resolution.env("AWS_SECRET_ACCESS_KEY");
  if (key_id.has_value() != secret.has_value()) {
    return Status(ErrorKind::kInvalidArgument, key_id ? "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
                                                      : "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  }
  if (!key_id) return {};
  const auto token = resolution.env("AWS_SESSION_TOKEN");
  *out = Credentials{*key_id, *secret, token ? *token : resolution.env("AWS_SECURITY_TOKEN").value_or("")};
  return {};
}

// Credentials of one profile section; nothing when the section has no key at all.
Status credentials_from_section(const Section* section, const std::string& where, std::optional<Credentials>* out) {
  const std::string key_id = value_in(section, "aws_access_key_id");
  const std::string secret = value_in(section, "aws_secret_access_key");
  if (key_id.empty() && secret.empty()) return {};
  if (key_id.empty() || secret.empty()) {
    const char* half = key_id.empty() ? " has aws_secret_access_key but no aws_access_key_id"
                                      : " has aws_access_key_id but no aws_secret_access_key";
    return Status(ErrorKind::kInvalidArgument, where + half);
  }
  std::string token = value_in(section, "aws_session_token");
  if (token.empty()) token = value_in(section, "aws_security_token");
  *out = Credentials{key_id, secret, token};
  return {};
}

bool uses_unsupported_credential_source(const Section* section) {
  if (section == nullptr) return false;
  return std::any_of(section->begin(), section->end(), [](const auto& entry) {
    return entry.first == "role_arn" || entry.first == "credential_process" || entry.first.starts_with("sso_") ||
           entry.first == "web_identity_token_file" || entry.first == "credential_source";
  });
}

Status no_credentials_error(const Resolution& resolution) {
  const std::string profile = resolution.profile;
  if (uses_unsupported_credential_source(resolution.credentials_section) ||
      uses_unsupported_credential_source(resolution.config_section)) {
    return Status(ErrorKind::kUnsupported,
                  "profile '" + profile + "' gets its credentials from role_arn, sso, web identity or " +
                      "credential_process, which ringfetch does not support: export AWS_ACCESS_KEY_ID/" +
                      "AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN (e.g. `aws configure export-credentials --format env`)");
  }
  return Status(ErrorKind::kInvalidArgument,
                "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or configure profile '" + profile +
                    "' in " + resolution.credentials_file.path);
}

Status resolve_credentials(const Resolution& resolution, AwsConfig* out) {
  std::optional<Credentials> found;
  if (!resolution.profile_named_by_caller) {
    if (Status status = credentials_from_environment(resolution, &found); !status.ok()) return status;
    if (found) out->credentials_source = "environment";
  }
  const struct {
    const Section* section;
    const std::string& path;
  } profile_sources[] = {{resolution.credentials_section, resolution.credentials_file.path},
                         {resolution.config_section, resolution.config_file.path}};
  for (const auto& source : profile_sources) {
    if (found) break;
    const std::string where = "profile '" + resolution.profile + "' in " + source.path;
    if (Status status = credentials_from_section(source.section, where, &found); !status.ok()) return status;
    if (found) out->credentials_source = source.path + " [" + resolution.profile + "]";
  }
  if (!found) return no_credentials_error(resolution);
  out->credentials = std::move(*found);
  return {};
}

std::string resolve_region(const Resolution& resolution) {
  if (auto region = resolution.env("AWS_REGION")) return *region;
  if (auto region = resolution.env("AWS_DEFAULT_REGION")) return *region;
  if (std::string region = resolution.config_value("region"); !region.empty()) return region;
  return std::string(kDefaultRegion);
}

bool ignores_configured_endpoints(const Resolution& resolution) {
  if (auto flag = resolution.env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) return to_lower(*flag) == "true";
  return to_lower(resolution.config_value("ignore_configured_endpoint_urls")) == "true";
}

// The configured endpoint and where it came from, or nothing.
std::optional<std::pair<std::string, std::string>> configured_endpoint(const Resolution& resolution) {
  for (const char* variable : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
    if (auto endpoint = resolution.env(variable)) return std::pair(*endpoint, std::string(variable));
  }
  const std::string where = "profile '" + resolution.profile + "' in " + resolution.config_file.path;
  if (const std::string services = resolution.config_value("services"); !services.empty()) {
    const Section* section = find_section(resolution.config_file, "services " + services);
    if (std::string endpoint = value_in(section, "s3.endpoint_url"); !endpoint.empty()) {
      return std::pair(endpoint, "services '" + services + "' of " + where);
    }
  }
  if (std::string endpoint = resolution.config_value("endpoint_url"); !endpoint.empty()) {
    return std::pair(endpoint, where);
  }
  return std::nullopt;
}

std::string default_endpoint(const std::string& region) {
  const std::string suffix = region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com";
  return "https://s3." + region + suffix;
}

// The authority's host: no scheme, userinfo, port or path; IPv6 keeps its brackets. Empty when malformed.
std::string_view endpoint_host(std::string_view endpoint) {
  const size_t scheme_end = endpoint.find("://");
  if (scheme_end == std::string_view::npos) return {};
  std::string_view authority = endpoint.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    return close == std::string_view::npos ? std::string_view() : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.find(':'));
}

Status resolve_endpoint(const Resolution& resolution, const std::string& region, AwsConfig* out) {
  std::optional<std::pair<std::string, std::string>> configured;
  if (!ignores_configured_endpoints(resolution)) configured = configured_endpoint(resolution);
  if (!configured) {
    out->endpoint = default_endpoint(region);
    return {};
  }
  std::string endpoint = configured->first;
  while (endpoint.ends_with('/')) endpoint.pop_back();
  const bool http_scheme = starts_with_ignoring_case(endpoint, "http://") ||
                           starts_with_ignoring_case(endpoint, "https://");
  if (!http_scheme || endpoint_host(endpoint).empty()) {
    return Status(ErrorKind::kInvalidArgument, "endpoint '" + configured->first + "' (from " + configured->second +
                                                   ") must look like http://host[:port] or https://host[:port]");
  }
  out->endpoint = std::move(endpoint);
  return {};
}

Status parse_addressing_style(const std::string& text, const std::string& where, AddressingStyle* out) {
  const std::string lower = to_lower(text);
  if (lower.empty() || lower == "auto") return {};  // leaves the default
  if (lower == "virtual") {
    *out = AddressingStyle::kVirtualHost;
  } else if (lower == "path") {
    *out = AddressingStyle::kPath;
  } else {
    return Status(ErrorKind::kInvalidArgument,
                  "s3.addressing_style '" + text + "' in " + where + " must be auto, virtual or path");
  }
  return {};
}

Status resolve_addressing_style(const Resolution& resolution, const AwsConfigOptions& options, AwsConfig* out) {
  if (endpoint_requires_path_style(out->endpoint)) {
    out->addressing_style = AddressingStyle::kPath;
    return {};
  }
  out->addressing_style = AddressingStyle::kVirtualHost;
  if (options.addressing_style != AddressingStyle::kAuto) {
    out->addressing_style = options.addressing_style;
    return {};
  }
  const std::string where = "profile '" + resolution.profile + "' in " + resolution.config_file.path;
  return parse_addressing_style(resolution.config_value("s3.addressing_style"), where, &out->addressing_style);
}

}  // namespace

EnvironmentLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  };
}

EnvironmentLookup environment_from(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const std::string& name) -> std::optional<std::string> {
    const auto it = variables.find(name);
    if (it == variables.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

Status resolve_aws_config(const AwsConfigOptions& options, AwsConfig* out) {
  *out = AwsConfig{};
  Resolution resolution;
  resolution.environment = options.environment ? options.environment : process_environment();
  choose_profile(options, &resolution);
  out->profile = resolution.profile;
  if (Status status = load_files(&resolution); !status.ok()) return status;

  if (options.anonymous) {
    out->credentials_source = "anonymous";
  } else if (Status status = resolve_credentials(resolution, out); !status.ok()) {
    return status;
  }
  out->region = resolve_region(resolution);
  if (Status status = resolve_endpoint(resolution, out->region, out); !status.ok()) return status;
  return resolve_addressing_style(resolution, options, out);
}

bool endpoint_requires_path_style(std::string_view endpoint) {
  const std::string_view host = endpoint_host(endpoint);
  if (host.size() > 2 && host.front() == '[') return true;  // IPv6 literal
  const std::string host_text(host);
  in_addr ipv4{};
  return to_lower(host_text) == "localhost" || inet_pton(AF_INET, host_text.c_str(), &ipv4) == 1;
}

Status parse_aws_ini(std::string_view text, std::string_view file_name, AwsIniSections* out) {
  out->clear();
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte order mark
  Section* section = nullptr;
  std::string nesting_parent;  // key whose empty value opens an indented block ("s3 =")
  size_t line_number = 0;
  while (!text.empty()) {
    // Lines end at "\n", "\r\n" or a bare "\r", as in Python's universal newlines (botocore reads the files so).
    const size_t end = text.find_first_of("\r\n");
    std::string_view line = text.substr(0, end);
    size_t terminator = end == std::string_view::npos ? 0 : 1;
    if (terminator == 1 && text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n') terminator = 2;
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + terminator);
    ++line_number;
    const bool indented = line.starts_with(' ') || line.starts_with('\t');
    const std::string_view content = trim(line);
    if (content.empty() || content.front() == '#' || content.front() == ';') continue;

    if (content.front() == '[') {
      if (!content.ends_with(']')) return ini_error(file_name, line_number, "section header without ']'");
      section = &(*out)[section_name(content)];
      nesting_parent.clear();
      continue;
    }
    if (section == nullptr) return ini_error(file_name, line_number, "'key = value' before any [section]");
    const size_t equals = content.find('=');
    if (equals == std::string_view::npos) return ini_error(file_name, line_number, "expected 'key = value'");
    std::string key = to_lower(trim(content.substr(0, equals)));
    if (key.empty()) return ini_error(file_name, line_number, "empty key before '='");
    const std::string value(trim(content.substr(equals + 1)));

    if (indented && !nesting_parent.empty()) {
      (*section)[nesting_parent + "." + key] = value;
      continue;
    }
    nesting_parent = value.empty() ? key : std::string();
    (*section)[std::move(key)] = value;
  }
  return {};
}

}  // namespace ringfetch::s3
