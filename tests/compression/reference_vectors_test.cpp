// Bit compatibility with the reference (Vela mlw_codec) streams in tests/data/mlw.
#include <gtest/gtest.h>

#include <cstdio>

#include "compression/test_util.hpp"
#include "udc/compression/decoder.hpp"
#include "udc/compression/encoder.hpp"

namespace udc::compression {
namespace {

class ReferenceVectorTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::vector<uint8_t> raw = test::read_file(test::data_path(GetParam() + ".bin"));
    weights_.assign(raw.begin(), raw.end());
    reference_ = test::read_file(test::data_path(GetParam() + ".mlw"));
    ASSERT_FALSE(reference_.empty()) << "missing " << GetParam() << ".mlw";
  }
  std::vector<int8_t> weights_;
  std::vector<uint8_t> reference_;
};

TEST_P(ReferenceVectorTest, ReferenceStreamDecodesToItsWeights) {
  const DecodeResult result = decode_stream(reference_.data(), reference_.size());
  ASSERT_TRUE(result.ok()) << result.error->to_string();
  EXPECT_TRUE(test::same_weights(result.weights, weights_));
}

TEST_P(ReferenceVectorTest, OurStreamRoundTripsAndIsNoLarger) {
  WeightEncoder encoder;
  const std::vector<uint8_t> ours = encoder.encode(weights_.data(), weights_.size());
  const DecodeResult result = decode_stream(ours.data(), ours.size());
  ASSERT_TRUE(result.ok()) << result.error->to_string();
  EXPECT_TRUE(test::same_weights(result.weights, weights_));
  EXPECT_LE(ours.size(), reference_.size());
  const uint64_t our_bits = test::decoded_payload_bits(ours);
  const uint64_t reference_bits = test::decoded_payload_bits(reference_);
  std::printf(
      "[ size     ] %-24s ours %7zu B (%8llu payload bits)  reference %7zu B (%8llu bits)\n",
      GetParam().c_str(), ours.size(), static_cast<unsigned long long>(our_bits), reference_.size(),
      static_cast<unsigned long long>(reference_bits));
}

TEST_P(ReferenceVectorTest, PlanPredictsTheExactStream) {
  WeightEncoder encoder;
  const EncodingPlan plan = encoder.plan(weights_.data(), weights_.size());
  const std::vector<uint8_t> ours = encoder.encode(weights_.data(), weights_.size());
  EXPECT_EQ(plan.stream_bytes(), ours.size());
  // The decoder counts the bits of every slice independently of the planner.
  EXPECT_EQ(plan.payload_bits, test::decoded_payload_bits(ours));
}

INSTANTIATE_TEST_SUITE_P(Mlw, ReferenceVectorTest,
                         ::testing::ValuesIn(test::reference_vector_names()),
                         [](const auto& param_info) { return param_info.param; });

TEST(ReferenceFormat, ConcatenatedStreamsDecodeInOrder) {
  const std::vector<uint8_t> a = test::read_file(test::data_path("uniform8_7_s2.mlw"));
  const std::vector<uint8_t> b = test::read_file(test::data_path("gauss8_20_33_s15.mlw"));
  std::vector<uint8_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  const DecodeResult result = decode_stream(both.data(), both.size());
  ASSERT_TRUE(result.ok()) << result.error->to_string();
  std::vector<int8_t> expected;
  for (const char* name : {"uniform8_7_s2.bin", "gauss8_20_33_s15.bin"}) {
    const std::vector<uint8_t> raw = test::read_file(test::data_path(name));
    expected.insert(expected.end(), raw.begin(), raw.end());
  }
  EXPECT_TRUE(test::same_weights(result.weights, expected));
}

}  // namespace
}  // namespace udc::compression
