// ChunkedDecoder on hostile bytes: bounded output, and the same bytes split at fuzzer-chosen points decode to the
// same body, consume the same bytes and end the same way as one feed.
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "http/chunked_decoder.hpp"

namespace {

using ringfetch::http::ChunkedDecoder;

struct Outcome {
  ChunkedDecoder::Progress progress = ChunkedDecoder::Progress::kNeedMore;
  size_t consumed = 0;
  std::string body;
};

Outcome decode(const std::vector<std::span<const char>>& slices) {
  ringfetch::http::ChunkedDecoderLimits limits;
  limits.max_body_bytes = 1 << 16;  // small, so the limit itself is explored
  ChunkedDecoder decoder(limits);
  Outcome outcome;
  for (std::span<const char> slice : slices) {
    const ChunkedDecoder::Result r = decoder.feed(slice, &outcome.body);
    outcome.consumed += r.consumed;
    outcome.progress = r.progress;
    if (r.progress != ChunkedDecoder::Progress::kNeedMore) break;
    RINGFETCH_FUZZ_CHECK(r.consumed == slice.size(), "kNeedMore left bytes of a slice unconsumed");
  }
  RINGFETCH_FUZZ_CHECK(outcome.body.size() <= limits.max_body_bytes, "decoded past the limit");
  RINGFETCH_FUZZ_CHECK(outcome.body.size() == decoder.decoded_bytes(), "decoded_bytes() disagrees");
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ringfetch::fuzz::SplitInput input = ringfetch::fuzz::split_input(data, size);
  const Outcome one = decode({input.text});
  const Outcome many = decode(input.slices());
  RINGFETCH_FUZZ_CHECK(one.progress == many.progress, "split feed ended differently");
  if (one.progress != ChunkedDecoder::Progress::kError) {
    RINGFETCH_FUZZ_CHECK(one.body == many.body, "split feed decoded a different body");
  }
  if (one.progress == ChunkedDecoder::Progress::kDone) {
    RINGFETCH_FUZZ_CHECK(one.consumed == many.consumed, "split feed consumed a different body");
  }
  return 0;
}
