// Microbenchmarks of SigV4 signing: the per-request cost of a typical ranged GET (what every 8 MiB part pays), the same
// from several threads sharing one signer (the signing-key cache is behind a mutex), and hashing an 8 MiB PUT part.
// Linked with benchmark_main.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ringfetch/s3/sigv4.hpp"

namespace {

using ringfetch::s3::Credentials;
using ringfetch::s3::SignableRequest;
using ringfetch::s3::SigV4Signer;

const std::chrono::system_clock::time_point kNow{std::chrono::seconds(1700000000)};

const SigV4Signer& shared_signer() {
  static const SigV4Signer signer(
      Credentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEJr//token=="},
      "us-east-1");
  return signer;
}

SignableRequest ranged_get() {
  SignableRequest request;
  request.method = "GET";
  request.host = "training-data.s3.us-east-1.amazonaws.com";
  request.path = "/checkpoints/step 120000/__0_0.distcp";
  request.headers = {{"Range", "bytes=8388608-16777215"}, {"If-Match", "\"9b2cf535f27731c974343645a3985328\""},
                     {"User-Agent", "ringfetch/0.1"}};
  return request;  // payload_sha256 defaults to UNSIGNED-PAYLOAD
}

void BM_SignRangedGet(benchmark::State& state) {
  const SigV4Signer& signer = shared_signer();
  const SignableRequest base = ranged_get();
  for (auto _ : state) {
    SignableRequest request = base;
    signer.sign(request, kNow);
    benchmark::DoNotOptimize(request.headers.back().second.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignRangedGet);
BENCHMARK(BM_SignRangedGet)->Threads(4)->UseRealTime();

void BM_RequestTarget(benchmark::State& state) {
  const SignableRequest request = ranged_get();
  for (auto _ : state) benchmark::DoNotOptimize(ringfetch::s3::request_target(request));
}
BENCHMARK(BM_RequestTarget);

void BM_Sha256PutPart(benchmark::State& state) {
  const std::vector<std::byte> part(static_cast<size_t>(state.range(0)), std::byte{0x5a});
  for (auto _ : state) benchmark::DoNotOptimize(ringfetch::s3::sha256_hex(part));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Sha256PutPart)->Arg(8 << 20);

}  // namespace
