// Corrupt and truncated streams end in a DecodeError naming offset and field:
// never a crash, an out-of-bounds read (the sanitizer build checks) or a hang.
#include <gtest/gtest.h>

#include <random>

#include "compression/test_util.hpp"
#include "udc/compression/decoder.hpp"
#include "udc/compression/encoder.hpp"
#include "udc/compression/synthetic_weights.hpp"

namespace udc::compression {
namespace {

/// Writes fields LSB first, as the format does, to build streams by hand.
struct FieldWriter {
  std::vector<uint8_t> bytes;
  uint64_t bit = 0;
  FieldWriter& put(uint32_t value, int bits) {
    for (int i = 0; i < bits; ++i, ++bit) {
      if (bit / 8 >= bytes.size()) bytes.push_back(0);
      if ((value >> i) & 1) bytes[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
    return *this;
  }
};

DecodeResult decode(const std::vector<uint8_t>& bytes, uint64_t max_weights = 1u << 22) {
  DecodeOptions options;
  options.max_weights = max_weights;
  return decode_stream(bytes.data(), bytes.size(), options);
}

TEST(CorruptStream, EmptyInput) {
  const DecodeResult result = decode({});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error->bit_offset, 0u);
  EXPECT_EQ(result.error->field, "ZDIV");
}

TEST(CorruptStream, ReservedZeroRunDivisor) {
  FieldWriter w;
  w.put(4, 3).put(0, 13);
  const DecodeResult result = decode(w.bytes);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error->field, "ZDIV");
  EXPECT_EQ(result.error->bit_offset, 0u);
}

TEST(CorruptStream, ReservedWeightDivisor) {
  FieldWriter w;
  w.put(6, 3).put(0, 15).put(6, 3).put(0, 7);
  const DecodeResult result = decode(w.bytes);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error->field, "WDIV");
  EXPECT_EQ(result.error->bit_offset, 18u);
}

TEST(CorruptStream, FirstSliceWithoutPalette) {
  FieldWriter w;
  w.put(6, 3).put(0, 15).put(0, 3).put(0, 1).put(0, 1).put(0, 9);
  const DecodeResult result = decode(w.bytes);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error->field, "NEWPAL");
  EXPECT_EQ(result.error->bit_offset, 22u);
}

TEST(CorruptStream, MissingEndMarker) {
  const std::vector<int8_t> weights = synthetic_weights("gauss4_0", 100, 1);
  std::vector<uint8_t> stream = encode_weights(weights.data(), weights.size());
  // Drop the end marker and padding: keep only the bytes holding slice bits.
  const uint64_t payload = test::decoded_payload_bits(stream);
  stream.resize(payload / 8);
  const DecodeResult result = decode(stream);
  ASSERT_FALSE(result.ok());
  EXPECT_LE(result.error->bit_offset, payload);
}

TEST(CorruptStream, WeightLimitStopsRunawayZeroRuns) {
  const std::vector<int8_t> zeros(100000, 0);
  const std::vector<uint8_t> stream = encode_weights(zeros.data(), zeros.size());
  const DecodeResult result = decode(stream, 50000);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error->message.find("50000"), std::string::npos) << result.error->to_string();
  EXPECT_TRUE(decode(stream, 100000).ok());
}

TEST(CorruptStream, EveryTruncationFailsCleanly) {
  for (const std::string name : {"gauss8_20_33_s15", "gauss4_70_65536_s10", "runs_65536_s12"}) {
    const std::vector<uint8_t> stream = test::read_file(test::data_path(name + ".mlw"));
    const uint64_t payload = test::decoded_payload_bits(stream);
    const size_t step = std::max<size_t>(1, stream.size() / 97);
    for (size_t size = 0; size * 8 < payload; size += step) {
      const std::vector<uint8_t> cut(stream.begin(), stream.begin() + static_cast<long>(size));
      const DecodeResult result = decode(cut);
      ASSERT_FALSE(result.ok()) << name << " cut to " << size;
      EXPECT_LE(result.error->bit_offset, size * 8) << name;
      EXPECT_FALSE(result.error->field.empty());
    }
  }
}

TEST(CorruptStream, MutatedStreamsTerminate) {
  std::mt19937_64 rng(99);
  std::vector<std::vector<uint8_t>> seeds;
  for (const std::string& name : test::reference_vector_names()) {
    seeds.push_back(test::read_file(test::data_path(name + ".mlw")));
  }
  size_t failures = 0;
  constexpr int kMutants = 3000;
  for (int i = 0; i < kMutants; ++i) {
    std::vector<uint8_t> stream = seeds[rng() % seeds.size()];
    if (stream.size() > 4096) stream.resize(4096 + rng() % 64);
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) {
      switch (rng() % 3) {
        case 0:
          stream[rng() % stream.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          stream[rng() % stream.size()] = static_cast<uint8_t>(rng());
          break;
        default:
          stream.resize(1 + rng() % stream.size());
          break;
      }
    }
    const DecodeResult result = decode(stream, 1u << 20);
    if (!result.ok()) {
      ++failures;
      EXPECT_LE(result.error->bit_offset, stream.size() * 8);
    }
    EXPECT_LE(result.weights.size(), 1u << 20);
  }
  // Most random damage must be detected rather than silently decoded.
  EXPECT_GT(failures, kMutants / 2);
}

}  // namespace
}  // namespace udc::compression
