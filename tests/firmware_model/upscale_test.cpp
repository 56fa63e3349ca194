// Tiled super-resolution inference: a nearest-neighbour upscaler built from a 1x1
// convolution and depth-to-space reproduces pixel replication exactly at any image size,
// and a 3x3 network run on tiles with a margin of its receptive radius equals the same
// network run over the whole image at once.
#include <gtest/gtest.h>

#include <random>

#include "udc/firmware_model/upscale.hpp"

namespace udc::firmware_model {
namespace {

/// Input side x side x 1 (one step per 8-bit value, zero point -128) -> conv -> d2s 2.
Model upscaler(uint32_t height, uint32_t width, uint32_t kernel, const std::vector<int8_t>& weights,
               const ModelBuilder::Requant& requant) {
  ModelBuilder b("upscaler");
  const float step = 1.0f / 255;
  const int32_t x = b.add_input("in", Shape{height, width, 1}, step, -128);
  const int32_t c = b.conv2d("conv", x, 4, kernel, 1, Padding::Same, weights, 8, requant,
                             ModelBuilder::Quant{step, -128}, Activation::None);
  b.mark_output(b.depth_to_space("d2s", c, 2));
  return b.finish();
}

ModelRunner interpreter(const Model& model) {
  return [&model](const TensorValues& input) {
    return run_reference(model, {input})[size_t(model.outputs[0])];
  };
}

std::vector<uint8_t> random_image(uint32_t height, uint32_t width, std::mt19937& rng) {
  std::vector<uint8_t> image(size_t{height} * width);
  for (uint8_t& v : image) v = uint8_t(rng());
  return image;
}

TEST(Upscale, NearestNeighbourModelReplicatesPixelsAtAnySize) {
  // Four output channels, each the input (weight 1, requantisation 1.0): depth-to-space
  // spreads them over the 2x2 block.
  ModelBuilder::Requant identity{
      {0, 0, 0, 0}, std::vector<int32_t>(4, 1 << 30), std::vector<int32_t>(4, 1)};
  const Model model = upscaler(8, 8, 1, std::vector<int8_t>(4, 1), identity);
  EXPECT_EQ(upscaler_shape(model).scale, 2u);
  EXPECT_EQ(receptive_radius(model), 0u);
  std::mt19937 rng(1);
  for (const auto& [h, w] : {std::pair<uint32_t, uint32_t>{21, 13}, {8, 8}, {3, 30}}) {
    const std::vector<uint8_t> image = random_image(h, w, rng);
    for (uint32_t margin : {0u, 1u, 3u}) {
      const std::vector<uint8_t> up =
          upscale_image(model, image.data(), h, w, margin, interpreter(model));
      ASSERT_EQ(up.size(), size_t{h} * w * 4);
      for (uint32_t y = 0; y < 2 * h; ++y) {
        for (uint32_t x = 0; x < 2 * w; ++x) {
          ASSERT_EQ(up[size_t{y} * 2 * w + x], image[size_t{y / 2} * w + x / 2])
              << h << "x" << w << " margin " << margin << " at " << y << "," << x;
        }
      }
    }
  }
}

TEST(Upscale, TilesWithTheReceptiveRadiusEqualOneWholeImageRun) {
  std::mt19937 rng(2);
  std::vector<int8_t> weights(4 * 9);
  for (int8_t& v : weights) v = int8_t(int(rng() % 15) - 7);
  ModelBuilder::Requant requant{{300, -200, 0, 50},
                                std::vector<int32_t>(4, 1 << 30),
                                std::vector<int32_t>(4, -2)};  // a quarter of the sums
  const uint32_t h = 19, w = 23;
  const Model tile = upscaler(8, 9, 3, weights, requant);
  const Model whole = upscaler(h, w, 3, weights, requant);
  EXPECT_EQ(receptive_radius(tile), 1u);
  const std::vector<uint8_t> image = random_image(h, w, rng);
  const std::vector<uint8_t> expected =
      upscale_image(whole, image.data(), h, w, 0, interpreter(whole));
  EXPECT_EQ(upscale_image(tile, image.data(), h, w, 1, interpreter(tile)), expected);
  EXPECT_EQ(upscale_image(tile, image.data(), h, w, 2, interpreter(tile)), expected);
  // Without the margin the tiles' edges read padding inside the image: not equal.
  EXPECT_NE(upscale_image(tile, image.data(), h, w, 0, interpreter(tile)), expected);
  EXPECT_THROW(upscale_image(tile, image.data(), h, w, 4, interpreter(tile)),
               std::invalid_argument);
}

}  // namespace
}  // namespace udc::firmware_model
