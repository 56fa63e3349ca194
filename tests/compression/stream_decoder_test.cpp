// The incremental decoder hands out the same weights whatever the read sizes.
#include <gtest/gtest.h>

#include "compression/test_util.hpp"
#include "udc/compression/decoder.hpp"

namespace udc::compression {
namespace {

std::vector<int16_t> read_in_pieces(const std::vector<uint8_t>& stream, size_t piece) {
  StreamDecoder decoder(stream.data(), stream.size());
  std::vector<int16_t> out;
  std::vector<int16_t> buffer(piece);
  for (;;) {
    const size_t got = decoder.read(buffer.data(), piece);
    out.insert(out.end(), buffer.begin(), buffer.begin() + static_cast<long>(got));
    EXPECT_EQ(decoder.weights_read(), out.size());
    if (got < piece) break;
  }
  EXPECT_TRUE(decoder.finished());
  EXPECT_FALSE(decoder.error().has_value());
  return out;
}

TEST(StreamDecoder, PieceSizeDoesNotChangeOutput) {
  for (const std::string name :
       {"runs_65536_s12", "gauss8_50_65536_s7", "zeros_4096_s3", "gauss8_20_33_s15"}) {
    const std::vector<uint8_t> stream = test::read_file(test::data_path(name + ".mlw"));
    const std::vector<uint8_t> raw = test::read_file(test::data_path(name + ".bin"));
    const std::vector<int8_t> expected(raw.begin(), raw.end());
    for (size_t piece : {1u, 3u, 8u, 1000u, 70000u}) {
      EXPECT_TRUE(test::same_weights(read_in_pieces(stream, piece), expected))
          << name << " in pieces of " << piece;
    }
  }
}

TEST(StreamDecoder, BitPositionAdvancesMonotonically) {
  const std::vector<uint8_t> stream = test::read_file(test::data_path("gauss8_50_65536_s7.mlw"));
  StreamDecoder decoder(stream.data(), stream.size());
  std::vector<int16_t> buffer(4096);
  uint64_t last = 0;
  while (decoder.read(buffer.data(), buffer.size()) == buffer.size()) {
    EXPECT_GE(decoder.bit_position(), last);
    last = decoder.bit_position();
  }
  EXPECT_EQ(decoder.bit_position(), stream.size() * 8);
}

}  // namespace
}  // namespace udc::compression
