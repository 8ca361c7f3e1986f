// Cross-checks SigV4Signer against botocore's S3SigV4Auth on generated requests: odd keys (spaces, UTF-8, + ~ % = &,
// nested and empty segments), query strings with repeated names and empty values, every method, session tokens,
// hashed and unsigned payloads, fixed timestamps. The requests are written as JSON lines, signed by
// tests/s3/botocore_sign.py under Debian's /usr/bin/python3 (python3-botocore), and every Authorization header must
// be identical; the first mismatch is printed in full with both canonical requests.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "ringfetch/s3/sigv4.hpp"

#ifndef RINGFETCH_TEST_SOURCE_DIR
#define RINGFETCH_TEST_SOURCE_DIR "."
#endif

namespace ringfetch::s3 {
namespace {

using nlohmann::json;

constexpr char kPython[] = "/usr/bin/python3";
constexpr int kRequestCount = 600;
constexpr uint32_t kSeed = 20130524;

// A signing case: the request handed to both signers, plus what each signer needs besides it.
struct GeneratedCase {
  SignableRequest request;
  std::string scheme;
  std::string body;
  bool sign_payload = false;
  Credentials credentials;
  std::string region;
  int64_t epoch_seconds = 0;
};

// Deterministic on every standard library (std::uniform_int_distribution is not specified bit-exactly).
class CaseRandom {
 public:
  explicit CaseRandom(uint32_t seed) : engine_(seed) {}
  size_t below(size_t bound) { return static_cast<size_t>(engine_() % bound); }
  bool chance(size_t one_in) { return below(one_in) == 0; }
  template <typename T, size_t N>
  const T& pick(const T (&options)[N]) {
    return options[below(N)];
  }

 private:
  std::mt19937 engine_;
};

constexpr const char* kKeyFragments[] = {
    "test.txt", "my key", "a+b", "tilde~x", "100%", "x=y", "a&b", "nested/dir/",
    "\xc3\xbcn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "emoji\xf0\x9f\x98\x80", "..", ".", "", "trailing space ", "semi;colon",
    "colon:x", "q?mark", "hash#tag", "star*", "quote'\"", "comma,", "brackets[]{}", "back\\slash", "$dollar", "@at",
    "!bang", "(paren)", "pipe|", "^caret", "`tick", "<angle>", "tab\tin", "%2F-already-encoded", "a//b",
    "ckpt/__0_0.distcp",
};
constexpr const char* kQueryNames[] = {
    "prefix", "max-keys", "list-type", "continuation-token", "delimiter", "uploadId", "partNumber", "versionId",
    "response-content-disposition", "x-id", "lifecycle", "tagging", "acl", "a", "A", "a-b", "Z", "_", "~x",
    "\xc3\xbcn\xc3\xaf", "k=ey", "k&y", "sp ace", "per%cent", "sl/ash", "",
};
constexpr const char* kQueryValues[] = {
    "", "", "2", "J", "/", "a/b/", "+", "~", "%", "=", "&", "a b", "\xc3\xa9t\xc3\xa9",
    "attachment; filename=\"x y.bin\"", "1/ABCdef+/==", "GetObject", "1000", "0", "null", "*",
};
constexpr std::pair<const char*, const char*> kHeaderChoices[] = {
    {"Range", "bytes=0-9"},
    {"range", "bytes=1048576-9437183"},
    {"If-Match", "\"9b2cf535f27731c974343645a3985328\""},
    {"x-amz-meta-note", "  a   b\t c  "},
    {"X-Amz-Meta-Dup", "one"},
    {"x-amz-meta-dup", "two"},
    {"Content-Type", "application/octet-stream"},
    {"User-Agent", "ringfetch/0.1 io_uring"},
    {"Expect", "100-continue"},
    {"Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="},
    {"x-amz-storage-class", "STANDARD_IA"},
    {"x-amz-checksum-crc32", "AAAAAA=="},
    {"Cache-Control", "no-cache"},
    {"x-amz-meta-empty", ""},
    {"X-Amz-Copy-Source", "/src-bucket/a%20b"},
};
constexpr const char* kMethods[] = {"GET", "GET", "GET", "HEAD", "PUT", "DELETE", "POST"};
constexpr const char* kRegions[] = {"us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1",
                                    "auto"};
constexpr const char* kBuckets[] = {"examplebucket", "my.bucket", "b-1", "ringfetch-test"};
constexpr const char* kPathStyleHosts[] = {"s3.amazonaws.com", "127.0.0.1:9000", "localhost:4569", "[::1]:8333",
                                           "minio.internal:9000"};
constexpr const char* kBodies[] = {"", "Welcome to Amazon S3.", "part \xe2\x82\xac data\n", "{\"k\": [1, 2]}"};
const Credentials kCredentialChoices[] = {
    {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""},
    {"S3RVER", "S3RVER", ""},
    {"minioadmin", "minio+secret/with=odd&chars", ""},
};
constexpr const char* kSessionToken = "FwoGZXIvYXdzEJr//////////wEaDHtoken+with/slashes==";

std::string random_key(CaseRandom& random) {
  std::string key;
  const size_t fragments = 1 + random.below(4);
  for (size_t i = 0; i < fragments; ++i) {
    if (i > 0) key += random.chance(3) ? "" : "/";
    key += random.pick(kKeyFragments);
  }
  return key;
}

std::chrono::system_clock::time_point random_time(CaseRandom& random) {
  using namespace std::chrono;
  constexpr int64_t kFixed[] = {1369353600, 1709251199, 2147483648, 946684799};  // 2013, leap day, 2038, 1999
  if (random.chance(2)) return system_clock::time_point(seconds(random.pick(kFixed)));
  return system_clock::time_point(seconds(1577836800 + static_cast<int64_t>(random.below(315360000))));
}

void add_host_and_path(CaseRandom& random, GeneratedCase& generated) {
  const std::string bucket = random.pick(kBuckets);
  const std::string key = random_key(random);
  if (random.chance(2)) {
    generated.request.host = bucket + ".s3." + generated.region + ".amazonaws.com";
    generated.request.path = "/" + key;
  } else {
    generated.request.host = random.pick(kPathStyleHosts);
    generated.request.path = "/" + bucket + (random.chance(8) ? "" : "/" + key);
  }
  generated.scheme = generated.request.host.find(':') == std::string::npos ? "https" : "http";
}

void add_query_and_headers(CaseRandom& random, SignableRequest& request) {
  const size_t query_count = random.chance(3) ? 0 : random.below(5);
  for (size_t i = 0; i < query_count; ++i) {
    request.query.emplace_back(random.pick(kQueryNames), random.pick(kQueryValues));
  }
  const size_t header_count = random.below(5);
  for (size_t i = 0; i < header_count; ++i) {
    const auto& [name, value] = random.pick(kHeaderChoices);
    request.headers.emplace_back(name, value);
  }
}

void add_payload(CaseRandom& random, GeneratedCase& generated) {
  const bool has_body = generated.request.method == "PUT" || generated.request.method == "POST";
  generated.body = has_body ? random.pick(kBodies) : "";
  generated.sign_payload = has_body ? !random.chance(4) : random.chance(3);
  if (!generated.sign_payload) {
    generated.request.payload_sha256 = std::string(kUnsignedPayload);
  } else if (generated.body.empty() && random.chance(2)) {
    generated.request.payload_sha256 = "";  // "no body" shorthand
  } else {
    generated.request.payload_sha256 = sha256_hex(generated.body);
  }
}

GeneratedCase generate_case(CaseRandom& random) {
  GeneratedCase generated;
  generated.request.method = random.pick(kMethods);
  generated.region = random.pick(kRegions);
  generated.credentials = random.pick(kCredentialChoices);
  if (random.chance(3)) generated.credentials.session_token = kSessionToken;
  generated.epoch_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                random_time(random).time_since_epoch()).count();
  add_host_and_path(random, generated);
  add_query_and_headers(random, generated.request);
  add_payload(random, generated);
  return generated;
}

json pairs_to_json(const std::vector<std::pair<std::string, std::string>>& pairs) {
  json array = json::array();
  for (const auto& [name, value] : pairs) array.push_back({name, value});
  return array;
}

// The request as the script reads it: the raw path and decoded query, never our encoding of them.
json case_to_json(size_t id, const GeneratedCase& generated) {
  return {{"id", id},
          {"method", generated.request.method},
          {"scheme", generated.scheme},
          {"host", generated.request.host},
          {"path", generated.request.path},
          {"query", pairs_to_json(generated.request.query)},
          {"headers", pairs_to_json(generated.request.headers)},
          {"body", generated.body},
          {"sign_payload", generated.sign_payload},
          {"access_key", generated.credentials.access_key_id},
          {"secret_key", generated.credentials.secret_access_key},
          {"token", generated.credentials.session_token},
          {"region", generated.region},
          {"epoch_seconds", generated.epoch_seconds}};
}

std::string header_value(const SignableRequest& request, std::string_view name) {
  for (const auto& [header_name, value] : request.headers) {
    if (header_name == name) return value;
  }
  return "";
}

// What our signer produced for one case, in the shape of the script's output.
struct OurSignature {
  json result;
  std::string canonical_request;
  std::string string_to_sign;
};

OurSignature sign_with_ringfetch(const GeneratedCase& generated) {
  const SigV4Signer signer(generated.credentials, generated.region);
  SignableRequest request = generated.request;
  const std::chrono::system_clock::time_point when{std::chrono::seconds(generated.epoch_seconds)};
  signer.sign(request, when);
  OurSignature ours;
  ours.canonical_request = signer.canonical_request(request);
  ours.string_to_sign = signer.string_to_sign(ours.canonical_request, SigV4Signer::format_amz_date(when));
  ours.result = {{"authorization", header_value(request, "Authorization")},
                 {"x-amz-date", header_value(request, "x-amz-date")},
                 {"x-amz-content-sha256", header_value(request, "x-amz-content-sha256")},
                 {"x-amz-security-token", header_value(request, "x-amz-security-token")}};
  return ours;
}

std::string describe_mismatch(const json& input, const OurSignature& ours, const json& botocore) {
  std::string text = "request: " + input.dump() + "\n";
  for (const char* field : {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}) {
    text += std::string(field) + "\n  ringfetch: " + ours.result[field].get<std::string>() +
            "\n  botocore:  " + botocore[field].get<std::string>() + "\n";
  }
  text += "ringfetch canonical request:\n" + ours.canonical_request + "\n---\n";
  text += "botocore canonical request:\n" + botocore["canonical_request"].get<std::string>() + "\n---\n";
  text += "ringfetch string to sign:\n" + ours.string_to_sign + "\n---\n";
  text += "botocore string to sign:\n" + botocore["string_to_sign"].get<std::string>() + "\n";
  return text;
}

bool has_repeated_name(const std::vector<std::pair<std::string, std::string>>& pairs, bool ignore_case) {
  std::vector<std::string> names;
  for (const auto& pair : pairs) {
    std::string name = pair.first;
    if (ignore_case) {
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    }
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) != names.end();
}

// How often each feature the comparison must cover occurs, so a change to the generator cannot quietly drop one.
std::map<std::string, size_t> count_features(const std::vector<GeneratedCase>& cases) {
  std::map<std::string, size_t> counts;
  for (const GeneratedCase& generated : cases) {
    const SignableRequest& request = generated.request;
    counts["method " + request.method]++;
    counts["session token"] += !generated.credentials.session_token.empty();
    counts["unsigned payload"] += !generated.sign_payload;
    counts["hashed non-empty body"] += generated.sign_payload && !generated.body.empty();
    counts["empty payload_sha256 shorthand"] += request.payload_sha256.empty();
    counts["repeated query name"] += has_repeated_name(request.query, false);
    counts["repeated header name"] += has_repeated_name(request.headers, true);
    counts["empty query value"] += std::any_of(request.query.begin(), request.query.end(),
                                               [](const auto& pair) { return pair.second.empty(); });
    counts["non-ASCII path"] += std::any_of(request.path.begin(), request.path.end(),
                                            [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    for (char special : std::string(" +~%=&")) {
      counts[std::string("path with '") + special + "'"] += request.path.find(special) != std::string::npos;
    }
    counts["nested path"] += std::count(request.path.begin(), request.path.end(), '/') >= 3;
  }
  return counts;
}

bool botocore_available() {
  return access(kPython, X_OK) == 0 &&
         std::system((std::string(kPython) + " -c 'import botocore' >/dev/null 2>&1").c_str()) == 0;
}

std::vector<json> read_json_lines(const std::filesystem::path& path) {
  std::vector<json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

class SigV4BotocoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!botocore_available()) GTEST_SKIP() << kPython << " cannot import botocore (apt install python3-botocore)";
    std::string pattern = (std::filesystem::temp_directory_path() / "ringfetch_sigv4_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
  }
  void TearDown() override {
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }

  std::filesystem::path directory_;
};

TEST_F(SigV4BotocoreTest, AuthorizationHeadersMatchBotocoreForGeneratedRequests) {
  CaseRandom random(kSeed);
  std::vector<GeneratedCase> cases;
  std::vector<json> inputs;
  const auto in_path = directory_ / "in.jsonl";
  const auto out_path = directory_ / "out.jsonl";
  {
    std::ofstream in(in_path);
    for (size_t id = 0; id < kRequestCount; ++id) {
      cases.push_back(generate_case(random));
      inputs.push_back(case_to_json(id, cases.back()));
      in << inputs.back().dump() << '\n';
    }
  }
  for (const auto& [feature, count] : count_features(cases)) EXPECT_GE(count, 10u) << feature;

  const std::string script = std::string(RINGFETCH_TEST_SOURCE_DIR) + "/tests/s3/botocore_sign.py";
  const std::string command =
      std::string(kPython) + " '" + script + "' '" + in_path.string() + "' '" + out_path.string() + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  const std::vector<json> outputs = read_json_lines(out_path);
  ASSERT_EQ(outputs.size(), cases.size());
  size_t mismatches = 0;
  for (size_t id = 0; id < cases.size(); ++id) {
    ASSERT_EQ(outputs[id]["id"], id);
    const OurSignature ours = sign_with_ringfetch(cases[id]);
    bool same = true;
    for (const auto& [field, value] : ours.result.items()) same = same && outputs[id][field] == value;
    if (!same && mismatches++ == 0) {
      ADD_FAILURE() << "first mismatch:\n" << describe_mismatch(inputs[id], ours, outputs[id]);
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << cases.size() << " requests";
}

}  // namespace
}  // namespace ringfetch::s3
