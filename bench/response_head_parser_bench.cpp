// Microbenchmark of ResponseHeadParser on the head every ranged GET to nginx returns (206 with Content-Range and
// ETag), fed whole and in the small slices a socket may deliver. The parser is reset and reused, as a connection
// does, so the numbers include no allocation. Linked with benchmark_main (no main here).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <span>
#include <string_view>

#include "http/response_head_parser.hpp"

namespace {

using ringfetch::http::ResponseHeadParser;

constexpr std::string_view kNginx206Head =
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

void parse_in_slices(benchmark::State& state, size_t slice_bytes) {
  ResponseHeadParser parser;
  for (auto _ : state) {
    parser.reset();
    ResponseHeadParser::Result result;
    for (size_t offset = 0; offset < kNginx206Head.size(); offset += result.consumed) {
      const size_t length = std::min(slice_bytes, kNginx206Head.size() - offset);
      result = parser.feed(std::span<const char>(kNginx206Head.data() + offset, length));
      if (result.progress != ResponseHeadParser::Progress::kNeedMore) break;
    }
    if (result.progress != ResponseHeadParser::Progress::kComplete) {
      state.SkipWithError(parser.status().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(parser.head().content_range);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kNginx206Head.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_ResponseHeadParser_Nginx206_Whole(benchmark::State& state) { parse_in_slices(state, kNginx206Head.size()); }
BENCHMARK(BM_ResponseHeadParser_Nginx206_Whole);

// A head split across reads, e.g. by a small TLS record or a slow peer.
void BM_ResponseHeadParser_Nginx206_Slices(benchmark::State& state) {
  parse_in_slices(state, static_cast<size_t>(state.range(0)));
}
BENCHMARK(BM_ResponseHeadParser_Nginx206_Slices)->Arg(64)->Arg(16);

// Header lookup after parsing, as the S3 layer does for x-amz-* fields.
void BM_ResponseHead_Find(benchmark::State& state) {
  ResponseHeadParser parser;
  parser.feed(std::span<const char>(kNginx206Head.data(), kNginx206Head.size()));
  for (auto _ : state) benchmark::DoNotOptimize(parser.head().find("last-modified"));
}
BENCHMARK(BM_ResponseHead_Find);

}  // namespace
