// Tests for parse_url, Url::host_header and join_path: every accepted form, every rejection with the reason its
// message must give, and the rule that a failed parse leaves the output untouched.
#include "engine/url.hpp"

#include <gtest/gtest.h>

namespace ringfetch::engine {
namespace {

Url parse_ok(std::string_view text) {
  Url url;
  const Status status = parse_url(text, &url);
  EXPECT_TRUE(status.ok()) << text << ": " << status.message();
  return url;
}

// Expects an error whose message quotes the URL and contains `reason`.
void expect_error(std::string_view text, std::string_view reason) {
  Url url;
  const Status status = parse_url(text, &url);
  ASSERT_FALSE(status.ok()) << text;
  EXPECT_EQ(status.kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(status.message().find("bad URL '"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find(reason), std::string::npos) << text << " -> " << status.message();
}

TEST(UrlTest, FileUrl) {
  const Url url = parse_ok("file:///data/set");
  EXPECT_EQ(url.scheme, "file");
  EXPECT_EQ(url.host, "");
  EXPECT_EQ(url.port, 0);
  EXPECT_EQ(url.path, "/data/set");
  EXPECT_EQ(url.query, "");
  EXPECT_FALSE(url.ipv6_literal);
}

TEST(UrlTest, FileUrlKeepsPathAsGiven) {
  EXPECT_EQ(parse_ok("file:///").path, "/");
  EXPECT_EQ(parse_ok("file:///dir/").path, "/dir/");
  EXPECT_EQ(parse_ok("file:///a%20b/x").path, "/a%20b/x");
  EXPECT_EQ(parse_ok("file:///d\xc3\xa9j\xc3\xa0").path, "/d\xc3\xa9j\xc3\xa0");  // UTF-8 file names
}

TEST(UrlTest, FileUrlAcceptsLocalhost) {
  EXPECT_EQ(parse_ok("file://localhost/tmp/x").path, "/tmp/x");
  EXPECT_EQ(parse_ok("file://LocalHost/tmp/x").host, "");
}

TEST(UrlTest, DirectUrl) {
  const Url url = parse_ok("direct:///mnt/nvme/ckpt");
  EXPECT_EQ(url.scheme, "direct");
  EXPECT_EQ(url.path, "/mnt/nvme/ckpt");
  EXPECT_EQ(url.port, 0);
}

TEST(UrlTest, SchemeIsCaseInsensitive) {
  EXPECT_EQ(parse_ok("FILE:///x").scheme, "file");
  EXPECT_EQ(parse_ok("Direct:///x").scheme, "direct");
  EXPECT_EQ(parse_ok("HTTP://h/").scheme, "http");
  EXPECT_EQ(parse_ok("HttpS://h/").scheme, "https");
  EXPECT_EQ(parse_ok("S3://bucket/x").scheme, "s3");
}

TEST(UrlTest, FileUrlErrors) {
  expect_error("file:/abs/path", "expected file:///absolute/path");
  expect_error("file:relative", "relative file path; expected file:///absolute/path");
  expect_error("file:", "relative file path");
  expect_error("direct:/abs", "expected direct:///absolute/path");
  expect_error("file://host/x", "takes no host ('host')");
  expect_error("file://relative/path", "takes no host");
  expect_error("direct://server/x", "takes no host");
  expect_error("file://", "missing path");
  expect_error("file://localhost", "missing path");
  expect_error("file:///x?y=1", "queries are not supported in file URLs");
  expect_error("direct:///x?", "queries are not supported in direct URLs");
}

TEST(UrlTest, HttpDefaults) {
  const Url url = parse_ok("http://example.com");
  EXPECT_EQ(url.scheme, "http");
  EXPECT_EQ(url.host, "example.com");
  EXPECT_EQ(url.port, 80);
  EXPECT_EQ(url.path, "/");
  EXPECT_EQ(url.query, "");
  EXPECT_EQ(parse_ok("https://example.com").port, 443);
  EXPECT_EQ(parse_ok("http://example.com/").path, "/");
}

TEST(UrlTest, HttpPortPathQuery) {
  const Url url = parse_ok("https://store.internal:8443/ckpt/step-100?versionId=3&x=%2F");
  EXPECT_EQ(url.host, "store.internal");
  EXPECT_EQ(url.port, 8443);
  EXPECT_EQ(url.path, "/ckpt/step-100");
  EXPECT_EQ(url.query, "versionId=3&x=%2F");
}

TEST(UrlTest, HttpQueryWithoutPath) {
  const Url url = parse_ok("http://h?list-type=2");
  EXPECT_EQ(url.path, "/");
  EXPECT_EQ(url.query, "list-type=2");
  EXPECT_EQ(parse_ok("http://h/x?").query, "");
}

TEST(UrlTest, HttpHostIsLowerCasedAndMayHoldUnderscoreAndDigits) {
  EXPECT_EQ(parse_ok("http://Example.COM/X").host, "example.com");
  EXPECT_EQ(parse_ok("http://Example.COM/X").path, "/X");  // paths are case-sensitive
  EXPECT_EQ(parse_ok("http://my_host-1/").host, "my_host-1");
  EXPECT_EQ(parse_ok("http://127.0.0.1:9000/").host, "127.0.0.1");
}

TEST(UrlTest, HttpPortBounds) {
  EXPECT_EQ(parse_ok("http://h:1/").port, 1);
  EXPECT_EQ(parse_ok("http://h:65535/").port, 65535);
  EXPECT_EQ(parse_ok("http://h:080/").port, 80);
  expect_error("http://h:0/", "bad port '0' (expected 1-65535)");
  expect_error("http://h:65536/", "bad port '65536'");
  expect_error("http://h:99999999999999999999/", "bad port");
  expect_error("http://h:/", "bad port ''");
  expect_error("http://h:8a/", "bad port '8a'");
  expect_error("http://h:-1/", "bad port '-1'");
  expect_error("http://h:+80/", "bad port '+80'");
}

TEST(UrlTest, Ipv6Literal) {
  const Url url = parse_ok("http://[::1]:8080/x");
  EXPECT_EQ(url.host, "::1");
  EXPECT_TRUE(url.ipv6_literal);
  EXPECT_EQ(url.port, 8080);
  EXPECT_EQ(url.path, "/x");
  EXPECT_EQ(parse_ok("https://[2001:DB8::1]").host, "2001:db8::1");
  EXPECT_EQ(parse_ok("https://[2001:db8::1]").port, 443);
  EXPECT_EQ(parse_ok("http://[::ffff:192.0.2.1]/").host, "::ffff:192.0.2.1");
}

TEST(UrlTest, Ipv6Errors) {
  expect_error("http://[::1/x", "unterminated IPv6 bracket");
  expect_error("http://[::1", "unterminated IPv6 bracket");
  expect_error("http://[::1]x/", "unexpected text after IPv6 literal");
  expect_error("http://[]/", "invalid IPv6 literal");
  expect_error("http://[example.com]/", "invalid IPv6 literal");
  expect_error("http://[fe80::1%25eth0]/", "invalid IPv6 literal");
  // Right characters, not addresses: refused here rather than later as "cannot resolve".
  expect_error("http://[:]/", "invalid IPv6 literal");
  expect_error("http://[a:]/", "invalid IPv6 literal");
  expect_error("http://[1:2:3:4:5:6:7:8:9]/", "invalid IPv6 literal");
  expect_error("http://[::1.2.3]/", "invalid IPv6 literal");
  // A comma-separated list of endpoints is not one URL; the message says so instead of blaming IPv6.
  expect_error("http://127.0.0.1:9000,http://127.0.0.1:9001", "',' in the host");
  expect_error("http://[::1]:/", "bad port ''");
  expect_error("http://[::1]:70000/", "bad port '70000'");
  expect_error("http://::1/", "IPv6 literals must be written in brackets");
  expect_error("http://::1:8080/", "IPv6 literals must be written in brackets");
}

TEST(UrlTest, HttpErrors) {
  expect_error("http:///path", "missing host");
  expect_error("http://", "missing host");
  expect_error("http://:80/", "missing host");
  expect_error("http:example.com", "expected '//' after 'http:'");
  expect_error("https:/example.com", "expected '//' after 'https:'");
  expect_error("http://ex!ample/", "invalid character in host 'ex!ample'");
  expect_error("http://h/a\xc3\xa9", "non-ASCII characters must be percent-encoded");
  expect_error("http://h/a?q=\xc3\xa9", "non-ASCII characters must be percent-encoded");
  expect_error("http://h/a%2", "bad percent-encoding");
  expect_error("http://h/a%zz", "bad percent-encoding");
  expect_error("http://h/a?x=%", "bad percent-encoding");
}

TEST(UrlTest, FragmentIsRejectedForEveryScheme) {
  expect_error("http://h/x#frag", "fragments ('#...') are not supported");
  expect_error("https://h/#", "fragments");
  expect_error("file:///x#y", "fragments");
  expect_error("s3://bucket/x#y", "fragments");
}

TEST(UrlTest, UserinfoIsRejectedAndRedacted) {
  Url url;
  const Status status = parse_url("http://alice:s3cret@host/x", &url);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("userinfo (user:password@) is not supported"), std::string::npos);
  EXPECT_EQ(status.message().find("s3cret"), std::string::npos) << status.message();
  EXPECT_EQ(status.message().find("alice"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("http://***@host/x"), std::string::npos) << status.message();
  const Status nested = parse_url("https://a@b:pw@host/", &url);
  EXPECT_EQ(nested.message().find("pw"), std::string::npos) << nested.message();
  expect_error("s3://key@bucket/x", "userinfo");
  expect_error("file://user@/x", "userinfo");
}

TEST(UrlTest, AtSignInPathIsNotUserinfo) {
  EXPECT_EQ(parse_ok("http://h/a@b").path, "/a@b");
  EXPECT_EQ(parse_ok("s3://bucket/a@b").path, "a@b");
}

TEST(UrlTest, SchemeErrors) {
  expect_error("", "empty URL");
  expect_error("/abs/path", "missing scheme");
  expect_error("bucket/key", "missing scheme");
  expect_error("://x", "missing scheme");
  expect_error("ftp://h/x", "unknown scheme 'ftp'");
  expect_error("gs://bucket/x", "unknown scheme 'gs' (expected file://, direct://, http://, https:// or s3://)");
  expect_error("localhost:8080/x", "unknown scheme 'localhost'");
}

TEST(UrlTest, WhitespaceAndControlCharactersAreRejected) {
  expect_error("http://h/a b", "contains whitespace or control characters");
  expect_error(" http://h/", "whitespace");
  expect_error("http://h/\t", "whitespace");
  expect_error("file:///x\n", "whitespace");
  expect_error(std::string_view("file:///x\0y", 11), "control characters");
  expect_error("s3://bucket/x\x7f", "control characters");
  // Control bytes are escaped in the quoted URL.
  Url url;
  const Status status = parse_url("file:///x\n", &url);
  EXPECT_NE(status.message().find("'file:///x\\x0a'"), std::string::npos) << status.message();
}

TEST(UrlTest, LongUrlIsCutInMessage) {
  const std::string long_url = "ftp://h/" + std::string(1000, 'a');
  Url url;
  const Status status = parse_url(long_url, &url);
  ASSERT_FALSE(status.ok());
  EXPECT_LT(status.message().size(), 400u);
  EXPECT_NE(status.message().find("...'"), std::string::npos);
}

TEST(UrlTest, S3Url) {
  const Url url = parse_ok("s3://my-bucket/ckpt/step-100/");
  EXPECT_EQ(url.scheme, "s3");
  EXPECT_EQ(url.host, "my-bucket");
  EXPECT_EQ(url.port, 0);
  EXPECT_EQ(url.path, "ckpt/step-100/");
  EXPECT_EQ(url.query, "");
  EXPECT_EQ(parse_ok("s3://bucket").path, "");
  EXPECT_EQ(parse_ok("s3://bucket/").path, "");
  EXPECT_EQ(parse_ok("s3://bucket/key").path, "key");
  EXPECT_EQ(parse_ok("s3://bucket//key").path, "/key");  // only the separator is dropped; keys may start with '/'
  EXPECT_EQ(parse_ok("s3://a.b-c.123/x").host, "a.b-c.123");
  EXPECT_EQ(parse_ok("s3://bucket/d\xc3\xa9j\xc3\xa0/%41").path, "d\xc3\xa9j\xc3\xa0/%41");  // kept as given
}

TEST(UrlTest, S3BucketRules) {
  EXPECT_EQ(parse_ok("s3://abc/").host, "abc");
  EXPECT_EQ(parse_ok("s3://" + std::string(63, 'a') + "/").host, std::string(63, 'a'));
  expect_error("s3:///key", "empty bucket name");
  expect_error("s3://", "empty bucket name");
  expect_error("s3://ab/", "invalid bucket name 'ab'");
  expect_error("s3://" + std::string(64, 'a') + "/", "invalid bucket name");
  expect_error("s3://My-Bucket/", "invalid bucket name 'My-Bucket' (3-63 characters");
  expect_error("s3://my_bucket/", "invalid bucket name");
  expect_error("s3://-bucket/", "invalid bucket name");
  expect_error("s3://bucket./", "invalid bucket name");
  expect_error("s3://bucket:9000/", "invalid bucket name");
  expect_error("s3:bucket/key", "expected '//' after 's3:'");
  expect_error("s3://bucket/x?versionId=1", "queries are not supported in s3 URLs");
}

TEST(UrlTest, FailedParseLeavesOutputUnchanged) {
  Url url = parse_ok("http://keep/me");
  Url before = url;
  EXPECT_FALSE(parse_url("http://h:0/", &url).ok());
  EXPECT_EQ(url.host, before.host);
  EXPECT_EQ(url.path, before.path);
  EXPECT_EQ(url.port, before.port);
}

TEST(UrlTest, ParseOverwritesPreviousValue) {
  Url url = parse_ok("https://[::1]:8443/x?y");
  ASSERT_TRUE(parse_url("file:///z", &url).ok());
  EXPECT_EQ(url.scheme, "file");
  EXPECT_EQ(url.host, "");
  EXPECT_EQ(url.port, 0);
  EXPECT_EQ(url.query, "");
  EXPECT_FALSE(url.ipv6_literal);
}

TEST(UrlTest, HostHeader) {
  EXPECT_EQ(parse_ok("http://h/").host_header(), "h");
  EXPECT_EQ(parse_ok("http://h:80/").host_header(), "h");
  EXPECT_EQ(parse_ok("http://h:443/").host_header(), "h:443");
  EXPECT_EQ(parse_ok("https://h/").host_header(), "h");
  EXPECT_EQ(parse_ok("https://h:443/").host_header(), "h");
  EXPECT_EQ(parse_ok("https://h:80/").host_header(), "h:80");
  EXPECT_EQ(parse_ok("http://127.0.0.1:9000/").host_header(), "127.0.0.1:9000");
  EXPECT_EQ(parse_ok("http://[::1]:8080/").host_header(), "[::1]:8080");
  EXPECT_EQ(parse_ok("https://[::1]/").host_header(), "[::1]");
  EXPECT_EQ(parse_ok("s3://bucket/x").host_header(), "bucket");
  EXPECT_EQ(parse_ok("file:///x").host_header(), "");
}

TEST(UrlTest, JoinPath) {
  EXPECT_EQ(join_path("/a/", "b"), "/a/b");
  EXPECT_EQ(join_path("/a", "b"), "/a/b");
  EXPECT_EQ(join_path("/a", "/b"), "/a/b");
  EXPECT_EQ(join_path("/a//", "//b"), "/a/b");
  EXPECT_EQ(join_path("", "b"), "b");
  EXPECT_EQ(join_path("", "/b"), "b");
  EXPECT_EQ(join_path("/", "b"), "/b");
  EXPECT_EQ(join_path("/", "/b"), "/b");
  EXPECT_EQ(join_path("prefix", "key/x"), "prefix/key/x");
  EXPECT_EQ(join_path("prefix/", "dir/"), "prefix/dir/");
  EXPECT_EQ(join_path("/a/", ""), "/a/");
  EXPECT_EQ(join_path("", ""), "");
}

}  // namespace
}  // namespace ringfetch::engine
