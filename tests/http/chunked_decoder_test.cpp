// Tests for ChunkedDecoder: decoding, extensions, trailers, limits, every rejection with its message substring,
// and two properties: the output does not depend on how the input is split, and random bytes never crash it.
#include "http/chunked_decoder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace ringfetch::http {
namespace {

using Progress = ChunkedDecoder::Progress;
using namespace std::string_literals;

struct Outcome {
  Progress progress = Progress::kNeedMore;
  size_t consumed = 0;
  std::string output;  // decoded bytes, or the error message

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

// Feeds `input` cut at the sorted offsets `cuts`, stopping at kDone/kError.
Outcome decode_with_cuts(std::string_view input, const std::vector<size_t>& cuts, ChunkedDecoderLimits limits = {}) {
  ChunkedDecoder decoder(limits);
  Outcome outcome;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    const auto result = decoder.feed(std::span<const char>(input.data() + begin, end - begin), &outcome.output);
    outcome.consumed += result.consumed;
    outcome.progress = result.progress;
    if (result.progress != Progress::kNeedMore) break;
    EXPECT_EQ(result.consumed, end - begin);
    begin = end;
  }
  EXPECT_EQ(decoder.decoded_bytes(), outcome.output.size());
  if (outcome.progress == Progress::kError) {
    outcome.output = decoder.status().message();
    outcome.consumed = 0;  // how far an error got depends on the cuts; the message must not
  }
  return outcome;
}

Outcome decode(std::string_view input, ChunkedDecoderLimits limits = {}) { return decode_with_cuts(input, {}, limits); }

void expect_decoded(std::string_view input, std::string_view expected) {
  const Outcome outcome = decode(input);
  EXPECT_EQ(outcome.progress, Progress::kDone) << input << " -> " << outcome.output;
  EXPECT_EQ(outcome.consumed, input.size());
  EXPECT_EQ(outcome.output, expected);
}

void expect_error(std::string_view input, std::string_view what, ChunkedDecoderLimits limits = {}) {
  ChunkedDecoder decoder(limits);
  std::string out;
  const auto result = decoder.feed(input, &out);
  ASSERT_EQ(result.progress, Progress::kError) << input;
  EXPECT_EQ(decoder.status().kind(), ErrorKind::kIntegrity);
  EXPECT_NE(decoder.status().message().find(what), std::string::npos)
      << input << "\n-> " << decoder.status().message() << "\nexpected: " << what;
}

// ---------------------------------------------------------------- decoding

TEST(ChunkedDecoderTest, SingleChunk) { expect_decoded("5\r\nhello\r\n0\r\n\r\n", "hello"); }

TEST(ChunkedDecoderTest, EmptyBody) { expect_decoded("0\r\n\r\n", ""); }

TEST(ChunkedDecoderTest, SeveralChunksAndHexSizes) {
  expect_decoded("5\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n",
                 "hello 0123456789abcdefghij");
  const std::string big(0x1fF, 'z');
  expect_decoded("1fF\r\n" + big + "\r\n0\r\n\r\n", big);
}

TEST(ChunkedDecoderTest, LeadingZerosInSize) {
  expect_decoded("0005\r\nhello\r\n000\r\n\r\n", "hello");
  expect_decoded("00000000000000000000000000000005\r\nhello\r\n0\r\n\r\n", "hello");  // > 16 digits, small value
}

TEST(ChunkedDecoderTest, DataMayHoldCrLfAndNul) {
  expect_decoded("6\r\n\r\n\0\r\n\r\r\n0\r\n\r\n"s, "\r\n\0\r\n\r"s);
}

TEST(ChunkedDecoderTest, ExtensionsAreIgnored) {
  expect_decoded("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
  expect_decoded("5 ; a=b ; c\r\nhello\r\n0\r\n\r\n", "hello");
  expect_decoded("5\t;a=\"quoted; value\"\r\nhello\r\n0\r\n\r\n", "hello");
  expect_decoded("5 \r\nhello\r\n0\r\n\r\n", "hello");  // trailing whitespace before CRLF
  expect_decoded("5;\xc3\xa9=\t1\r\nhello\r\n0\r\n\r\n", "hello");
}

TEST(ChunkedDecoderTest, TrailersAreCheckedAndDropped) {
  expect_decoded("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nY:\r\nZ: a\tb \xc3\xa9\r\n\r\n", "hello");
}

TEST(ChunkedDecoderTest, BytesAfterBodyAreNotConsumed) {
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  ChunkedDecoder decoder;
  std::string out;
  const auto result = decoder.feed(body + "HTTP/1.1 200 OK\r\n", &out);
  EXPECT_EQ(result.progress, Progress::kDone);
  EXPECT_EQ(result.consumed, body.size());
  EXPECT_EQ(out, "abc");
  EXPECT_TRUE(decoder.done());
  const auto again = decoder.feed(std::string_view("more"), &out);
  EXPECT_EQ(again.progress, Progress::kDone);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_EQ(out, "abc");
}

TEST(ChunkedDecoderTest, AppendsToExistingOutput) {
  ChunkedDecoder decoder;
  std::string out = "prefix:";
  EXPECT_EQ(decoder.feed(std::string_view("2\r\nok\r\n0\r\n\r\n"), &out).progress, Progress::kDone);
  EXPECT_EQ(out, "prefix:ok");
  EXPECT_EQ(decoder.decoded_bytes(), 2u);
}

TEST(ChunkedDecoderTest, PartialInputNeedsMore) {
  ChunkedDecoder decoder;
  std::string out;
  auto result = decoder.feed(std::string_view("5\r\nhel"), &out);
  EXPECT_EQ(result.progress, Progress::kNeedMore);
  EXPECT_EQ(result.consumed, 6u);
  EXPECT_EQ(out, "hel");
  EXPECT_FALSE(decoder.done());
  result = decoder.feed(std::span<const char>(), &out);
  EXPECT_EQ(result.progress, Progress::kNeedMore);
  EXPECT_EQ(result.consumed, 0u);
  EXPECT_EQ(decoder.feed(std::string_view("lo\r\n0\r\n\r\n"), &out).progress, Progress::kDone);
  EXPECT_EQ(out, "hello");
}

TEST(ChunkedDecoderTest, ResetReusesDecoder) {
  ChunkedDecoder decoder;
  std::string out;
  ASSERT_EQ(decoder.feed(std::string_view("1\r\na\r\n0\r\n\r\n"), &out).progress, Progress::kDone);
  decoder.reset();
  EXPECT_EQ(decoder.decoded_bytes(), 0u);
  EXPECT_FALSE(decoder.done());
  ASSERT_EQ(decoder.feed(std::string_view("x"), &out).progress, Progress::kError);
  decoder.reset();
  EXPECT_TRUE(decoder.status().ok());
  out.clear();
  EXPECT_EQ(decoder.feed(std::string_view("2\r\nbc\r\n0\r\n\r\n"), &out).progress, Progress::kDone);
  EXPECT_EQ(out, "bc");
}

TEST(ChunkedDecoderTest, ErrorIsSticky) {
  ChunkedDecoder decoder;
  std::string out;
  ASSERT_EQ(decoder.feed(std::string_view("z"), &out).progress, Progress::kError);
  const auto again = decoder.feed(std::string_view("0\r\n\r\n"), &out);
  EXPECT_EQ(again.progress, Progress::kError);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_TRUE(out.empty());
}

// ---------------------------------------------------------------- errors

TEST(ChunkedDecoderTest, SizeLineErrors) {
  expect_error("\r\n", "malformed chunked body: missing chunk size");
  expect_error("g\r\n", "missing chunk size");
  expect_error(";ext\r\n", "missing chunk size");
  expect_error(" 5\r\n", "missing chunk size");
  expect_error("-5\r\n", "missing chunk size");
  expect_error("5x\r\n", "invalid character after chunk size");
  expect_error("5 x\r\n", "invalid character after chunk size");
  expect_error("0x5\r\n", "invalid character after chunk size");
  expect_error("5\n", "chunk-size line ends in a bare LF (expected CRLF)");
  expect_error("5;a\n", "bare LF");
  expect_error("5\rx", "bare CR in chunk-size line");
  expect_error("5;a\x01\r\n", "control character in chunk-size line");
  expect_error("5;a\x7f\r\n", "control character in chunk-size line");
  expect_error("5\0\r\n"s, "control character in chunk-size line");
  expect_error("10000000000000000\r\n", "chunk size too large");
  expect_error("fffffffffffffffff\r\n", "chunk size too large");
}

TEST(ChunkedDecoderTest, DataTerminatorErrors) {
  expect_error("5\r\nhelloX", "chunk data not followed by CRLF");
  expect_error("5\r\nhello\rX", "chunk data not followed by CRLF");
  expect_error("5\r\nhello\n", "chunk data not followed by CRLF");
  expect_error("5\r\nhello world\r\n", "chunk data not followed by CRLF");
}

TEST(ChunkedDecoderTest, TrailerErrors) {
  expect_error("0\r\n x: y\r\n\r\n", "obsolete line folding in trailer");
  expect_error("0\r\nA: b\r\n\tc\r\n\r\n", "obsolete line folding in trailer");
  expect_error("0\r\n:x\r\n\r\n", "invalid trailer field");
  expect_error("0\r\n\n", "invalid trailer field");
  expect_error("0\r\nA B: c\r\n\r\n", "invalid character in trailer field name");
  expect_error("0\r\nNoColon\r\n\r\n", "invalid character in trailer field name");
  expect_error("0\r\nA: \x01\r\n\r\n", "control character in trailer field");
  expect_error("0\r\nA: b\n\r\n", "control character in trailer field");
  expect_error("0\r\nA: b\rx", "bare CR in trailer field");
  expect_error("0\r\n\rx", "bare CR at end of chunked body");
}

// ---------------------------------------------------------------- limits

TEST(ChunkedDecoderTest, DefaultLimits) {
  EXPECT_EQ(kMaxChunkSizeLineBytes, 1024u);
  EXPECT_EQ(kMaxChunkedBodyBytes, 4u << 20);
  EXPECT_EQ(kMaxChunkedTrailerBytes, 16u * 1024);
}

TEST(ChunkedDecoderTest, SizeLineLimit) {
  const ChunkedDecoderLimits limits{.max_size_line_bytes = 8};
  EXPECT_EQ(decode("5;abcdef\r\nhello\r\n0\r\n\r\n", limits).progress, Progress::kDone);  // 8 bytes
  expect_error("5;abcdefg\r\nhello\r\n0\r\n\r\n", "chunk-size line longer than 8 bytes", limits);
  expect_error("000000005\r\n", "chunk-size line longer than 8 bytes", limits);
  expect_error("5;" + std::string(2000, 'x'), "chunk-size line longer than 1024 bytes");  // fails before a CRLF
}

TEST(ChunkedDecoderTest, SizeLineLimitResetsPerChunk) {
  const ChunkedDecoderLimits limits{.max_size_line_bytes = 4};
  EXPECT_EQ(decode("1;ab\r\na\r\n1;cd\r\nb\r\n0;ef\r\n\r\n", limits).output, "ab");
}

TEST(ChunkedDecoderTest, BodyLimit) {
  const ChunkedDecoderLimits limits{.max_body_bytes = 10};
  EXPECT_EQ(decode("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limits).output, "helloworld");
  expect_error("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", "chunked body larger than 10 bytes", limits);
  // The size line alone is enough to fail: no data is awaited.
  ChunkedDecoder decoder(limits);
  std::string out;
  EXPECT_EQ(decoder.feed(std::string_view("b\r\n"), &out).progress, Progress::kError);
  EXPECT_EQ(decoder.status().message(), "chunked body larger than 10 bytes");
  expect_error("ffffffffffffffff\r\n", "chunked body larger than 4194304 bytes");
}

TEST(ChunkedDecoderTest, TrailerLimit) {
  const ChunkedDecoderLimits limits{.max_trailer_bytes = 10};
  EXPECT_EQ(decode("0\r\nA: 123\r\n\r\n", limits).progress, Progress::kDone);  // 8 + 2 bytes
  expect_error("0\r\nA: 1234\r\n\r\n", "chunked trailer section larger than 10 bytes", limits);
  expect_error("0\r\nA: " + std::string(20000, 'x'), "chunked trailer section larger than 16384 bytes");
}

// ---------------------------------------------------------------- split invariance and garbage

std::vector<std::string> split_corpus() {
  return {
      "5\r\nhello\r\n0\r\n\r\n",
      "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nnext response",
      "0\r\n\r\n",
      "3\r\n\r\n\r\r\n0\r\n\r\n",
      "5\r\nhelloX",
      "5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n",
      "12345678901234567\r\n",
      "5\r\nhel",
  };
}

TEST(ChunkedDecoderTest, EverySplitGivesTheSameOutcome) {
  for (const std::string& input : split_corpus()) {
    const Outcome whole = decode(input);
    for (size_t first = 0; first <= input.size(); ++first) {
      for (size_t second = first; second <= input.size(); ++second) {
        ASSERT_EQ(decode_with_cuts(input, {first, second}), whole) << first << "," << second << " of " << input;
      }
    }
    std::vector<size_t> every_byte;
    for (size_t i = 1; i < input.size(); ++i) every_byte.push_back(i);
    ASSERT_EQ(decode_with_cuts(input, every_byte), whole) << input;
  }
}

std::vector<size_t> random_cuts(std::mt19937& random, size_t size) {
  std::vector<size_t> cuts;
  const size_t count = std::uniform_int_distribution<size_t>(0, std::min<size_t>(size, 10))(random);
  for (size_t i = 0; i < count; ++i) cuts.push_back(std::uniform_int_distribution<size_t>(0, size)(random));
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

// A valid chunked encoding of `data` with random chunk sizes, extensions and trailers.
std::string random_encoding(std::mt19937& random, std::string_view data) {
  std::string encoded;
  char size_text[32];
  while (!data.empty()) {
    const size_t take = std::uniform_int_distribution<size_t>(1, std::min<size_t>(data.size(), 40))(random);
    std::snprintf(size_text, sizeof(size_text), "%zx", take);
    encoded += size_text;
    if (random() % 3 == 0) encoded += ";x=y";
    encoded += "\r\n";
    encoded.append(data.substr(0, take)).append("\r\n");
    data.remove_prefix(take);
  }
  encoded += "0\r\n";
  if (random() % 2 == 0) encoded += "T: v\r\n";
  return encoded + "\r\n";
}

TEST(ChunkedDecoderTest, RandomEncodingsAndSplitsRoundTrip) {
  std::mt19937 random(99);
  for (int round = 0; round < 2000; ++round) {
    std::string data(std::uniform_int_distribution<size_t>(0, 300)(random), '\0');
    for (char& c : data) c = static_cast<char>(random());
    const std::string encoded = random_encoding(random, data) + "tail";
    const Outcome outcome = decode_with_cuts(encoded, random_cuts(random, encoded.size()));
    ASSERT_EQ(outcome.progress, Progress::kDone);
    ASSERT_EQ(outcome.output, data);
    ASSERT_EQ(outcome.consumed, encoded.size() - 4);
  }
}

TEST(ChunkedDecoderTest, RandomGarbageNeverCrashes) {
  static const std::vector<std::string> kPieces = {"0", "5", "a", "F", "\r\n", "\r", "\n", ";", "=", " ", "\t",
                                                   "hello", ":", "X", "\x01", "ffffffffffffffff", "00000"};
  std::mt19937 random(3);
  int done = 0;
  int failed = 0;
  const ChunkedDecoderLimits limits{.max_size_line_bytes = 32, .max_body_bytes = 64, .max_trailer_bytes = 32};
  for (int round = 0; round < 20000; ++round) {
    std::string input;
    if (random() % 3 == 0) {
      // A valid encoding with a few bytes flipped, inserted or deleted.
      input = random_encoding(random, std::string(random() % 80, 'd'));
      for (int edits = static_cast<int>(random() % 4); edits > 0; --edits) {
        const size_t at = random() % input.size();
        switch (random() % 3) {
          case 0: input[at] = static_cast<char>(random()); break;
          case 1: input.insert(input.begin() + static_cast<std::ptrdiff_t>(at), static_cast<char>(random())); break;
          default: input.erase(at, 1); break;
        }
      }
    } else {
      const int pieces = std::uniform_int_distribution<int>(0, 30)(random);
      for (int i = 0; i < pieces; ++i) {
        if (random() % 5 == 0) input += static_cast<char>(random());
        else input += kPieces[random() % kPieces.size()];
      }
    }
    const Outcome whole = decode(input, limits);
    if (whole.progress == Progress::kDone) {
      ++done;
      ASSERT_LE(whole.output.size(), limits.max_body_bytes);
      ASSERT_LE(whole.consumed, input.size());
    }
    if (whole.progress == Progress::kError) {
      ++failed;
      ASSERT_TRUE(whole.output.starts_with("malformed chunked body: ") || whole.output.starts_with("chunked "))
          << whole.output;
    }
    ASSERT_EQ(decode_with_cuts(input, random_cuts(random, input.size()), limits), whole) << input;
  }
  EXPECT_GT(done, 100);  // the generator does reach complete bodies
  EXPECT_GT(failed, 100);
}

}  // namespace
}  // namespace ringfetch::http
