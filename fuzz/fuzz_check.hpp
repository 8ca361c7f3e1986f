// Shared pieces of the fuzz targets: a check that stops the run with a message (libFuzzer then saves the input as
// a crash), and the cutting of an input into the slices a stateful parser is fed, at points the fuzzer chooses.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

namespace ringfetch::fuzz {

#define RINGFETCH_FUZZ_CHECK(condition, what)                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "fuzz check failed at %s:%d: %s\n", __FILE__, __LINE__, (what)); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

// The first byte of the input says how many cut points follow (0-7), each a 16-bit offset; the rest is the text.
// The text is then fed as slices ending at those offsets (taken modulo its length, sorted), so the fuzzer explores
// splits and the text together.
struct SplitInput {
  std::span<const char> text;
  std::vector<size_t> cuts;  // ascending offsets into text, each in (0, text.size())

  std::vector<std::span<const char>> slices() const {
    std::vector<std::span<const char>> out;
    size_t begin = 0;
    for (size_t cut : cuts) {
      out.push_back(text.subspan(begin, cut - begin));
      begin = cut;
    }
    out.push_back(text.subspan(begin));
    return out;
  }
};

inline SplitInput split_input(const uint8_t* data, size_t size) {
  SplitInput in;
  if (size == 0) return in;
  const size_t count = data[0] & 7u;
  size_t at = 1;
  std::vector<uint16_t> raw;
  for (size_t i = 0; i < count && at + 2 <= size; ++i, at += 2) {
    raw.push_back(static_cast<uint16_t>(data[at] | (data[at + 1] << 8)));
  }
  in.text = std::span<const char>(reinterpret_cast<const char*>(data + at), size - at);
  for (uint16_t r : raw) {
    if (in.text.size() > 1) in.cuts.push_back(1 + r % (in.text.size() - 1));
  }
  std::sort(in.cuts.begin(), in.cuts.end());
  in.cuts.erase(std::unique(in.cuts.begin(), in.cuts.end()), in.cuts.end());
  return in;
}

}  // namespace ringfetch::fuzz
