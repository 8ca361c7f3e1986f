// Tests for ResponseHeadParser: every accepted form and every rejection (with the message substring callers and
// operators will see), the limits, reuse, and two properties: the result does not depend on how the input is
// split into slices, and arbitrary bytes never crash the parser (they parse or fail cleanly).
#include "http/response_head_parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace ringfetch::http {
namespace {

using Progress = ResponseHeadParser::Progress;
using namespace std::string_literals;

// Everything a parse produced, flattened so two parses can be compared with ==.
struct Outcome {
  Progress progress = Progress::kNeedMore;
  size_t consumed = 0;
  std::string summary;  // fields of the head, or the error message

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

std::string summarize(const ResponseHead& head) {
  std::string text = "status=" + std::to_string(head.status) + " minor=" + std::to_string(head.http_minor) +
                     " reason=" + std::string(head.reason());
  if (head.content_length) text += " length=" + std::to_string(*head.content_length);
  if (head.content_range) {
    const ContentRange& range = *head.content_range;
    text += " range=" + std::to_string(range.unsatisfied) + ":" + std::to_string(range.first) + "-" +
            std::to_string(range.last) + "/" +
            (range.complete_length ? std::to_string(*range.complete_length) : std::string("*"));
  }
  text += " chunked=" + std::to_string(head.chunked) + " close=" + std::to_string(head.connection_close) +
          " etag=" + head.etag;
  for (size_t i = 0; i < head.header_count(); ++i) {
    text.append("|").append(head.header(i).name).append("=").append(head.header(i).value);
  }
  return text.append("|raw=").append(head.raw());
}

// Feeds `input` cut at `cuts` (sorted offsets); stops at the first kComplete/kError like a connection would.
Outcome parse_with_cuts(std::string_view input, const std::vector<size_t>& cuts, ResponseHeadLimits limits = {}) {
  ResponseHeadParser parser(limits);
  Outcome outcome;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    const auto result = parser.feed(std::span<const char>(input.data() + begin, end - begin));
    outcome.consumed += result.consumed;
    outcome.progress = result.progress;
    if (result.progress != Progress::kNeedMore) break;
    EXPECT_EQ(result.consumed, end - begin) << "a head in progress takes every byte";
    begin = end;
  }
  if (outcome.progress == Progress::kComplete) outcome.summary = summarize(parser.head());
  if (outcome.progress == Progress::kError) {
    outcome.summary = parser.status().message();
    outcome.consumed = 0;  // how far an error got depends on the cuts; the message must not
  }
  return outcome;
}

Outcome parse_whole(std::string_view input, ResponseHeadLimits limits = {}) { return parse_with_cuts(input, {}, limits); }

// Parses `input` in one slice, expecting a complete head; returns the parser for inspection.
std::unique_ptr<ResponseHeadParser> parse_ok(std::string_view input, ResponseHeadLimits limits = {}) {
  auto parser = std::make_unique<ResponseHeadParser>(limits);
  const auto result = parser->feed(input);
  EXPECT_EQ(result.progress, Progress::kComplete) << input << "\n-> " << parser->status().message();
  return parser;
}

// Expects `input` to be rejected with kIntegrity and a message containing `what`.
void expect_error(std::string_view input, std::string_view what, ResponseHeadLimits limits = {}) {
  ResponseHeadParser parser(limits);
  const auto result = parser.feed(input);
  ASSERT_EQ(result.progress, Progress::kError) << input;
  EXPECT_EQ(parser.status().kind(), ErrorKind::kIntegrity);
  EXPECT_NE(parser.status().message().find(what), std::string::npos)
      << input << "\n-> " << parser.status().message() << "\nexpected: " << what;
}

const std::string kNginx206 =
    "HTTP/1.1 206 Partial Content\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Tue, 12 Mar 2024 10:00:00 GMT\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Length: 8388608\r\n"
    "Last-Modified: Mon, 11 Mar 2024 09:00:00 GMT\r\n"
    "Connection: keep-alive\r\n"
    "ETag: \"65eec8f0-40000000\"\r\n"
    "Content-Range: bytes 8388608-16777215/1073741824\r\n"
    "\r\n";

// ---------------------------------------------------------------- accepted heads

TEST(ResponseHeadParserTest, Nginx206) {
  auto parser = parse_ok(kNginx206);
  const ResponseHead& head = parser->head();
  EXPECT_EQ(head.status, 206);
  EXPECT_EQ(head.http_minor, 1);
  EXPECT_EQ(head.reason(), "Partial Content");
  ASSERT_TRUE(head.content_length);
  EXPECT_EQ(*head.content_length, 8388608u);
  ASSERT_TRUE(head.content_range);
  EXPECT_FALSE(head.content_range->unsatisfied);
  EXPECT_EQ(head.content_range->first, 8388608u);
  EXPECT_EQ(head.content_range->last, 16777215u);
  EXPECT_EQ(head.content_range->complete_length, 1073741824u);
  EXPECT_EQ(head.content_range->length(), 8388608u);
  EXPECT_FALSE(head.chunked);
  EXPECT_FALSE(head.connection_close);
  EXPECT_EQ(head.etag, "\"65eec8f0-40000000\"");
  EXPECT_EQ(head.header_count(), 8u);
  EXPECT_EQ(head.header(0).name, "Server");
  EXPECT_EQ(head.header(0).value, "nginx/1.22.1");
  EXPECT_EQ(head.header(7).name, "Content-Range");
  EXPECT_EQ(head.raw(), kNginx206);
  EXPECT_TRUE(parser->complete());
  EXPECT_TRUE(parser->status().ok());
}

TEST(ResponseHeadParserTest, FindIsCaseInsensitiveAndReturnsFirst) {
  auto parser = parse_ok("HTTP/1.1 200 OK\r\nX-Amz-Request-Id: one\r\nx-amz-request-id: two\r\nA: \r\n\r\n");
  const ResponseHead& head = parser->head();
  EXPECT_EQ(head.find("X-AMZ-REQUEST-ID"), "one");
  EXPECT_EQ(head.find("a"), "");
  EXPECT_FALSE(head.find("missing"));
  EXPECT_FALSE(head.find("X-Amz-Request-I"));
  EXPECT_EQ(head.header(1).name, "x-amz-request-id");
  EXPECT_THROW(head.header(3), std::out_of_range);
}

TEST(ResponseHeadParserTest, BodyBytesAfterHeadAreNotConsumed) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  const std::string input = head + "hello";
  ResponseHeadParser parser;
  const auto result = parser.feed(input);
  EXPECT_EQ(result.progress, Progress::kComplete);
  EXPECT_EQ(result.consumed, head.size());
  EXPECT_EQ(parser.head().raw(), head);
  // Later feeds consume nothing until reset().
  const auto again = parser.feed(std::string_view("more"));
  EXPECT_EQ(again.progress, Progress::kComplete);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(ResponseHeadParserTest, BodyStartingWithNewlineIsNotConsumed) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
  ResponseHeadParser parser;
  EXPECT_EQ(parser.feed(head + "\r\n").consumed, head.size());
}

TEST(ResponseHeadParserTest, EmptyFeedNeedsMore) {
  ResponseHeadParser parser;
  const auto result = parser.feed(std::span<const char>());
  EXPECT_EQ(result.progress, Progress::kNeedMore);
  EXPECT_EQ(result.consumed, 0u);
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(ResponseHeadParserTest, PartialHeadNeedsMoreAndCountsBufferedBytes) {
  ResponseHeadParser parser;
  const auto result = parser.feed(std::string_view("HTTP/1.1 200 OK\r\nContent-Le"));
  EXPECT_EQ(result.progress, Progress::kNeedMore);
  EXPECT_EQ(result.consumed, 27u);
  EXPECT_EQ(parser.buffered_bytes(), 27u);
  EXPECT_FALSE(parser.complete());
  EXPECT_EQ(parser.feed(std::string_view("ngth: 0\r\n\r\n")).progress, Progress::kComplete);
  EXPECT_EQ(parser.head().content_length, 0u);
}

TEST(ResponseHeadParserTest, Http10ClosesUnlessKeepAlive) {
  auto plain = parse_ok("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
  EXPECT_EQ(plain->head().http_minor, 0);
  EXPECT_TRUE(plain->head().connection_close);
  auto keep = parse_ok("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_FALSE(keep->head().connection_close);
  auto both = parse_ok("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n\r\n");
  EXPECT_TRUE(both->head().connection_close);
}

TEST(ResponseHeadParserTest, Http11KeepsAliveUnlessClose) {
  EXPECT_FALSE(parse_ok("HTTP/1.1 200 OK\r\n\r\n")->head().connection_close);
  EXPECT_TRUE(parse_ok("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")->head().connection_close);
  EXPECT_TRUE(parse_ok("HTTP/1.1 200 OK\r\nConnection: CLOSE\r\n\r\n")->head().connection_close);
  EXPECT_TRUE(parse_ok("HTTP/1.1 200 OK\r\nConnection: upgrade , close\r\n\r\n")->head().connection_close);
  EXPECT_TRUE(parse_ok("HTTP/1.1 200 OK\r\nConnection: x\r\nConnection: close\r\n\r\n")->head().connection_close);
  EXPECT_FALSE(parse_ok("HTTP/1.1 200 OK\r\nConnection: closed\r\n\r\n")->head().connection_close);
  EXPECT_FALSE(parse_ok("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n")->head().connection_close);
}

TEST(ResponseHeadParserTest, LaterMinorVersionsAreHttp11) {
  auto parser = parse_ok("HTTP/1.2 200 OK\r\n\r\n");
  EXPECT_EQ(parser->head().http_minor, 2);
  EXPECT_FALSE(parser->head().connection_close);
}

TEST(ResponseHeadParserTest, ReasonPhraseIsOptional) {
  EXPECT_EQ(parse_ok("HTTP/1.1 200\r\n\r\n")->head().reason(), "");
  EXPECT_EQ(parse_ok("HTTP/1.1 200 \r\n\r\n")->head().reason(), "");
  EXPECT_EQ(parse_ok("HTTP/1.1 503 Slow Down\r\n\r\n")->head().reason(), "Slow Down");
  EXPECT_EQ(parse_ok("HTTP/1.1 404 Not\tFound \xe2\x9c\x97\r\n\r\n")->head().reason(), "Not\tFound \xe2\x9c\x97");
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\n\r\n")->head().status, 200);
}

TEST(ResponseHeadParserTest, StatusCodeRange) {
  EXPECT_EQ(parse_ok("HTTP/1.1 100 Continue\r\n\r\n")->head().status, 100);
  EXPECT_EQ(parse_ok("HTTP/1.1 599 X\r\n\r\n")->head().status, 599);
  expect_error("HTTP/1.1 099 X\r\n\r\n", "status code 099 out of range 100-599");
  expect_error("HTTP/1.1 600 X\r\n\r\n", "status code 600 out of range");
}

TEST(ResponseHeadParserTest, InterimResponseThenFinalAfterReset) {
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string final_head = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
  const std::string input = interim + final_head + "abc";
  ResponseHeadParser parser;
  auto result = parser.feed(input);
  ASSERT_EQ(result.progress, Progress::kComplete);
  EXPECT_EQ(parser.head().status, 100);
  EXPECT_EQ(result.consumed, interim.size());
  parser.reset();
  result = parser.feed(std::string_view(input).substr(interim.size()));
  ASSERT_EQ(result.progress, Progress::kComplete);
  EXPECT_EQ(parser.head().status, 200);
  EXPECT_EQ(result.consumed, final_head.size());
}

TEST(ResponseHeadParserTest, ValueOwsIsTrimmedAndInnerSpaceKept) {
  auto parser = parse_ok("HTTP/1.1 200 OK\r\nX:   a  b \t\r\nY:\tc\r\nZ:\r\nW: \t \r\n\r\n");
  const ResponseHead& head = parser->head();
  EXPECT_EQ(head.find("X"), "a  b");
  EXPECT_EQ(head.find("Y"), "c");
  EXPECT_EQ(head.find("Z"), "");
  EXPECT_EQ(head.find("W"), "");
}

TEST(ResponseHeadParserTest, ValueMayHoldObsTextAndTab) {
  auto parser = parse_ok("HTTP/1.1 200 OK\r\nX: caf\xc3\xa9\ta:b\r\n\r\n");
  EXPECT_EQ(parser->head().find("x"), "caf\xc3\xa9\ta:b");
}

TEST(ResponseHeadParserTest, TokenCharactersInNames) {
  auto parser = parse_ok("HTTP/1.1 200 OK\r\nx-!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n");
  EXPECT_EQ(parser->head().header(0).name, "x-!#$%&'*+-.^_`|~09AZaz");
}

// ---------------------------------------------------------------- status line errors

TEST(ResponseHeadParserTest, StatusLineErrors) {
  expect_error("HTTP/1.1 20\r\n\r\n", "bad status line 'HTTP/1.1 20'");
  expect_error("HTTP/1.1\r\n\r\n", "bad status line");
  expect_error("HTTP/1.x 200 OK\r\n\r\n", "bad status line");
  expect_error("HTTP/11 200 OK\r\n\r\n", "bad status line");
  expect_error("HTTP/1.1_200 OK\r\n\r\n", "bad status line");
  expect_error("HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version 'HTTP/2.0'");
  expect_error("HTTP/0.9 200 OK\r\n\r\n", "unsupported HTTP version 'HTTP/0.9'");
  expect_error("HTTP/1.1 2x0 OK\r\n\r\n", "bad status code in 'HTTP/1.1 2x0 OK'");
  expect_error("HTTP/1.1  200 OK\r\n\r\n", "bad status code");
  expect_error("HTTP/1.1 2000 OK\r\n\r\n", "bad status code");
  expect_error("HTTP/1.1 200OK\r\n\r\n", "bad status code");
  expect_error("HTTP/1.1 200 O\x01K\r\n\r\n", "control character in reason phrase");
  expect_error("HTTP/1.1 200 O\x7fK\r\n\r\n", "control character in reason phrase");
  expect_error("HTTP/1.1 200 O\0K\r\n\r\n"s, "control character in reason phrase");
}

TEST(ResponseHeadParserTest, NonHttpPeerFailsOnFirstBytes) {
  for (std::string_view start : {"X", "HTTPS/1.1 200 OK", "http/1.1 200 OK", "\x16\x03\x01", "\r\n", " HTTP/1.1",
                                 "PRI * HTTP/2.0"}) {
    ResponseHeadParser parser;
    const auto result = parser.feed(start);
    EXPECT_EQ(result.progress, Progress::kError) << start;
    EXPECT_NE(parser.status().message().find("malformed HTTP response head: status line does not start with 'HTTP/'"),
              std::string::npos)
        << parser.status().message();
  }
  ResponseHeadParser prefix_only;
  EXPECT_EQ(prefix_only.feed(std::string_view("HTT")).progress, Progress::kNeedMore);
}

// ---------------------------------------------------------------- line and field errors

TEST(ResponseHeadParserTest, LineEndingErrors) {
  expect_error("HTTP/1.1 200 OK\n\n", "line ends in a bare LF (expected CRLF)");
  expect_error("HTTP/1.1 200 OK\r\nA: b\n\r\n", "bare LF");
  expect_error("HTTP/1.1 200 OK\r\nA: b\r\n\n", "bare LF");
  expect_error("HTTP/1.1 200 OK\r\r\n\r\n", "bare CR inside a line");
  expect_error("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "bare CR inside a line");
  expect_error("HTTP/1.1 200 OK\r\nA\r: b\r\n\r\n", "bare CR");
  expect_error("HTTP/1.1 200 OK\r\n\r\r\n", "bare CR");
}

TEST(ResponseHeadParserTest, FieldErrors) {
  expect_error("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", "obsolete line folding is not supported");
  expect_error("HTTP/1.1 200 OK\r\nA: b\r\n\tc\r\n\r\n", "obsolete line folding");
  expect_error("HTTP/1.1 200 OK\r\n A: b\r\n\r\n", "obsolete line folding");
  expect_error("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "header line without ':' 'NoColon'");
  expect_error("HTTP/1.1 200 OK\r\n: v\r\n\r\n", "empty header name");
  expect_error("HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", "whitespace in header name 'Bad Name'");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", "whitespace in header name 'Content-Length '");
  expect_error("HTTP/1.1 200 OK\r\nName\t: 5\r\n\r\n", "whitespace in header name");
  expect_error("HTTP/1.1 200 OK\r\nNa(me: v\r\n\r\n", "invalid character in header name 'Na(me'");
  expect_error("HTTP/1.1 200 OK\r\nN\xc3\xa4me: v\r\n\r\n", "invalid character in header name");
  expect_error("HTTP/1.1 200 OK\r\nX: a\x01z\r\n\r\n", "control character in value of header 'X'");
  expect_error("HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", "control character in value of header 'X'");
  expect_error("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"s, "control character in value of header 'X'");
}

TEST(ResponseHeadParserTest, LongValuesAreCutInMessages) {
  ResponseHeadParser parser;
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Length: " + std::string(1000, 'x') + "\r\n\r\n";
  ASSERT_EQ(parser.feed(input).progress, Progress::kError);
  EXPECT_LT(parser.status().message().size(), 200u);
  EXPECT_NE(parser.status().message().find("...'"), std::string::npos);
}

// ---------------------------------------------------------------- Content-Length

TEST(ResponseHeadParserTest, ContentLength) {
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")->head().content_length, 0u);
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\ncontent-length: 007\r\n\r\n")->head().content_length, 7u);
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n")->head().content_length,
            UINT64_MAX);
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 5, 5 ,5\r\n\r\n")->head().content_length, 5u);
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")->head().content_length, 5u);
  EXPECT_FALSE(parse_ok("HTTP/1.1 204 No Content\r\n\r\n")->head().content_length);
}

TEST(ResponseHeadParserTest, ContentLengthErrors) {
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting Content-Length values");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "conflicting Content-Length values");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "bad Content-Length 'abc'");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length '-1'");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "bad Content-Length '+5'");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n", "bad Content-Length '5 5'");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "bad Content-Length");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "bad Content-Length ''");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: ,\r\n\r\n", "bad Content-Length ','");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n", "bad Content-Length");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "bad Content-Length");
}

// ---------------------------------------------------------------- Transfer-Encoding

TEST(ResponseHeadParserTest, Chunked) {
  EXPECT_TRUE(parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")->head().chunked);
  EXPECT_TRUE(parse_ok("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n")->head().chunked);
  EXPECT_TRUE(parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked ,\r\n\r\n")->head().chunked);
  EXPECT_FALSE(parse_ok("HTTP/1.1 200 OK\r\n\r\n")->head().chunked);
}

TEST(ResponseHeadParserTest, TransferEncodingErrors) {
  expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported Transfer-Encoding 'gzip'");
  expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", "unsupported Transfer-Encoding 'identity'");
  expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "unsupported Transfer-Encoding 'gzip'");
  expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "chunked applied more than once");
  expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
               "chunked applied more than once");
  expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", "empty Transfer-Encoding");
  expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
               "both Content-Length and Transfer-Encoding: chunked");
  expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
               "both Content-Length and Transfer-Encoding: chunked");
  expect_error("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 response");
}

// ---------------------------------------------------------------- Content-Range

ContentRange parse_range_ok(std::string_view value) {
  auto parser = parse_ok("HTTP/1.1 206 Partial Content\r\nContent-Range: " + std::string(value) + "\r\n\r\n");
  EXPECT_TRUE(parser->head().content_range) << value;
  return parser->head().content_range.value_or(ContentRange());
}

void expect_range_error(std::string_view value) {
  expect_error("HTTP/1.1 206 Partial Content\r\nContent-Range: " + std::string(value) + "\r\n\r\n",
               "bad Content-Range '" + std::string(value) + "'");
}

TEST(ResponseHeadParserTest, ContentRange) {
  const ContentRange full = parse_range_ok("bytes 0-99/1000");
  EXPECT_FALSE(full.unsatisfied);
  EXPECT_EQ(full.first, 0u);
  EXPECT_EQ(full.last, 99u);
  EXPECT_EQ(full.complete_length, 1000u);
  EXPECT_EQ(full.length(), 100u);

  const ContentRange unknown = parse_range_ok("bytes 5-9/*");
  EXPECT_EQ(unknown.first, 5u);
  EXPECT_EQ(unknown.last, 9u);
  EXPECT_FALSE(unknown.complete_length);

  const ContentRange unsatisfied = parse_range_ok("bytes */1000");
  EXPECT_TRUE(unsatisfied.unsatisfied);
  EXPECT_EQ(unsatisfied.complete_length, 1000u);
  EXPECT_EQ(unsatisfied.length(), 0u);

  EXPECT_EQ(parse_range_ok("Bytes 0-0/1").length(), 1u);
  EXPECT_EQ(parse_range_ok("bytes 0-18446744073709551614/18446744073709551615").last, UINT64_MAX - 1);
  EXPECT_EQ(parse_range_ok("bytes */0").complete_length, 0u);
  EXPECT_FALSE(parse_ok("HTTP/1.1 200 OK\r\n\r\n")->head().content_range);
}

TEST(ResponseHeadParserTest, ContentRangeErrors) {
  expect_range_error("bytes 9-5/10");       // first > last
  // 2^64 bytes: a length no uint64_t holds; accepting it made length() wrap to 0.
  expect_range_error("bytes 0-18446744073709551615/*");
  expect_range_error("bytes 0-10/10");      // last past the end
  expect_range_error("bytes 0-0/0");
  expect_range_error("bytes */*");
  expect_range_error("items 0-1/2");
  expect_range_error("bytes 0-1");
  expect_range_error("bytes=0-1/2");
  expect_range_error("bytes  0-1/2");
  expect_range_error("bytes -1-5/10");
  expect_range_error("bytes 0-/10");
  expect_range_error("bytes -5/10");
  expect_range_error("bytes a-b/c");
  expect_range_error("bytes 0-1/1x");
  expect_range_error("bytes 0-1/2, 4-5/6");
  expect_range_error("bytes 0-18446744073709551616/*");
  expect_range_error("bytes");
  expect_range_error("");
  expect_error("HTTP/1.1 206 X\r\nContent-Range: bytes 0-1/2\r\nContent-Range: bytes 0-1/3\r\n\r\n",
               "conflicting Content-Range values");
  auto same = parse_ok("HTTP/1.1 206 X\r\nContent-Range: bytes 0-1/2\r\ncontent-range: bytes 0-1/2\r\n\r\n");
  EXPECT_EQ(same->head().content_range->last, 1u);
}

// ---------------------------------------------------------------- ETag

TEST(ResponseHeadParserTest, ETag) {
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\nETag: \"abc\"\r\n\r\n")->head().etag, "\"abc\"");
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\netag: W/\"abc\"\r\n\r\n")->head().etag, "W/\"abc\"");
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\nETag: \"a\"\r\nETag: \"a\"\r\n\r\n")->head().etag, "\"a\"");
  EXPECT_EQ(parse_ok("HTTP/1.1 200 OK\r\n\r\n")->head().etag, "");
  expect_error("HTTP/1.1 200 OK\r\nETag: \"a\"\r\nETag: \"b\"\r\n\r\n", "conflicting ETag values");
  expect_error("HTTP/1.1 200 OK\r\nETag:\r\nETag: \"b\"\r\n\r\n", "conflicting ETag values");
}

// ---------------------------------------------------------------- limits

std::string head_of_size(size_t total_bytes) {
  const std::string start = "HTTP/1.1 200 OK\r\nX: ";
  const std::string end = "\r\n\r\n";
  return start + std::string(total_bytes - start.size() - end.size(), 'v') + end;
}

TEST(ResponseHeadParserTest, HeadSizeLimit) {
  EXPECT_EQ(kMaxHeadBytes, 16384u);
  const std::string at_limit = head_of_size(kMaxHeadBytes);
  ASSERT_EQ(at_limit.size(), kMaxHeadBytes);
  EXPECT_EQ(parse_whole(at_limit).progress, Progress::kComplete);
  expect_error(head_of_size(kMaxHeadBytes + 1), "HTTP response head larger than 16384 bytes");
}

TEST(ResponseHeadParserTest, HeadSizeLimitWithoutNewlines) {
  ResponseHeadParser parser;
  const std::string endless = "HTTP/1.1 200 OK" + std::string(20000, 'a');
  const auto result = parser.feed(endless);
  EXPECT_EQ(result.progress, Progress::kError);
  EXPECT_LE(result.consumed, kMaxHeadBytes);
  EXPECT_EQ(parser.status().message(), "HTTP response head larger than 16384 bytes");
  EXPECT_EQ(parser.status().kind(), ErrorKind::kIntegrity);
}

TEST(ResponseHeadParserTest, HeadSizeLimitAcrossManySmallFeeds) {
  ResponseHeadParser parser;
  std::string line = "X-Filler: 0123456789\r\n";
  ASSERT_EQ(parser.feed(std::string_view("HTTP/1.1 200 OK\r\n")).progress, Progress::kNeedMore);
  Progress progress = Progress::kNeedMore;
  for (int i = 0; i < 2000 && progress == Progress::kNeedMore; ++i) progress = parser.feed(line).progress;
  EXPECT_EQ(progress, Progress::kError);
  EXPECT_NE(parser.status().message().find("more than 100 header fields"), std::string::npos);
}

TEST(ResponseHeadParserTest, CustomHeadSizeLimit) {
  const ResponseHeadLimits limits{.max_head_bytes = 64};
  EXPECT_EQ(parse_whole(head_of_size(64), limits).progress, Progress::kComplete);
  expect_error(head_of_size(65), "HTTP response head larger than 64 bytes", limits);
}

std::string head_with_fields(size_t count) {
  std::string head = "HTTP/1.1 200 OK\r\n";
  for (size_t i = 0; i < count; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  return head + "\r\n";
}

TEST(ResponseHeadParserTest, HeaderCountLimit) {
  EXPECT_EQ(kMaxHeaders, 100u);
  auto parser = parse_ok(head_with_fields(100));
  EXPECT_EQ(parser->head().header_count(), 100u);
  expect_error(head_with_fields(101), "HTTP response head has more than 100 header fields");
  const ResponseHeadLimits two{.max_headers = 2};
  EXPECT_EQ(parse_whole(head_with_fields(2), two).progress, Progress::kComplete);
  expect_error(head_with_fields(3), "more than 2 header fields", two);
}

// ---------------------------------------------------------------- lifecycle

TEST(ResponseHeadParserTest, ErrorIsSticky) {
  ResponseHeadParser parser;
  ASSERT_EQ(parser.feed(std::string_view("HTTP/1.1 200 OK\n")).progress, Progress::kError);
  const std::string message = parser.status().message();
  const auto again = parser.feed(std::string_view("\r\n\r\n"));
  EXPECT_EQ(again.progress, Progress::kError);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_EQ(parser.status().message(), message);
  EXPECT_FALSE(parser.complete());
}

TEST(ResponseHeadParserTest, ResetReusesParser) {
  ResponseHeadParser parser;
  ASSERT_EQ(parser.feed(kNginx206).progress, Progress::kComplete);
  parser.reset();
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  EXPECT_EQ(parser.head().header_count(), 0u);
  EXPECT_FALSE(parser.complete());
  ASSERT_EQ(parser.feed(std::string_view("HTTP/1.0 404 Not Found\r\nX: y\r\n\r\n")).progress, Progress::kComplete);
  const ResponseHead& head = parser.head();
  EXPECT_EQ(head.status, 404);
  EXPECT_EQ(head.http_minor, 0);
  EXPECT_FALSE(head.content_length);
  EXPECT_FALSE(head.content_range);
  EXPECT_EQ(head.etag, "");
  EXPECT_TRUE(head.connection_close);
  EXPECT_EQ(head.header_count(), 1u);
  EXPECT_EQ(head.reason(), "Not Found");
  // An error is cleared by reset too.
  parser.reset();
  ASSERT_EQ(parser.feed(std::string_view("garbage")).progress, Progress::kError);
  parser.reset();
  EXPECT_TRUE(parser.status().ok());
  EXPECT_EQ(parser.feed(std::string_view("HTTP/1.1 200 OK\r\n\r\n")).progress, Progress::kComplete);
}

TEST(ResponseHeadParserTest, ResetClearsConnectionAndEtagState) {
  ResponseHeadParser parser;
  ASSERT_EQ(parser.feed(std::string_view("HTTP/1.1 200 OK\r\nConnection: close\r\nETag: \"a\"\r\n\r\n")).progress,
            Progress::kComplete);
  parser.reset();
  ASSERT_EQ(parser.feed(std::string_view("HTTP/1.1 200 OK\r\nETag: \"b\"\r\n\r\n")).progress, Progress::kComplete);
  EXPECT_FALSE(parser.head().connection_close);
  EXPECT_EQ(parser.head().etag, "\"b\"");
}

TEST(ResponseHeadParserTest, CopiedHeadOutlivesParser) {
  ResponseHead copy;
  {
    ResponseHeadParser parser;
    ASSERT_EQ(parser.feed(kNginx206).progress, Progress::kComplete);
    copy = parser.head();
  }
  EXPECT_EQ(copy.find("server"), "nginx/1.22.1");
  EXPECT_EQ(copy.reason(), "Partial Content");
  EXPECT_EQ(copy.raw(), kNginx206);
}

// ---------------------------------------------------------------- split invariance and garbage

// Valid and invalid heads; each must give the same outcome however it is cut.
std::vector<std::string> split_corpus() {
  return {
      kNginx206 + "body bytes",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.0 200\r\nConnection: keep-alive\r\nContent-Length: 5, 5\r\n\r\n",
      "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */1000\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX:  spaced  \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "HTTP/1.1 503 Slow Down\r\nConnection: close\r\n\r\n\r\n\r\n",
      "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
      "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
      "HTTP/1.1 200 OK\r\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTX/1.1 200 OK\r\n\r\n",
      head_with_fields(101),
      head_of_size(kMaxHeadBytes),
      head_of_size(kMaxHeadBytes + 1),
  };
}

TEST(ResponseHeadParserTest, EveryTwoWaySplitGivesTheSameOutcome) {
  for (const std::string& input : split_corpus()) {
    const Outcome whole = parse_whole(input);
    ASSERT_NE(whole.progress, Progress::kNeedMore) << input;
    const size_t step = input.size() > 2000 ? 97 : 1;  // the 16 KiB heads: a prime stride keeps this quick
    for (size_t cut = 0; cut <= input.size(); cut += step) {
      ASSERT_EQ(parse_with_cuts(input, {cut}), whole) << "cut at " << cut << " of\n" << input;
    }
  }
}

TEST(ResponseHeadParserTest, EveryThreeWaySplitGivesTheSameOutcome) {
  const std::string input = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/20\r\nETag: \"e\"\r\n\r\nbody";
  const Outcome whole = parse_whole(input);
  ASSERT_EQ(whole.progress, Progress::kComplete);
  for (size_t first = 0; first <= input.size(); ++first) {
    for (size_t second = first; second <= input.size(); ++second) {
      ASSERT_EQ(parse_with_cuts(input, {first, second}), whole) << first << "," << second;
    }
  }
}

TEST(ResponseHeadParserTest, ByteAtATimeGivesTheSameOutcome) {
  for (const std::string& input : split_corpus()) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < input.size(); ++i) cuts.push_back(i);
    ASSERT_EQ(parse_with_cuts(input, cuts), parse_whole(input)) << input;
  }
}

std::vector<size_t> random_cuts(std::mt19937& random, size_t size) {
  std::vector<size_t> cuts;
  if (size == 0) return cuts;
  const size_t count = std::uniform_int_distribution<size_t>(0, std::min<size_t>(size, 12))(random);
  for (size_t i = 0; i < count; ++i) cuts.push_back(std::uniform_int_distribution<size_t>(0, size)(random));
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

TEST(ResponseHeadParserTest, RandomSplitsGiveTheSameOutcome) {
  std::mt19937 random(20240312);
  for (const std::string& input : split_corpus()) {
    const Outcome whole = parse_whole(input);
    for (int round = 0; round < 200; ++round) {
      const std::vector<size_t> cuts = random_cuts(random, input.size());
      ASSERT_EQ(parse_with_cuts(input, cuts), whole) << input;
    }
  }
}

// Random inputs built from HTTP-looking pieces and single bytes, plus mutations of valid heads.
std::string random_input(std::mt19937& random) {
  static const std::vector<std::string> kPieces = {
      "HTTP/1.1 ", "HTTP/1.0 ", "200", "206", " OK", "\r\n", "\r\n", "\r", "\n", ": ", ":", " ", "\t",
      "Content-Length", "Transfer-Encoding", "chunked", "Connection", "close", "keep-alive", "Content-Range",
      "bytes ", "0-9/10", "*/5", "ETag", "\"x\"", ",", "5", "18446744073709551616", "X", "\x7f", std::string(1, '\0')};
  std::string input;
  if (std::uniform_int_distribution<int>(0, 2)(random) == 0) {
    input = kNginx206;
    const int edits = std::uniform_int_distribution<int>(1, 4)(random);
    for (int i = 0; i < edits && !input.empty(); ++i) {
      const size_t at = std::uniform_int_distribution<size_t>(0, input.size() - 1)(random);
      const auto byte = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random));
      switch (std::uniform_int_distribution<int>(0, 2)(random)) {
        case 0: input[at] = byte; break;
        case 1: input.insert(input.begin() + static_cast<std::ptrdiff_t>(at), byte); break;
        default: input.erase(at, 1); break;
      }
    }
    return input;
  }
  const int pieces = std::uniform_int_distribution<int>(0, 40)(random);
  for (int i = 0; i < pieces; ++i) {
    if (std::uniform_int_distribution<int>(0, 4)(random) == 0) {
      input += static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random));
    } else {
      input += kPieces[std::uniform_int_distribution<size_t>(0, kPieces.size() - 1)(random)];
    }
  }
  return input;
}

TEST(ResponseHeadParserTest, RandomGarbageParsesOrFailsCleanly) {
  std::mt19937 random(7);
  int complete = 0;
  int failed = 0;
  for (int round = 0; round < 20000; ++round) {
    // "\r\n\r\n" ends any head, so every input must end complete or failed.
    const std::string input = random_input(random) + "\r\n\r\n";
    const Outcome whole = parse_whole(input);
    ASSERT_NE(whole.progress, Progress::kNeedMore) << input;
    if (whole.progress == Progress::kComplete) {
      ++complete;
      ResponseHeadParser parser;
      const auto result = parser.feed(input);
      ASSERT_LE(result.consumed, input.size());
      ASSERT_EQ(parser.head().raw(), std::string_view(input).substr(0, result.consumed));
      ASSERT_GE(parser.head().status, 100);
      ASSERT_LE(parser.head().status, 599);
      ASSERT_FALSE(parser.head().chunked && parser.head().content_length);
    } else {
      ++failed;
      ASSERT_TRUE(whole.summary.starts_with("malformed HTTP response head: ") ||
                  whole.summary.starts_with("HTTP response head "))
          << whole.summary;
    }
    ASSERT_EQ(parse_with_cuts(input, random_cuts(random, input.size())), whole) << input;
  }
  EXPECT_GT(complete, 100);  // the generator does reach valid heads
  EXPECT_GT(failed, 100);
}

}  // namespace
}  // namespace ringfetch::http
