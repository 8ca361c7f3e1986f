// Tests for write_request_head: the exact bytes of each request shape, field order, and every rejection (header
// injection in particular) with its message substring and the guarantee that a rejected request writes nothing.
#include "http/request_writer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace ringfetch::http {
namespace {

using namespace std::string_literals;

RequestHead get(std::string path = "/", std::string host = "example.com") {
  RequestHead request;
  request.path = std::move(path);
  request.host = std::move(host);
  return request;
}

std::string write_ok(const RequestHead& request) {
  std::string out;
  const Status status = write_request_head(request, &out);
  EXPECT_TRUE(status.ok()) << status.message();
  return out;
}

// Expects rejection with kInvalidArgument, a message containing `what`, and the buffer untouched.
void expect_error(const RequestHead& request, std::string_view what) {
  std::string out = "existing";
  const Status status = write_request_head(request, &out);
  ASSERT_FALSE(status.ok()) << "accepted: " << out;
  EXPECT_EQ(status.kind(), ErrorKind::kInvalidArgument);
  EXPECT_NE(status.message().find("invalid HTTP request: "), std::string::npos) << status.message();
  EXPECT_NE(status.message().find(what), std::string::npos) << status.message() << "\nexpected: " << what;
  EXPECT_EQ(out, "existing");
}

RequestHead with_field(std::string name, std::string value) {
  RequestHead request = get();
  request.fields.push_back({std::move(name), std::move(value)});
  return request;
}

// ---------------------------------------------------------------- shapes

TEST(RequestWriterTest, MinimalGet) {
  EXPECT_EQ(write_ok(get("/a/b")), "GET /a/b HTTP/1.1\r\nHost: example.com\r\n\r\n");
}

TEST(RequestWriterTest, DefaultsAreGetOfRoot) {
  RequestHead request;
  request.host = "h";
  EXPECT_EQ(write_ok(request), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST(RequestWriterTest, Query) {
  RequestHead request = get("/bucket");
  request.query = "list-type=2&prefix=a%2Fb&continuation-token=x?y";
  EXPECT_EQ(write_ok(request),
            "GET /bucket?list-type=2&prefix=a%2Fb&continuation-token=x?y HTTP/1.1\r\nHost: example.com\r\n\r\n");
}

TEST(RequestWriterTest, RangeIsInclusive) {
  RequestHead request = get("/obj", "[::1]:8080");
  request.range = ByteRange{8388608, 16777215};
  EXPECT_EQ(write_ok(request), "GET /obj HTTP/1.1\r\nHost: [::1]:8080\r\nRange: bytes=8388608-16777215\r\n\r\n");
  request.range = ByteRange{0, 0};
  EXPECT_NE(write_ok(request).find("Range: bytes=0-0\r\n"), std::string::npos);
  request.range = ByteRange{UINT64_MAX, UINT64_MAX};
  EXPECT_NE(write_ok(request).find("Range: bytes=18446744073709551615-18446744073709551615\r\n"), std::string::npos);
}

TEST(RequestWriterTest, FormatRange) {
  EXPECT_EQ(format_range(ByteRange{0, 99}), "bytes=0-99");
  EXPECT_EQ(format_range(ByteRange{5, 5}), "bytes=5-5");
  EXPECT_EQ(format_range(ByteRange{0, UINT64_MAX}), "bytes=0-18446744073709551615");
}

TEST(RequestWriterTest, PutWithContentLength) {
  RequestHead request = get("/bucket/key");
  request.method = "PUT";
  request.content_length = 1048576;
  EXPECT_EQ(write_ok(request), "PUT /bucket/key HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1048576\r\n\r\n");
  request.content_length = 0;
  EXPECT_NE(write_ok(request).find("Content-Length: 0\r\n"), std::string::npos);
}

TEST(RequestWriterTest, NoContentLengthUnlessSet) {
  EXPECT_EQ(write_ok(get()).find("Content-Length"), std::string::npos);
}

TEST(RequestWriterTest, KeepAliveByDefaultCloseWhenAsked) {
  EXPECT_EQ(write_ok(get()).find("Connection"), std::string::npos);
  RequestHead request = get();
  request.close_connection = true;
  EXPECT_EQ(write_ok(request), "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
}

TEST(RequestWriterTest, FieldsKeepTheirOrderAndComeAfterHost) {
  RequestHead request = get("/k");
  request.method = "POST";
  request.fields = {{"x-amz-date", "20240312T100000Z"},
                    {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"},
                    {"Authorization", "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=ff"},
                    {"If-Match", "\"etag\""},
                    {"X-Empty", ""},
                    {"X-Tab", "a\tb"}};
  request.range = ByteRange{1, 2};
  request.content_length = 3;
  request.close_connection = true;
  EXPECT_EQ(write_ok(request),
            "POST /k HTTP/1.1\r\n"
            "Host: example.com\r\n"
            "x-amz-date: 20240312T100000Z\r\n"
            "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"
            "Authorization: AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=ff\r\n"
            "If-Match: \"etag\"\r\n"
            "X-Empty: \r\n"
            "X-Tab: a\tb\r\n"
            "Range: bytes=1-2\r\n"
            "Content-Length: 3\r\n"
            "Connection: close\r\n"
            "\r\n");
}

TEST(RequestWriterTest, AppendsToTheBuffer) {
  std::string out = "previous request bytes|";
  ASSERT_TRUE(write_request_head(get("/x"), &out).ok());
  EXPECT_EQ(out, "previous request bytes|GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n");
}

TEST(RequestWriterTest, ObsTextValueIsAllowed) {
  EXPECT_NE(write_ok(with_field("X-Meta", "caf\xc3\xa9")).find("X-Meta: caf\xc3\xa9\r\n"), std::string::npos);
}

TEST(RequestWriterTest, TokenMethodsAndNames) {
  RequestHead request = with_field("x-!#$%&'*+-.^_`|~09", "v");
  request.method = "DELETE";
  EXPECT_EQ(write_ok(request).rfind("DELETE / HTTP/1.1\r\n", 0), 0u);
}

// The head parses as exactly one request line + fields + blank line: the same CRLF structure a server sees.
TEST(RequestWriterTest, OutputHasOneCrlfPerLine) {
  RequestHead request = get("/a");
  request.fields = {{"A", "1"}, {"B", "2"}};
  request.range = ByteRange{0, 9};
  const std::string out = write_ok(request);
  size_t lines = 0;
  for (size_t at = out.find("\r\n"); at != std::string::npos; at = out.find("\r\n", at + 2)) ++lines;
  EXPECT_EQ(lines, 6u);  // request line, Host, A, B, Range, blank
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 6);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\r'), 6);
}

// ---------------------------------------------------------------- rejections

TEST(RequestWriterTest, HeaderInjectionInValueIsRejected) {
  expect_error(with_field("X-A", "1\r\nX-Injected: yes"), "value of field 'X-A' contains CR or LF");
  expect_error(with_field("X-A", "1\nX-Injected: yes"), "contains CR or LF");
  expect_error(with_field("X-A", "1\r"), "contains CR or LF");
  expect_error(with_field("X-A", "\r\n\r\nGET /evil HTTP/1.1"), "contains CR or LF");
}

TEST(RequestWriterTest, ControlCharactersInValueAreRejected) {
  expect_error(with_field("X-A", "a\0b"s), "value of field 'X-A' contains a control character");
  expect_error(with_field("X-A", "a\x01"), "contains a control character");
  expect_error(with_field("X-A", "a\x7f"), "contains a control character");
}

TEST(RequestWriterTest, BadFieldNamesAreRejected) {
  expect_error(with_field("X-A\r\nX-B", "v"), "field name contains CR or LF");
  expect_error(with_field("X\n", "v"), "field name contains CR or LF");
  expect_error(with_field("", "v"), "field name '' is not a token");
  expect_error(with_field("Bad Name", "v"), "field name 'Bad Name' is not a token");
  expect_error(with_field("X-A:", "v"), "is not a token");
  expect_error(with_field("X(A)", "v"), "is not a token");
  expect_error(with_field("N\xc3\xa4me", "v"), "is not a token");
}

TEST(RequestWriterTest, WriterOwnedFieldsAreRejected) {
  for (const char* name : {"Host", "host", "Content-Length", "content-length", "Transfer-Encoding", "Connection",
                           "CONNECTION", "Range", "range"}) {
    expect_error(with_field(name, "x"),
                 "field '" + std::string(name) + "' is set by the request writer; use RequestHead's member instead");
  }
}

TEST(RequestWriterTest, BadMethodIsRejected) {
  RequestHead request = get();
  request.method = "";
  expect_error(request, "method '' is not a token");
  request.method = "GET /x HTTP/1.1\r\nHost: evil\r\n\r\nGET";
  expect_error(request, "is not a token");
  request.method = "G T";
  expect_error(request, "method 'G T' is not a token");
}

TEST(RequestWriterTest, BadPathIsRejected) {
  RequestHead request = get();
  request.path = "";
  expect_error(request, "path must start with '/'");
  request.path = "relative";
  expect_error(request, "path must start with '/'");
  request.path = "http://h/abs";
  expect_error(request, "path must start with '/'");
  request.path = "/a b";
  expect_error(request, "path contains a space, control character, '#' or non-ASCII byte");
  request.path = "/a\r\nX: y";
  expect_error(request, "path contains a space");
  request.path = "/a#frag";
  expect_error(request, "path contains a space");
  request.path = "/caf\xc3\xa9";
  expect_error(request, "(percent-encode it)");
  request.path = "/a\0"s;
  expect_error(request, "path contains");
  request.path = "/a?b";
  expect_error(request, "path contains '?' (put the query in query)");
}

TEST(RequestWriterTest, BadQueryIsRejected) {
  RequestHead request = get("/x");
  request.query = "a=b c";
  expect_error(request, "query contains a space, control character, '#' or non-ASCII byte");
  request.query = "a=b\r\nX: y";
  expect_error(request, "query contains");
  request.query = "a#b";
  expect_error(request, "query contains");
  request.query = "a=\xff";
  expect_error(request, "query contains");
}

TEST(RequestWriterTest, BadHostIsRejected) {
  expect_error(get("/", ""), "empty Host");
  expect_error(get("/", "a b"), "Host contains whitespace");
  expect_error(get("/", "a\tb"), "Host contains whitespace");
  expect_error(get("/", "h\r\nX-Injected: 1"), "value of field 'Host' contains CR or LF");
  expect_error(get("/", "h\x01"), "value of field 'Host' contains a control character");
}

TEST(RequestWriterTest, BackwardRangeIsRejected) {
  RequestHead request = get();
  request.range = ByteRange{10, 9};
  expect_error(request, "range first byte 10 is after last byte 9");
}

TEST(RequestWriterTest, FirstBadFieldStopsTheWholeHead) {
  RequestHead request = get();
  request.fields = {{"A", "fine"}, {"B", "bad\n"}, {"C", "fine"}};
  expect_error(request, "value of field 'B'");
}

}  // namespace
}  // namespace ringfetch::http
