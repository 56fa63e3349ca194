#include "udc/firmware_model/model_generator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace udc::firmware_model {
namespace {

/// Typical spread of an int8 activation around its zero point [integer steps].
constexpr double kActivationSpread = 40.0;
/// Spread the requantisation aims the outputs at [integer steps].
constexpr double kOutputSpread = 30.0;

/// How a generated layer's weights are drawn.
struct WeightSpec {
  uint32_t bits = 8;      ///< 2..8
  double sparsity = 0.0;  ///< fraction drawn as exact zeros
};

/// `count` weights: zero with probability spec.sparsity, else a non-zero Gaussian draw of
/// half the bitwidth's range, rounded and clamped to it (so pruning alone makes the zeros
/// the codec's zero runs see).
std::vector<int8_t> synthetic_weights(size_t count, const WeightSpec& spec, std::mt19937& rng) {
  const int limit = (1 << (spec.bits - 1)) - 1;
  std::normal_distribution<double> normal(0.0, std::max(1.0, limit / 2.0));
  std::bernoulli_distribution pruned(spec.sparsity);
  std::vector<int8_t> w(count);
  for (int8_t& v : w) {
    if (pruned(rng)) {
      v = 0;
      continue;
    }
    int q = 0;
    while (q == 0) q = int(std::clamp(std::lround(normal(rng)), long(-limit), long(limit)));
    v = int8_t(q);
  }
  return w;
}

/// Requantisation that maps the expected accumulator spread to kOutputSpread.
ModelBuilder::Requant synthetic_requant(const std::vector<int8_t>& weights, uint32_t channels,
                                        std::mt19937& rng) {
  const size_t per_channel = weights.size() / channels;
  ModelBuilder::Requant r;
  std::uniform_real_distribution<double> jitter(0.8, 1.25);
  for (uint32_t c = 0; c < channels; ++c) {
    double energy = 0;
    for (size_t i = 0; i < per_channel; ++i) {
      const double w = weights[c * per_channel + i];
      energy += w * w;
    }
    const double spread = kActivationSpread * std::sqrt(std::max(energy, 1.0));
    const auto [multiplier, shift] =
        int8::quantize_multiplier(kOutputSpread / spread * jitter(rng));
    r.multiplier.push_back(multiplier);
    r.shift.push_back(shift);
    r.bias.push_back(int32_t(std::uniform_real_distribution<double>(-0.5, 0.5)(rng) * spread));
  }
  return r;
}

/// An activation scale of 0.01..0.1 and a zero point of -40..40.
ModelBuilder::Quant random_quant(std::mt19937& rng) {
  return ModelBuilder::Quant{float(std::uniform_real_distribution<double>(0.01, 0.1)(rng)),
                             std::uniform_int_distribution<int32_t>(-40, 40)(rng)};
}

/// None, ReLU or ReLU6, uniformly.
Activation random_activation(std::mt19937& rng) {
  return Activation(std::uniform_int_distribution<int>(0, 2)(rng));
}

/// A bitwidth of 2..8 and one of the sparsity levels the search offers.
WeightSpec random_spec(std::mt19937& rng) {
  static const double sparsities[] = {0.0, 0.3, 0.5, 0.75, 0.9};
  return WeightSpec{uint32_t(std::uniform_int_distribution<int>(2, 8)(rng)),
                    sparsities[std::uniform_int_distribution<int>(0, 4)(rng)]};
}

/// Re-derives every layer's multipliers from a float32 weight scale the way TFLite does
/// (int8::channel_multiplier), so that a generated model is one a .tflite file can hold,
/// as a converter's output would be. Each multiplier moves by less than a float step.
Model with_float_weight_scales(Model model) {
  for (Operation& op : model.operations) {
    if (!has_weights(op.type)) continue;
    const float in = model.tensors[size_t(op.inputs[0])].scale;
    const float out = model.tensors[size_t(op.output)].scale;
    for (size_t c = 0; c < op.multiplier.size(); ++c) {
      const double real = std::ldexp(double(op.multiplier[c]), op.shift[c] - 31);
      const float weight_scale = float(real * double(out) / double(in));
      std::tie(op.multiplier[c], op.shift[c]) = int8::channel_multiplier(in, weight_scale, out);
    }
  }
  return model;
}

}  // namespace

Model random_model(std::mt19937& rng, const RandomModelOptions& options) {
  auto uniform = [&](uint32_t lo, uint32_t hi) {
    return uint32_t(std::uniform_int_distribution<uint32_t>(lo, hi)(rng));
  };
  ModelBuilder b("random");
  int32_t x = b.add_input("input",
                          Shape{uniform(2, options.max_side), uniform(2, options.max_side),
                                uniform(1, options.max_channels)},
                          0.05f, std::uniform_int_distribution<int32_t>(-30, 30)(rng));
  const uint32_t operations = uniform(1, options.max_operations);
  bool flat = false;  // after a reshape to 1x1xN only fully connected layers follow
  for (uint32_t i = 0; i < operations; ++i) {
    const Shape s = b.tensor(x).shape;
    const std::string name = fmt::format("op{}", i);
    if (flat) {
      const uint32_t n = uniform(1, options.max_channels);
      const WeightSpec spec = random_spec(rng);
      std::vector<int8_t> w = synthetic_weights(size_t(n) * b.tensor(x).elements(), spec, rng);
      ModelBuilder::Requant r = synthetic_requant(w, n, rng);
      x = b.fully_connected(name, x, n, std::move(w), spec.bits, std::move(r), random_quant(rng),
                            random_activation(rng));
      continue;
    }
    const uint32_t kind = uniform(0, 9);
    const uint32_t kernel = std::min<uint32_t>({uniform(1, 3) * 2 - 1, s[0], s[1]});
    const uint32_t stride = uniform(1, 2);
    const Padding padding = uniform(0, 1) ? Padding::Same : Padding::Valid;
    if (kind <= 2) {  // conv
      const uint32_t oc = uniform(1, options.max_channels);
      const WeightSpec spec = random_spec(rng);
      std::vector<int8_t> w = synthetic_weights(size_t(oc) * kernel * kernel * s[2], spec, rng);
      ModelBuilder::Requant r = synthetic_requant(w, oc, rng);
      x = b.conv2d(name, x, oc, kernel, stride, padding, std::move(w), spec.bits, std::move(r),
                   random_quant(rng), random_activation(rng));
    } else if (kind == 3) {  // depthwise
      const WeightSpec spec = random_spec(rng);
      std::vector<int8_t> w = synthetic_weights(size_t(s[2]) * kernel * kernel, spec, rng);
      ModelBuilder::Requant r = synthetic_requant(w, s[2], rng);
      x = b.depthwise_conv2d(name, x, kernel, stride, padding, std::move(w), spec.bits,
                             std::move(r), random_quant(rng), random_activation(rng));
    } else if (kind == 4) {  // residual: 1x1 conv keeping the depth, then add
      const WeightSpec spec = random_spec(rng);
      std::vector<int8_t> w = synthetic_weights(size_t(s[2]) * s[2], spec, rng);
      ModelBuilder::Requant r = synthetic_requant(w, s[2], rng);
      const int32_t branch = b.conv2d(name + "_branch", x, s[2], 1, 1, Padding::Same, std::move(w),
                                      spec.bits, std::move(r), random_quant(rng), Activation::Relu);
      const ModelBuilder::Quant q = random_quant(rng);
      x = b.add(name, x, branch,
                int8::add_params(b.tensor(x).scale, b.tensor(branch).scale, q.scale), q,
                random_activation(rng));
    } else if (kind == 5) {
      x = b.max_pool(name, x, std::min<uint32_t>({uniform(2, 3), s[0], s[1]}), stride, padding);
    } else if (kind == 6) {
      x = b.avg_pool(name, x, std::min<uint32_t>({uniform(2, 3), s[0], s[1]}), stride, padding);
    } else if (kind == 7 && s[2] % 4 == 0) {
      x = b.depth_to_space(name, x, 2);
    } else if (kind == 7) {
      x = b.global_avg_pool(name, x);
    } else if (kind == 8) {
      x = b.reshape(name, x, Shape{1, 1, uint32_t(b.tensor(x).elements())});
      flat = true;
    } else {  // reshape keeping a feature map: swap height and width
      x = b.reshape(name, x, Shape{s[1], s[0], s[2]});
    }
  }
  b.mark_output(x);
  return with_float_weight_scales(b.finish());
}

Model mobilenet_like(const MobileNetOptions& options) {
  std::mt19937 rng(options.seed);
  ModelBuilder b(fmt::format("mobilenet_like_{}x{}_w{}_s{:.0f}", options.input_side,
                             options.input_side, options.weight_bits, options.sparsity * 100));
  const WeightSpec first{8, 0.0};
  const WeightSpec rest{options.weight_bits, options.sparsity};
  const ModelBuilder::Quant quant{0.05f, -128};  // ReLU6 outputs: zero point at the bottom
  int32_t x =
      b.add_input("input", Shape{options.input_side, options.input_side, options.input_channels},
                  1.0f / 128, 0);
  auto conv = [&](const std::string& name, uint32_t oc, uint32_t k, uint32_t stride,
                  const WeightSpec& spec) {
    std::vector<int8_t> w = synthetic_weights(size_t(oc) * k * k * b.tensor(x).shape[2], spec, rng);
    ModelBuilder::Requant r = synthetic_requant(w, oc, rng);
    x = b.conv2d(name, x, oc, k, stride, Padding::Same, std::move(w), spec.bits, std::move(r),
                 quant, Activation::Relu6);
  };
  auto separable = [&](const std::string& name, uint32_t oc, uint32_t stride) {
    const uint32_t c = b.tensor(x).shape[2];
    std::vector<int8_t> w = synthetic_weights(size_t(c) * 9, rest, rng);
    ModelBuilder::Requant r = synthetic_requant(w, c, rng);
    x = b.depthwise_conv2d(name + "_dw", x, 3, stride, Padding::Same, std::move(w), rest.bits,
                           std::move(r), quant, Activation::Relu6);
    conv(name + "_pw", oc, 1, 1, rest);
  };
  conv("conv0", 16, 3, 2, first);
  separable("block1", 32, 1);
  separable("block2", 64, 2);
  separable("block3", 128, 2);
  const int32_t shortcut = x;
  separable("block4", 128, 1);
  const ModelBuilder::Quant sum_quant{0.08f, -128};
  x = b.add("block4_add", shortcut, x,
            int8::add_params(b.tensor(shortcut).scale, b.tensor(x).scale, sum_quant.scale),
            sum_quant, Activation::Relu6);
  separable("block5", 256, 2);
  x = b.global_avg_pool("pool", x);
  std::vector<int8_t> w = synthetic_weights(size_t(options.classes) * 256, rest, rng);
  ModelBuilder::Requant r = synthetic_requant(w, options.classes, rng);
  x = b.fully_connected("classifier", x, options.classes, std::move(w), rest.bits, std::move(r),
                        ModelBuilder::Quant{0.1f, 0}, Activation::None);
  b.mark_output(x);
  return with_float_weight_scales(b.finish());
}

Model espcn_like(const EspcnOptions& options) {
  std::mt19937 rng(options.seed);
  ModelBuilder b(fmt::format("espcn_like_x2_{}_w{}_s{:.0f}", options.input_side,
                             options.weight_bits, options.sparsity * 100));
  const WeightSpec first{8, 0.0};
  const WeightSpec rest{options.weight_bits, options.sparsity};
  const ModelBuilder::Quant pixels{1.0f / 255, -128};
  int32_t x = b.add_input("input", Shape{options.input_side, options.input_side, 1}, pixels.scale,
                          pixels.zero_point);
  auto conv = [&](const std::string& name, uint32_t oc, uint32_t k, const WeightSpec& spec,
                  ModelBuilder::Quant quant, Activation activation) {
    std::vector<int8_t> w = synthetic_weights(size_t(oc) * k * k * b.tensor(x).shape[2], spec, rng);
    ModelBuilder::Requant r = synthetic_requant(w, oc, rng);
    x = b.conv2d(name, x, oc, k, 1, Padding::Same, std::move(w), spec.bits, std::move(r), quant,
                 activation);
  };
  const ModelBuilder::Quant features{0.05f, -128};  // ReLU outputs: zero point at the bottom
  conv("feature", 64, 5, first, features, Activation::Relu);
  conv("map", 32, 3, rest, features, Activation::Relu);
  conv("subpixel", 4, 3, rest, pixels, Activation::None);
  b.mark_output(b.depth_to_space("upscale", x, 2));
  return with_float_weight_scales(b.finish());
}

}  // namespace udc::firmware_model
