// Content-Range values alone, inside a fixed 206 head: an accepted value describes a real range (first <= last,
// a length that fits 64 bits, last inside the object), an unsatisfied one names the object's size.
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "http/response_head_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string value(reinterpret_cast<const char*>(data), size);
  if (value.find_first_of("\r\n") != std::string::npos) return 0;  // one field value
  const std::string head = "HTTP/1.1 206 Partial Content\r\nContent-Range: " + value + "\r\n\r\n";
  ringfetch::http::ResponseHeadParser parser;
  const auto result = parser.feed(head);
  if (result.progress != ringfetch::http::ResponseHeadParser::Progress::kComplete) return 0;
  const auto& range = parser.head().content_range;
  RINGFETCH_FUZZ_CHECK(range.has_value(), "accepted without a Content-Range");
  if (range->unsatisfied) {
    RINGFETCH_FUZZ_CHECK(range->complete_length.has_value(), "bytes */* accepted");
    RINGFETCH_FUZZ_CHECK(range->length() == 0, "unsatisfied range with a length");
    return 0;
  }
  RINGFETCH_FUZZ_CHECK(range->first <= range->last, "first > last");
  RINGFETCH_FUZZ_CHECK(range->length() == range->last - range->first + 1 && range->length() != 0, "length wraps");
  RINGFETCH_FUZZ_CHECK(!range->complete_length || range->last < *range->complete_length, "last past the object");
  return 0;
}
