// Running a super-resolution model over a whole image of any size: the model's input is
// a fixed tile, so the image is cut into overlapping tiles whose centres are kept.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "udc/firmware_model/model.hpp"
#include "udc/firmware_model/reference_interpreter.hpp"

namespace udc::firmware_model {

/// Runs the model on one input and returns its first output (the reference interpreter
/// or the simulated NPU).
using ModelRunner = std::function<TensorValues(const TensorValues& input)>;

/// A super-resolution model's geometry: one input HxWx1, one output (sH)x(sW)x1.
struct UpscalerShape {
  uint32_t height = 0, width = 0;  ///< input tile [pixels]
  uint32_t scale = 0;              ///< output pixels per input pixel along each axis
};
/// The geometry of `model`; throws std::invalid_argument saying what does not match.
UpscalerShape upscaler_shape(const Model& model);

/// How many input pixels beyond its own an output pixel of the model depends on, along
/// either axis: each window's half-width in the units of the model's input (strides
/// before it multiply, upscaling divides), summed and rounded up. A tile margin of this
/// many pixels makes tiled inference equal to a whole-image run.
uint32_t receptive_radius(const Model& model);

/// Upscales a one-channel 8-bit image (height x width, row-major) by running `model` on
/// tiles of its input size that overlap by `margin` input pixels on each side; each
/// tile's centre is kept. Pixels map to reals v / 255 through the input's quantisation
/// and back from the output's, rounded and clamped to 0..255. Outside the image the tiles
/// read the input's zero point (real 0), which is what the model's own SAME padding reads
/// at the image's edge: with `margin` at least the model's receptive radius, the result
/// equals one run over the whole image. Throws std::invalid_argument when the margin
/// leaves no centre.
std::vector<uint8_t> upscale_image(const Model& model, const uint8_t* pixels, uint32_t height,
                                   uint32_t width, uint32_t margin, const ModelRunner& run);

}  // namespace udc::firmware_model
