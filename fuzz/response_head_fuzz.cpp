// ResponseHeadParser on hostile bytes: never a crash, hang or unbounded growth; a complete head obeys the framing
// rules it promises (one framing, sane Content-Range); and the same bytes split into slices at fuzzer-chosen points
// give exactly the result of one feed.
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "http/response_head_parser.hpp"

namespace {

using ringfetch::http::ResponseHeadParser;

struct Outcome {
  ResponseHeadParser::Progress progress = ResponseHeadParser::Progress::kNeedMore;
  size_t consumed = 0;
};

// Feeds the slices in order as a connection would: after kComplete or kError the rest is not fed.
Outcome feed_all(ResponseHeadParser& parser, const std::vector<std::span<const char>>& slices) {
  Outcome outcome;
  for (std::span<const char> slice : slices) {
    const ResponseHeadParser::Result r = parser.feed(slice);
    outcome.consumed += r.consumed;
    outcome.progress = r.progress;
    if (r.progress != ResponseHeadParser::Progress::kNeedMore) break;
    RINGFETCH_FUZZ_CHECK(r.consumed == slice.size(), "kNeedMore left bytes of a slice unconsumed");
  }
  return outcome;
}

void check_head(const ringfetch::http::ResponseHead& head) {
  RINGFETCH_FUZZ_CHECK(head.status >= 100 && head.status <= 999, "status out of range");
  RINGFETCH_FUZZ_CHECK(!(head.chunked && head.content_length), "both chunked and Content-Length");
  if (head.content_range && !head.content_range->unsatisfied) {
    const auto& range = *head.content_range;
    RINGFETCH_FUZZ_CHECK(range.first <= range.last, "Content-Range first > last");
    RINGFETCH_FUZZ_CHECK(range.length() != 0, "a satisfied Content-Range of length 0");
    RINGFETCH_FUZZ_CHECK(!range.complete_length || range.last < *range.complete_length, "range past its object");
  }
  for (size_t i = 0; i < head.header_count(); ++i) {
    const auto field = head.header(i);
    RINGFETCH_FUZZ_CHECK(field.name.find_first_of(":\r\n") == std::string_view::npos, "bad field name");
    RINGFETCH_FUZZ_CHECK(field.value.find_first_of("\r\n") == std::string_view::npos, "CR or LF in a value");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ringfetch::fuzz::SplitInput input = ringfetch::fuzz::split_input(data, size);
  ResponseHeadParser whole;
  const Outcome one = feed_all(whole, {input.text});
  ResponseHeadParser pieces;
  const Outcome many = feed_all(pieces, input.slices());
  RINGFETCH_FUZZ_CHECK(one.progress == many.progress, "split feed ended differently");
  if (one.progress == ResponseHeadParser::Progress::kComplete) {
    RINGFETCH_FUZZ_CHECK(one.consumed == many.consumed, "split feed consumed a different head");
    RINGFETCH_FUZZ_CHECK(whole.head().raw() == pieces.head().raw(), "split feed kept different bytes");
    RINGFETCH_FUZZ_CHECK(whole.head().status == pieces.head().status, "split feed: other status");
    RINGFETCH_FUZZ_CHECK(whole.head().content_length == pieces.head().content_length, "split: other length");
    RINGFETCH_FUZZ_CHECK(whole.head().content_range == pieces.head().content_range, "split: other range");
    RINGFETCH_FUZZ_CHECK(whole.head().etag == pieces.head().etag, "split: other ETag");
    check_head(whole.head());
  } else if (one.progress == ResponseHeadParser::Progress::kError) {
    RINGFETCH_FUZZ_CHECK(whole.status().message() == pieces.status().message(), "split feed: other error");
    RINGFETCH_FUZZ_CHECK(!whole.status().ok(), "kError with an ok status");
  }
  return 0;
}
