// Our encoder's streams decode to their input for every shape of input, and the
// planned size is the written size.
#include <gtest/gtest.h>

#include <random>

#include "compression/test_util.hpp"
#include "udc/compression/decoder.hpp"
#include "udc/compression/encoder.hpp"
#include "udc/compression/synthetic_weights.hpp"

namespace udc::compression {
namespace {

template <class Weight>
void expect_round_trip(const std::vector<Weight>& weights, const std::string& what) {
  WeightEncoder encoder;
  const uint64_t planned = encoder.encoded_bytes(weights.data(), weights.size());
  const std::vector<uint8_t> stream = encoder.encode(weights.data(), weights.size());
  EXPECT_EQ(stream.size(), planned) << what;
  EXPECT_EQ(stream.size() % 16, 0u) << what;
  const DecodeResult result = decode_stream(stream.data(), stream.size());
  ASSERT_TRUE(result.ok()) << what << ": " << result.error->to_string();
  EXPECT_TRUE(test::same_weights(result.weights, weights)) << what;
}

TEST(RoundTrip, EveryDistributionAtSliceAndChunkEdges) {
  const std::vector<std::string> names = {"gauss8_0",  "gauss8_50", "gauss8_90", "gauss4_0",
                                          "gauss4_70", "gauss2_50", "uniform8",  "runs",
                                          "pal4x",     "zeros",     "const"};
  const std::vector<size_t> sizes = {0,   1,   2,   7,     11,    12,    13,
                                     127, 128, 129, 32767, 32768, 32769, 70001};
  uint64_t seed = 1;
  for (const std::string& name : names) {
    for (size_t size : sizes) {
      expect_round_trip(synthetic_weights(name, size, seed++), name + " x " + std::to_string(size));
    }
  }
}

TEST(RoundTrip, FullNineBitRange) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> value(-255, 255);
  std::vector<int16_t> weights(20000);
  for (int16_t& w : weights) w = static_cast<int16_t>(value(rng));
  weights[0] = -255;
  weights[1] = 255;
  expect_round_trip(weights, "uniform -255..255");
}

TEST(RoundTrip, SmallMagnitudesUseCheapModes) {
  // Values 0..3 only: uncompressed or truncated codes become competitive.
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> value(-1, 2);
  std::vector<int8_t> weights(50000);
  for (int8_t& w : weights) w = static_cast<int8_t>(value(rng));
  expect_round_trip(weights, "values -1..2");
}

TEST(RoundTrip, NonStationaryInputGetsSeveralSlices) {
  std::vector<int8_t> weights = synthetic_weights("gauss2_50", 40000, 3);
  const std::vector<int8_t> wide = synthetic_weights("gauss8_0", 40000, 4);
  weights.insert(weights.end(), wide.begin(), wide.end());
  WeightEncoder encoder;
  const EncodingPlan& plan = encoder.plan(weights.data(), weights.size());
  ASSERT_EQ(plan.sections.size(), 1u);
  EXPECT_GT(plan.sections[0].slices.size(), 1u);
  expect_round_trip(weights, "narrow then wide");
}

TEST(RoundTrip, LongZeroRunsAndLoneValues) {
  std::vector<int8_t> weights(300001, 0);
  weights[200000] = 5;
  expect_round_trip(weights, "one value in 300001");
  weights.assign(100000, 0);
  weights.back() = -128;
  expect_round_trip(weights, "value at the end");
  weights.assign(100000, 0);
  weights.front() = 127;
  expect_round_trip(weights, "value at the start");
  for (size_t size : {1u, 2u, 3u, 100000u}) {
    expect_round_trip(std::vector<int8_t>(size, 0), "zeros x " + std::to_string(size));
  }
}

TEST(RoundTrip, EncoderReuseGivesIdenticalStreams) {
  const std::vector<int8_t> a = synthetic_weights("gauss4_70", 5000, 1);
  const std::vector<int8_t> b = synthetic_weights("uniform8", 3000, 2);
  WeightEncoder reused;
  const std::vector<uint8_t> first = reused.encode(a.data(), a.size());
  reused.encode(b.data(), b.size());
  EXPECT_EQ(reused.encode(a.data(), a.size()), first);
  EXPECT_EQ(WeightEncoder().encode(a.data(), a.size()), first);
}

TEST(Encoder, RejectsValuesOutsideNineBitSignMagnitude) {
  std::vector<int16_t> weights = {0, 1, -255, 255, 256};
  WeightEncoder encoder;
  try {
    encoder.encode(weights.data(), weights.size());
    FAIL() << "256 was accepted";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("weight 4 is 256"), std::string::npos) << e.what();
  }
  weights.back() = -256;
  EXPECT_THROW(encoder.encoded_bytes(weights.data(), weights.size()), std::out_of_range);
}

TEST(Encoder, SparsityAndFewerBitsShrinkTheStream) {
  // Independent expectation: entropy falls with sparsity and bitwidth, so must size.
  WeightEncoder encoder;
  auto size = [&](const std::string& name) {
    const std::vector<int8_t> w = synthetic_weights(name, 65536, 5);
    return encoder.encoded_bytes(w.data(), w.size());
  };
  EXPECT_GT(size("gauss8_0"), size("gauss8_50"));
  EXPECT_GT(size("gauss8_50"), size("gauss8_90"));
  EXPECT_GT(size("gauss8_0"), size("gauss4_0"));
  EXPECT_GT(size("gauss4_0"), size("gauss4_70"));
  EXPECT_GT(size("gauss4_0"), size("gauss2_50"));
}

}  // namespace
}  // namespace udc::compression
