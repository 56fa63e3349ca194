// Codec throughput on 1 Mi weights of each test-vector distribution, in bytes of
// int8 weights per second (SetBytesProcessed). Run: build/benches/codec_bench
#include <benchmark/benchmark.h>

#include "udc/compression/decoder.hpp"
#include "udc/compression/encoder.hpp"
#include "udc/compression/size_estimate.hpp"
#include "udc/compression/synthetic_weights.hpp"

namespace {

namespace codec = udc::compression;
constexpr size_t kWeights = size_t{1} << 20;
constexpr uint64_t kSeed = 42;

void set_counters(benchmark::State& state, const std::vector<int8_t>& weights,
                  size_t stream_bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * weights.size()));
  state.counters["bits_per_weight"] = 8.0 * static_cast<double>(stream_bytes) / weights.size();
}

void BM_Encode(benchmark::State& state, const std::string& distribution) {
  const std::vector<int8_t> weights = codec::synthetic_weights(distribution, kWeights, kSeed);
  codec::WeightEncoder encoder;
  size_t bytes = 0;
  for (auto _ : state) {
    std::vector<uint8_t> stream = encoder.encode(weights.data(), weights.size());
    bytes = stream.size();
    benchmark::DoNotOptimize(stream.data());
  }
  set_counters(state, weights, bytes);
}

void BM_Decode(benchmark::State& state, const std::string& distribution) {
  const std::vector<int8_t> weights = codec::synthetic_weights(distribution, kWeights, kSeed);
  const std::vector<uint8_t> stream = codec::encode_weights(weights.data(), weights.size());
  std::vector<int16_t> out(weights.size());
  for (auto _ : state) {
    codec::StreamDecoder decoder(stream.data(), stream.size());
    const size_t got = decoder.read(out.data(), out.size());
    if (got != weights.size()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, weights, stream.size());
}

void BM_ExactSize(benchmark::State& state, const std::string& distribution) {
  const std::vector<int8_t> weights = codec::synthetic_weights(distribution, kWeights, kSeed);
  codec::WeightEncoder encoder;
  uint64_t bytes = 0;
  for (auto _ : state) {
    bytes = encoder.encoded_bytes(weights.data(), weights.size());
    benchmark::DoNotOptimize(bytes);
  }
  set_counters(state, weights, bytes);
}

void BM_HistogramEstimate(benchmark::State& state, const std::string& distribution) {
  const std::vector<int8_t> weights = codec::synthetic_weights(distribution, kWeights, kSeed);
  const codec::WeightHistogram histogram =
      codec::WeightHistogram::of(weights.data(), weights.size());
  uint64_t bytes = 0;
  for (auto _ : state) {
    bytes = codec::estimate_stream_size(histogram).stream_bytes;
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["estimate_bits_per_weight"] = 8.0 * static_cast<double>(bytes) / weights.size();
}

int register_all() {
  for (const std::string& name : codec::standard_distributions()) {
    benchmark::RegisterBenchmark(("encode/" + name).c_str(), BM_Encode, name)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("decode/" + name).c_str(), BM_Decode, name)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("exact_size/" + name).c_str(), BM_ExactSize, name)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("estimate/" + name).c_str(), BM_HistogramEstimate, name)
        ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
