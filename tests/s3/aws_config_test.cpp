// Tests of resolve_aws_config() and parse_aws_ini(): each setting's source order, the profile rules, the messages
// (exact where users read them, and never containing a secret), and the INI dialect. Files are real temp files under
// a fake HOME; the environment is a map, so the test process's own environment is never read or changed.
#include "ringfetch/s3/aws_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace ringfetch::s3 {
namespace {

namespace fs = std::filesystem;

constexpr char kSecret[] = "s3cr3t/Value+With=Odd;Chars#x";
constexpr char kOtherSecret[] = "0ther/Secret+KEY";

// Option sets the tests use (plain functions: designated initializers would trip -Wmissing-field-initializers).
AwsConfigOptions named_profile(std::string profile) {
  AwsConfigOptions options;
  options.profile = std::move(profile);
  return options;
}
AwsConfigOptions anonymous(AddressingStyle style = AddressingStyle::kAuto, std::string profile = "") {
  AwsConfigOptions options = named_profile(std::move(profile));
  options.anonymous = true;
  options.addressing_style = style;
  return options;
}

class AwsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ringfetch_aws_config_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    home_ = pattern;
    fs::create_directories(home_ / ".aws");
    env_["HOME"] = home_.string();
  }
  void TearDown() override { fs::remove_all(home_); }

  void write(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  void write_credentials(const std::string& text) { write(credentials_path(), text); }
  void write_config(const std::string& text) { write(config_path(), text); }
  fs::path credentials_path() const { return home_ / ".aws" / "credentials"; }
  fs::path config_path() const { return home_ / ".aws" / "config"; }

  Status resolve(AwsConfigOptions options = {}) {
    options.environment = environment_from(env_);
    return resolve_aws_config(options, &config_);
  }
  AwsConfig resolve_ok(AwsConfigOptions options = {}) {
    const Status status = resolve(std::move(options));
    EXPECT_TRUE(status.ok()) << status.message();
    return config_;
  }
  // The failure's message, after checking that it leaks no secret.
  std::string resolve_error(AwsConfigOptions options = {}) {
    const Status status = resolve(std::move(options));
    EXPECT_FALSE(status.ok());
    EXPECT_EQ(status.message().find(kSecret), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find(kOtherSecret), std::string::npos) << status.message();
    return status.message();
  }

  fs::path home_;
  std::map<std::string, std::string> env_;
  AwsConfig config_;
};

TEST_F(AwsConfigTest, EnvironmentKeysComeFirst) {
  write_credentials("[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = " + std::string(kOtherSecret));
  env_["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  env_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  env_["AWS_SESSION_TOKEN"] = "envtoken";
  const AwsConfig config = resolve_ok();
  EXPECT_EQ(config.credentials.access_key_id, "ENVKEY");
  EXPECT_EQ(config.credentials.secret_access_key, kSecret);
  EXPECT_EQ(config.credentials.session_token, "envtoken");
  EXPECT_EQ(config.credentials_source, "environment");
  EXPECT_EQ(config.profile, "default");
}

TEST_F(AwsConfigTest, DefaultProfileFromCredentialsFileUnderHome) {
  write_credentials("# comment\n; other comment\n[default]\n  aws_access_key_id = FILEKEY  \n"
                    "AWS_Secret_Access_Key=" + std::string(kSecret) + "\r\naws_session_token = tok\n");
  const AwsConfig config = resolve_ok();
  EXPECT_EQ(config.credentials.access_key_id, "FILEKEY");
  EXPECT_EQ(config.credentials.secret_access_key, kSecret);  // ';' and '#' inside a value are kept
  EXPECT_EQ(config.credentials.session_token, "tok");
  EXPECT_EQ(config.credentials_source, credentials_path().string() + " [default]");
}

TEST_F(AwsConfigTest, AwsProfileSelectsTheSectionButEnvironmentKeysStillWin) {
  write_credentials("[default]\naws_access_key_id = D\naws_secret_access_key = x\n"
                    "[dev]\naws_access_key_id = DEV\naws_secret_access_key = " + std::string(kSecret) + "\n");
  env_["AWS_PROFILE"] = "dev";
  EXPECT_EQ(resolve_ok().credentials.access_key_id, "DEV");
  env_["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  env_["AWS_SECRET_ACCESS_KEY"] = kOtherSecret;
  EXPECT_EQ(resolve_ok().credentials.access_key_id, "ENVKEY");
}

TEST_F(AwsConfigTest, ProfileNamedByTheCallerOutranksEnvironmentKeys) {
  write_credentials("[dev]\naws_access_key_id = DEV\naws_secret_access_key = " + std::string(kSecret) + "\n");
  env_["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  env_["AWS_SECRET_ACCESS_KEY"] = kOtherSecret;
  const AwsConfig config = resolve_ok(named_profile("dev"));
  EXPECT_EQ(config.credentials.access_key_id, "DEV");
  EXPECT_EQ(config.profile, "dev");
}

TEST_F(AwsConfigTest, FileLocationsFromEnvironmentWithTildeExpansion) {
  fs::create_directories(home_ / "elsewhere");
  write(home_ / "elsewhere" / "creds", "[p]\naws_access_key_id = ALT\naws_secret_access_key = y\n");
  write(home_ / "elsewhere" / "conf", "[profile p]\nregion = eu-north-1\n");
  env_["AWS_SHARED_CREDENTIALS_FILE"] = "~/elsewhere/creds";
  env_["AWS_CONFIG_FILE"] = (home_ / "elsewhere" / "conf").string();
  const AwsConfig config = resolve_ok(named_profile("p"));
  EXPECT_EQ(config.credentials.access_key_id, "ALT");
  EXPECT_EQ(config.region, "eu-north-1");
}

TEST_F(AwsConfigTest, CredentialsInTheConfigFileAreTheLastResort) {
  write_config("[profile cfg]\naws_access_key_id = CFG\naws_secret_access_key = z\n");
  const AwsConfig config = resolve_ok(named_profile("cfg"));
  EXPECT_EQ(config.credentials.access_key_id, "CFG");
  EXPECT_EQ(config.credentials_source, config_path().string() + " [cfg]");
}

TEST_F(AwsConfigTest, NoCredentialsMessageSaysWhatToDo) {
  EXPECT_EQ(resolve_error(), "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or configure profile "
                             "'default' in " + credentials_path().string());
  EXPECT_EQ(config_.credentials.access_key_id, "");
}

TEST_F(AwsConfigTest, MissingNamedProfileIsAnErrorNamingTheFiles) {
  write_credentials("[default]\naws_access_key_id = D\naws_secret_access_key = " + std::string(kSecret) + "\n");
  const std::string expected = "profile 'x' not found in " + credentials_path().string() + " or " +
                               config_path().string();
  EXPECT_EQ(resolve_error(named_profile("x")), expected);
  env_["AWS_PROFILE"] = "x";
  EXPECT_EQ(resolve_error(), expected);
}

TEST_F(AwsConfigTest, HalfAKeyIsAnError) {
  env_["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  EXPECT_EQ(resolve_error(), "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  env_.erase("AWS_ACCESS_KEY_ID");
  env_["AWS_SECRET_ACCESS_KEY"] = kSecret;
  EXPECT_EQ(resolve_error(), "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  env_.erase("AWS_SECRET_ACCESS_KEY");
  write_credentials("[default]\naws_secret_access_key = " + std::string(kSecret) + "\n");
  EXPECT_EQ(resolve_error(), "profile 'default' in " + credentials_path().string() +
                                 " has aws_secret_access_key but no aws_access_key_id");
}

TEST_F(AwsConfigTest, UnsupportedCredentialSourcesAreNamed) {
  write_config("[profile sso]\nsso_start_url = https://x\nregion = us-west-2\n");
  const Status status = resolve(named_profile("sso"));
  EXPECT_EQ(status.kind(), ErrorKind::kUnsupported);
  EXPECT_NE(status.message().find("profile 'sso' gets its credentials from role_arn, sso"), std::string::npos);
}

TEST_F(AwsConfigTest, AnonymousNeedsNoCredentials) {
  const AwsConfig config = resolve_ok(anonymous());
  EXPECT_TRUE(config.credentials.anonymous());
  EXPECT_EQ(config.credentials_source, "anonymous");
  EXPECT_EQ(config.endpoint, "https://s3.us-east-1.amazonaws.com");
}

TEST_F(AwsConfigTest, RegionOrder) {
  write_config("[default]\nregion = ap-south-1\n[profile other]\nregion = sa-east-1\n");
  EXPECT_EQ(resolve_ok(anonymous()).region, "ap-south-1");
  EXPECT_EQ(resolve_ok(anonymous(AddressingStyle::kAuto, "other")).region, "sa-east-1");
  env_["AWS_DEFAULT_REGION"] = "eu-west-3";
  EXPECT_EQ(resolve_ok(anonymous()).region, "eu-west-3");
  env_["AWS_REGION"] = "eu-west-2";
  EXPECT_EQ(resolve_ok(anonymous()).region, "eu-west-2");
}

TEST_F(AwsConfigTest, ConfigSectionForDefaultMayBeSpelledProfileDefault) {
  write_config("[ profile   default ]\nregion = ca-central-1\n");
  EXPECT_EQ(resolve_ok(anonymous()).region, "ca-central-1");
}

TEST_F(AwsConfigTest, EndpointOrder) {
  write_config("[default]\nendpoint_url = http://profile-endpoint:9000/\nservices = local\n"
               "[services local]\ns3 =\n  endpoint_url = http://services-endpoint:9000\n");
  EXPECT_EQ(resolve_ok(anonymous()).endpoint, "http://services-endpoint:9000");
  env_["AWS_ENDPOINT_URL"] = "https://generic.example.com";
  EXPECT_EQ(resolve_ok(anonymous()).endpoint, "https://generic.example.com");
  env_["AWS_ENDPOINT_URL_S3"] = "https://s3.example.com/";
  EXPECT_EQ(resolve_ok(anonymous()).endpoint, "https://s3.example.com");
  env_["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "TRUE";
  EXPECT_EQ(resolve_ok(anonymous()).endpoint, "https://s3.us-east-1.amazonaws.com");
}

TEST_F(AwsConfigTest, ProfileEndpointWithoutServicesSection) {
  write_config("[default]\nendpoint_url = http://profile-endpoint:9000/\n");
  EXPECT_EQ(resolve_ok(anonymous()).endpoint, "http://profile-endpoint:9000");
}

TEST_F(AwsConfigTest, DefaultEndpointFollowsRegionAndPartition) {
  env_["AWS_REGION"] = "eu-central-1";
  EXPECT_EQ(resolve_ok(anonymous()).endpoint, "https://s3.eu-central-1.amazonaws.com");
  env_["AWS_REGION"] = "cn-north-1";
  EXPECT_EQ(resolve_ok(anonymous()).endpoint, "https://s3.cn-north-1.amazonaws.com.cn");
}

TEST_F(AwsConfigTest, MalformedEndpointIsRejectedWithItsSource) {
  env_["AWS_ENDPOINT_URL"] = "localhost:9000";
  EXPECT_EQ(resolve_error(anonymous()),
            "endpoint 'localhost:9000' (from AWS_ENDPOINT_URL) must look like http://host[:port] or "
            "https://host[:port]");
  env_["AWS_ENDPOINT_URL"] = "http://";
  EXPECT_FALSE(resolve(anonymous()).ok());
}

TEST_F(AwsConfigTest, AddressingStyle) {
  env_["AWS_ENDPOINT_URL"] = "https://storage.example.com";
  EXPECT_EQ(resolve_ok(anonymous()).addressing_style, AddressingStyle::kVirtualHost);
  EXPECT_EQ(resolve_ok(anonymous(AddressingStyle::kPath)).addressing_style,
            AddressingStyle::kPath);
  write_config("[default]\ns3 =\n    addressing_style = path\n");
  EXPECT_EQ(resolve_ok(anonymous()).addressing_style, AddressingStyle::kPath);
  EXPECT_EQ(resolve_ok(anonymous(AddressingStyle::kVirtualHost)).addressing_style,
            AddressingStyle::kVirtualHost);
  for (const char* endpoint : {"http://127.0.0.1:9000", "http://[::1]:9000/", "http://LocalHost:4569",
                               "https://10.0.0.7"}) {
    env_["AWS_ENDPOINT_URL"] = endpoint;
    EXPECT_EQ(resolve_ok(anonymous(AddressingStyle::kVirtualHost)).addressing_style,
              AddressingStyle::kPath)
        << endpoint;
  }
}

TEST_F(AwsConfigTest, UnknownAddressingStyleIsAnError) {
  write_config("[default]\ns3 =\n  addressing_style = sideways\n");
  EXPECT_EQ(resolve_error(anonymous()), "s3.addressing_style 'sideways' in profile 'default' in " +
                                                    config_path().string() + " must be auto, virtual or path");
}

TEST_F(AwsConfigTest, UnreadableFileIsAnIoError) {
  fs::create_directories(home_ / "a-directory");
  env_["AWS_SHARED_CREDENTIALS_FILE"] = (home_ / "a-directory").string();
  const Status status = resolve();
  EXPECT_EQ(status.kind(), ErrorKind::kIo);
  EXPECT_EQ(status.message(), "cannot read " + (home_ / "a-directory").string() + ": Is a directory");
}

TEST_F(AwsConfigTest, MalformedFileNamesLineButNotContent) {
  write_credentials("[default]\naws_access_key_id = K\n" + std::string(kOtherSecret) + "\n");  // a pasted bare key
  EXPECT_EQ(resolve_error(), credentials_path().string() + ":3: expected 'key = value'");
}

TEST(EndpointRequiresPathStyle, IpLiteralsAndLocalhostOnly) {
  EXPECT_TRUE(endpoint_requires_path_style("http://127.0.0.1:9000"));
  EXPECT_TRUE(endpoint_requires_path_style("http://user@192.168.1.2/prefix"));
  EXPECT_TRUE(endpoint_requires_path_style("http://[fe80::1]:8080"));
  EXPECT_TRUE(endpoint_requires_path_style("http://localhost"));
  EXPECT_FALSE(endpoint_requires_path_style("https://s3.us-east-1.amazonaws.com"));
  EXPECT_FALSE(endpoint_requires_path_style("http://127.0.0.1.nip.io:9000"));
  EXPECT_FALSE(endpoint_requires_path_style("http://localhost.example.com"));
}

TEST(ParseAwsIni, SectionsKeysCommentsAndNesting) {
  AwsIniSections sections;
  const Status status = parse_aws_ini(
      "\xEF\xBB\xBF# leading comment\r\n"
      "[default]\r\n"
      "Region=us-west-2\r\n"
      "  ; indented comment\n"
      "s3 =\n"
      "  addressing_style = path\n"
      "\tmax_concurrent_requests = 20\n"
      "output = json\n"
      "  indented_plain = kept as a plain key\n"
      "[profile   dev]\n"
      "empty =\n"
      "value = a = b # not a comment\n",
      "cfg", &sections);
  ASSERT_TRUE(status.ok()) << status.message();
  const AwsIniSections expected = {
      {"default",
       {{"region", "us-west-2"},
        {"s3", ""},
        {"s3.addressing_style", "path"},
        {"s3.max_concurrent_requests", "20"},
        {"output", "json"},
        {"indented_plain", "kept as a plain key"}}},
      {"profile dev", {{"empty", ""}, {"value", "a = b # not a comment"}}},
  };
  EXPECT_EQ(sections, expected);
}

TEST(ParseAwsIni, ABareCarriageReturnEndsTheLineAsInBotocore) {
  AwsIniSections sections;
  const Status status = parse_aws_ini("[default]\rregion = eu-west-1\rkey = a\rb = c\r\n\r[other]\rx=1", "cfg", &sections);
  ASSERT_TRUE(status.ok()) << status.message();
  const AwsIniSections expected = {
      {"default", {{"region", "eu-west-1"}, {"key", "a"}, {"b", "c"}}},
      {"other", {{"x", "1"}}},
  };
  EXPECT_EQ(sections, expected);
  EXPECT_EQ(parse_aws_ini("[a]\r\n\rjust words\n", "f", &sections).message(), "f:3: expected 'key = value'");
}

TEST(ParseAwsIni, ErrorsNameFileAndLine) {
  AwsIniSections sections;
  EXPECT_EQ(parse_aws_ini("key = value\n", "f", &sections).message(), "f:1: 'key = value' before any [section]");
  EXPECT_EQ(parse_aws_ini("[a]\n\n[b\n", "f", &sections).message(), "f:3: section header without ']'");
  EXPECT_EQ(parse_aws_ini("[a]\n = v\n", "f", &sections).message(), "f:2: empty key before '='");
  EXPECT_EQ(parse_aws_ini("[a]\njust words\n", "f", &sections).kind(), ErrorKind::kInvalidArgument);
  EXPECT_TRUE(parse_aws_ini("", "f", &sections).ok());
  EXPECT_TRUE(sections.empty());
}

}  // namespace
}  // namespace ringfetch::s3
