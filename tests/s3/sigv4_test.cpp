// Unit tests of SigV4Signer and its helpers against published vectors: the four S3 examples of AWS's "Signature
// Calculations for the Authorization Header" page (canonical request, string to sign and signature), three cases of
// AWS's generic SigV4 test suite (service "service", where no x-amz-content-sha256 is added), RFC 4231 for HMAC and
// FIPS 180-2 for SHA-256; then the S3 encoding and canonicalization rules one by one, re-signing, and threads.
#include "ringfetch/s3/sigv4.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace ringfetch::s3 {
namespace {

using std::chrono::sys_days;
using namespace std::chrono_literals;

constexpr char kDocAccessKey[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kDocSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kDocHost[] = "examplebucket.s3.amazonaws.com";
const std::chrono::system_clock::time_point kDocTime = sys_days{std::chrono::year{2013} / 5 / 24};

// Value of the last header named `name` (exact case), or "<absent>".
std::string header(const SignableRequest& request, std::string_view name) {
  for (auto it = request.headers.rbegin(); it != request.headers.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return "<absent>";
}

size_t header_count(const SignableRequest& request, std::string_view name) {
  return std::count_if(request.headers.begin(), request.headers.end(),
                       [&](const auto& h) { return h.first == name; });
}

std::string signature_of(const SignableRequest& request) {
  const std::string authorization = header(request, "Authorization");
  const size_t at = authorization.find("Signature=");
  return at == std::string::npos ? "<none>" : authorization.substr(at + 10);
}

SigV4Signer doc_signer() { return SigV4Signer({kDocAccessKey, kDocSecret, ""}, "us-east-1"); }

SignableRequest doc_request(std::string method, std::string path) {
  SignableRequest request;
  request.method = std::move(method);
  request.host = kDocHost;
  request.path = std::move(path);
  request.payload_sha256 = std::string(kEmptyPayloadSha256);
  return request;
}

// After sign(), canonical_request() and string_to_sign() reproduce what sign() signed.
void expect_signed_as_documented(const SigV4Signer& signer, const SignableRequest& request,
                                 const std::string& canonical, const std::string& canonical_hash,
                                 const std::string& signed_headers, const std::string& signature) {
  EXPECT_EQ(signer.canonical_request(request), canonical);
  const std::string string_to_sign = signer.string_to_sign(canonical, "20130524T000000Z");
  EXPECT_EQ(string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n" + canonical_hash);
  EXPECT_EQ(header(request, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=" +
                signed_headers + ", Signature=" + signature);
}

TEST(SigV4AwsS3Examples, GetObjectWithRange) {
  const SigV4Signer signer = doc_signer();
  SignableRequest request = doc_request("GET", "/test.txt");
  request.headers = {{"Range", "bytes=0-9"}};
  signer.sign(request, kDocTime);
  EXPECT_EQ(header(request, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(header(request, "x-amz-content-sha256"), kEmptyPayloadSha256);
  expect_signed_as_documented(
      signer, request,
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972", "host;range;x-amz-content-sha256;x-amz-date",
      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4AwsS3Examples, PutObjectWithDollarInKeyAndStorageClass) {
  const SigV4Signer signer = doc_signer();
  SignableRequest request = doc_request("PUT", "test$file.text");  // the page's request line has no leading '/'
  request.headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  request.payload_sha256 = sha256_hex("Welcome to Amazon S3.");
  ASSERT_EQ(request.payload_sha256, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  signer.sign(request, kDocTime);
  expect_signed_as_documented(
      signer, request,
      "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
      "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
      "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4AwsS3Examples, GetBucketLifecycleSubresource) {
  const SigV4Signer signer = doc_signer();
  SignableRequest request = doc_request("GET", "/");
  request.query = {{"lifecycle", ""}};
  signer.sign(request, kDocTime);
  expect_signed_as_documented(
      signer, request,
      "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca", "host;x-amz-content-sha256;x-amz-date",
      "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4AwsS3Examples, ListObjectsQueryIsSorted) {
  const SigV4Signer signer = doc_signer();
  SignableRequest request = doc_request("GET", "");  // empty path means "/"
  request.query = {{"prefix", "J"}, {"max-keys", "2"}};  // given out of order on purpose
  signer.sign(request, kDocTime);
  expect_signed_as_documented(
      signer, request,
      "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
      "x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7", "host;x-amz-content-sha256;x-amz-date",
      "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  EXPECT_EQ(request_target(request), "/?max-keys=2&prefix=J");
}

// AWS's generic SigV4 test suite: service "service", 20150830T123600Z, no x-amz-content-sha256 header.
class SigV4AwsTestSuite : public ::testing::Test {
 protected:
  SigV4Signer signer_{Credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""}, "us-east-1",
                      "service"};
  std::chrono::system_clock::time_point time_ = sys_days{std::chrono::year{2015} / 8 / 30} + 12h + 36min;

  SignableRequest vanilla(std::string method) {
    SignableRequest request;
    request.method = std::move(method);
    request.host = "example.amazonaws.com";
    request.path = "/";
    request.payload_sha256 = "";  // no body
    return request;
  }
};

TEST_F(SigV4AwsTestSuite, GetVanilla) {
  SignableRequest request = vanilla("GET");
  signer_.sign(request, time_);
  EXPECT_EQ(header(request, "x-amz-content-sha256"), "<absent>");
  EXPECT_EQ(header(request, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_F(SigV4AwsTestSuite, GetVanillaQueryOrderKeyCase) {
  SignableRequest request = vanilla("GET");
  request.query = {{"Param2", "value2"}, {"Param1", "value1"}};
  signer_.sign(request, time_);
  EXPECT_EQ(signature_of(request), "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST_F(SigV4AwsTestSuite, PostVanilla) {
  SignableRequest request = vanilla("POST");
  signer_.sign(request, time_);
  EXPECT_EQ(signature_of(request), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4Crypto, Sha256OfFips180Vectors) {
  EXPECT_EQ(sha256_hex(""), kEmptyPayloadSha256);
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string text = "abc";
  EXPECT_EQ(sha256_hex(std::as_bytes(std::span(text))), sha256_hex("abc"));
}

TEST(SigV4Crypto, HmacSha256OfRfc4231Case2) {
  const std::string key = "Jefe";
  const Sha256Digest mac = hmac_sha256(std::span(reinterpret_cast<const unsigned char*>(key.data()), key.size()),
                                       "what do ya want for nothing?");
  const Sha256Digest expected = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                                 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                                 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  EXPECT_EQ(mac, expected);
}

TEST(SigV4UriEncode, KeepsUnreservedAndEncodesEverythingElseUpperCase) {
  EXPECT_EQ(uri_encode("AZaz09-_.~", true), "AZaz09-_.~");
  EXPECT_EQ(uri_encode("a b+c=d&e%f*g!h'(),;:@$", true),
            "a%20b%2Bc%3Dd%26e%25f%2Ag%21h%27%28%29%2C%3B%3A%40%24");
  EXPECT_EQ(uri_encode("\xc3\xa9\xe2\x82\xac", true), "%C3%A9%E2%82%AC");  // "é€" in UTF-8, byte by byte
  EXPECT_EQ(uri_encode(std::string_view("\0\x7f", 2), true), "%00%7F");
}

TEST(SigV4UriEncode, SlashKeptOnlyInPaths) {
  EXPECT_EQ(uri_encode("/a b/c//d/", false), "/a%20b/c//d/");
  EXPECT_EQ(uri_encode("/a b/c", true), "%2Fa%20b%2Fc");
}

TEST(SigV4UriEncode, PathIsEncodedOnceAndNeverNormalized) {
  const SigV4Signer signer = doc_signer();
  SignableRequest request = doc_request("GET", "/bucket/my key+x/../%41/./~");
  const std::string canonical = signer.canonical_request(request);
  EXPECT_EQ(canonical.substr(0, canonical.find('\n', 4)), "GET\n/bucket/my%20key%2Bx/../%2541/./~");
  EXPECT_EQ(request_target(request), "/bucket/my%20key%2Bx/../%2541/./~");
}

TEST(SigV4Canonical, QuerySortedByEncodedNameThenValue) {
  const SigV4Signer signer = doc_signer();
  SignableRequest request = doc_request("GET", "/");
  // 'a' sorts before 'a-b' as a name, although "a-b=" < "a=" as whole strings; '%' sorts before letters.
  request.query = {{"a-b", "1"}, {"a", "z"}, {"a", "y y"}, {"a", ""}, {"b/c", "d/e"}, {"Z", "1"}, {" ", "="}};
  EXPECT_EQ(request_target(request), "/?%20=%3D&Z=1&a=&a=y%20y&a=z&a-b=1&b%2Fc=d%2Fe");
  EXPECT_NE(signer.canonical_request(request).find("\n%20=%3D&Z=1&a=&a=y%20y&a=z&a-b=1&b%2Fc=d%2Fe\n"),
            std::string::npos);
}

TEST(SigV4Canonical, HeadersLowerCasedTrimmedCollapsedAndMerged) {
  const SigV4Signer signer = doc_signer();
  SignableRequest request = doc_request("GET", "/k");
  request.headers = {{"X-Meta-B", "  two   words \t here  "},
                     {"x-meta-a", "first"},
                     {"User-Agent", "ringfetch/1"},  // sent, not signed
                     {"X-META-A", "second"},
                     {"x-empty", ""}};
  const std::string canonical = signer.canonical_request(request);
  EXPECT_NE(canonical.find("\nhost:examplebucket.s3.amazonaws.com\nx-empty:\nx-meta-a:first,second\n"
                           "x-meta-b:two words here\n\nhost;x-empty;x-meta-a;x-meta-b\n"),
            std::string::npos)
      << canonical;
}

TEST(SigV4Sign, ResigningReplacesSignerHeadersInsteadOfDuplicating) {
  const SigV4Signer signer({kDocAccessKey, kDocSecret, "token-1"}, "us-east-1");
  SignableRequest request = doc_request("GET", "/test.txt");
  request.headers = {{"Range", "bytes=0-9"}, {"X-Amz-Date", "19990101T000000Z"}, {"authorization", "stale"}};
  signer.sign(request, kDocTime);
  const std::string first = header(request, "Authorization");
  signer.sign(request, kDocTime + 24h);
  for (const char* name : {"x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "Authorization"}) {
    EXPECT_EQ(header_count(request, name), 1u) << name;
  }
  EXPECT_EQ(header_count(request, "X-Amz-Date") + header_count(request, "authorization"), 0u);
  EXPECT_EQ(header(request, "x-amz-date"), "20130525T000000Z");
  EXPECT_NE(header(request, "Authorization"), first);
  EXPECT_EQ(request.headers.size(), 5u);  // Range + the four the signer owns
}

TEST(SigV4Sign, SessionTokenIsSentAndSigned) {
  const SigV4Signer signer({kDocAccessKey, kDocSecret, "FQoGZXIvYXdzE//token+="}, "eu-west-1");
  SignableRequest request = doc_request("HEAD", "/k");
  request.payload_sha256 = std::string(kUnsignedPayload);
  signer.sign(request, kDocTime);
  EXPECT_EQ(header(request, "x-amz-security-token"), "FQoGZXIvYXdzE//token+=");
  EXPECT_EQ(header(request, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  EXPECT_NE(header(request, "Authorization").find("/eu-west-1/s3/aws4_request, "
                                                  "SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                                                  "x-amz-security-token, "),
            std::string::npos);
}

TEST(SigV4Sign, DefaultPayloadIsUnsigned) {
  SignableRequest request;
  EXPECT_EQ(request.payload_sha256, kUnsignedPayload);
}

TEST(SigV4Sign, AnonymousCredentialsLeaveTheRequestAlone) {
  const SigV4Signer signer(Credentials{}, "us-east-1");
  SignableRequest request = doc_request("GET", "/public.bin");
  request.headers = {{"Range", "bytes=0-9"}};
  signer.sign(request, kDocTime);
  EXPECT_TRUE(signer.anonymous());
  EXPECT_EQ(request.headers.size(), 1u);
}

TEST(SigV4Sign, FormatsAmzDateInUtcTruncatingFractions) {
  using std::chrono::year;
  EXPECT_EQ(SigV4Signer::format_amz_date(kDocTime), "20130524T000000Z");
  EXPECT_EQ(SigV4Signer::format_amz_date(sys_days{year{2024} / 2 / 29} + 23h + 59min + 59s + 999ms),
            "20240229T235959Z");
  EXPECT_EQ(SigV4Signer::format_amz_date(sys_days{year{1970} / 1 / 1} + 1s), "19700101T000001Z");
}

TEST(SigV4Sign, SigningKeyCacheFollowsTheDate) {
  const SigV4Signer reused = doc_signer();
  for (auto day : {0h, 24h, 0h, 48h}) {
    SignableRequest a = doc_request("GET", "/test.txt");
    SignableRequest b = a;
    reused.sign(a, kDocTime + day);
    doc_signer().sign(b, kDocTime + day);  // fresh signer, empty cache
    EXPECT_EQ(header(a, "Authorization"), header(b, "Authorization"));
  }
}

TEST(SigV4Sign, ConcurrentSigningAcrossDaysIsConsistent) {
  const SigV4Signer signer = doc_signer();
  std::vector<std::string> expected;
  for (int day = 0; day < 4; ++day) {
    SignableRequest request = doc_request("GET", "/test.txt");
    doc_signer().sign(request, kDocTime + day * 24h);
    expected.push_back(header(request, "Authorization"));
  }
  std::vector<std::thread> threads;
  std::atomic<int> mismatches = 0;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 400; ++i) {
        const int day = (t + i) % 4;
        SignableRequest request = doc_request("GET", "/test.txt");
        signer.sign(request, kDocTime + day * 24h);
        if (header(request, "Authorization") != expected[day]) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(SigV4Credentials, RedactedAndPrintedFormsNeverShowTheSecret) {
  const Credentials credentials{kDocAccessKey, kDocSecret, "session-token-value"};
  EXPECT_EQ(credentials.redacted(), "access key AKIAIOSFODNN7EXAMPLE (secret hidden, with session token)");
  const std::string printed = ::testing::PrintToString(credentials);
  EXPECT_EQ(printed.find(kDocSecret), std::string::npos);
  EXPECT_EQ(printed.find("session-token-value"), std::string::npos);
  EXPECT_NE(printed.find(kDocAccessKey), std::string::npos);
  EXPECT_EQ(Credentials{}.redacted(), "anonymous");
  EXPECT_TRUE(Credentials{}.anonymous());
}

}  // namespace
}  // namespace ringfetch::s3
