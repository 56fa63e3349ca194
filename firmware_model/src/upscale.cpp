#include "udc/firmware_model/upscale.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace udc::firmware_model {

UpscalerShape upscaler_shape(const Model& model) {
  if (model.inputs.size() != 1 || model.outputs.empty()) {
    throw std::invalid_argument(
        fmt::format("model {}: a super-resolution model has one input (it has {}) and an output",
                    model.name, model.inputs.size()));
  }
  const Shape in = model.tensors[size_t(model.inputs[0])].shape;
  const Shape out = model.tensors[size_t(model.outputs[0])].shape;
  const uint32_t scale = out[0] / in[0];
  if (in[2] != 1 || out[2] != 1 || scale < 2 || out[0] != scale * in[0] ||
      out[1] != scale * in[1]) {
    throw std::invalid_argument(fmt::format(
        "model {}: input {}x{}x{} and output {}x{}x{} are not a one-channel image and its "
        "upscale by 2 or more",
        model.name, in[0], in[1], in[2], out[0], out[1], out[2]));
  }
  return UpscalerShape{in[0], in[1], scale};
}

uint32_t receptive_radius(const Model& model) {
  double radius = 0;
  double step = 1;  // input pixels per pixel of the current tensor
  for (const Operation& op : model.operations) {
    if (traits(op.type).windowed) {
      radius += double(std::max(op.kernel_h, op.kernel_w) - 1) / 2 * step;
      step *= std::max(op.stride_h, op.stride_w);
    } else if (op.type == OpType::DepthToSpace) {
      step /= op.block_size;
    }
  }
  return uint32_t(std::ceil(radius - 1e-9));
}

std::vector<uint8_t> upscale_image(const Model& model, const uint8_t* pixels, uint32_t height,
                                   uint32_t width, uint32_t margin, const ModelRunner& run) {
  const UpscalerShape shape = upscaler_shape(model);
  if (2 * margin >= shape.height || 2 * margin >= shape.width) {
    throw std::invalid_argument(
        fmt::format("model {}: margin {} leaves no centre of its {}x{} tile", model.name, margin,
                    shape.height, shape.width));
  }
  const TensorInfo& in = model.tensors[size_t(model.inputs[0])];
  const TensorInfo& out = model.tensors[size_t(model.outputs[0])];
  const uint32_t s = shape.scale;
  const uint32_t core_h = shape.height - 2 * margin, core_w = shape.width - 2 * margin;
  const uint32_t out_w = width * s;
  std::vector<uint8_t> result(size_t{height} * s * out_w);
  TensorValues tile(size_t{shape.height} * shape.width);
  for (uint32_t y0 = 0; y0 < height; y0 += core_h) {
    for (uint32_t x0 = 0; x0 < width; x0 += core_w) {
      for (uint32_t ty = 0; ty < shape.height; ++ty) {
        for (uint32_t tx = 0; tx < shape.width; ++tx) {
          const int64_t y = int64_t{y0} + ty - margin, x = int64_t{x0} + tx - margin;
          int32_t q = in.zero_point;
          if (y >= 0 && y < height && x >= 0 && x < width) {
            const double real = pixels[size_t(y) * width + size_t(x)] / 255.0;
            q = int32_t(std::lround(real / double(in.scale))) + in.zero_point;
          }
          tile[size_t{ty} * shape.width + tx] = int8_t(std::clamp(q, -128, 127));
        }
      }
      const TensorValues up = run(tile);
      const uint32_t rows = std::min(core_h, height - y0) * s;
      const uint32_t cols = std::min(core_w, width - x0) * s;
      for (uint32_t r = 0; r < rows; ++r) {
        for (uint32_t c = 0; c < cols; ++c) {
          const int8_t q = up[size_t(margin * s + r) * shape.width * s + margin * s + c];
          const double value = double(out.scale) * (q - out.zero_point) * 255.0;
          result[size_t(y0 * s + r) * out_w + x0 * s + c] =
              uint8_t(std::clamp<long>(std::lround(value), 0, 255));
        }
      }
    }
  }
  return result;
}

}  // namespace udc::firmware_model
