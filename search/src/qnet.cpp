#include "qnet.hpp"
#include "collectives.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "udc/int8/fixed_point.hpp"

namespace udc::search {

namespace fm = firmware_model;

// ---------------------------------------------------------------- quantisation helpers

ActQuant act_quant_from_range(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  // A degenerate range still needs a positive step.
  if (hi - lo < 1e-6) hi = lo + 1e-6;
  ActQuant quant;
  quant.scale = float((hi - lo) / 255.0);
  const double zero = -128.0 - lo / double(quant.scale);
  quant.zero_point = int32_t(std::clamp<long>(std::lround(zero), -128, 127));
  return quant;
}

torch::Tensor recover_integers(const torch::Tensor& real, ActQuant quant) {
  return torch::round(real / quant.scale) + quant.zero_point;
}

torch::Tensor dequantize(const torch::Tensor& q, ActQuant quant) {
  return (q - quant.zero_point) * quant.scale;
}

torch::Tensor straight_through(const torch::Tensor& differentiable, const torch::Tensor& value) {
  return differentiable + (value - differentiable).detach();
}

namespace {

template <typename Scalar>
void requantize_loop(const torch::Tensor& acc, torch::Tensor& out, const std::vector<int32_t>& bias,
                     const std::vector<int32_t>& multiplier, const std::vector<int32_t>& shift,
                     int32_t zero_point, int32_t clamp_min, int32_t clamp_max) {
  const int64_t batch = acc.size(0), channels = acc.size(1);
  const int64_t plane = acc.numel() / std::max<int64_t>(1, batch * channels);
  const Scalar* in = acc.data_ptr<Scalar>();
  float* q = out.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t c = 0; c < channels; ++c) {
        const size_t ci = size_t(c);
        const int64_t base = (n * channels + c) * plane;
        for (int64_t i = base; i < base + plane; ++i) {
          // Accumulators are exact integers (see kFloatExactLimit): the cast is exact.
          q[i] = float(int8::requantize(int32_t(in[i]) + bias[ci], multiplier[ci], shift[ci],
                                        zero_point, clamp_min, clamp_max));
        }
      }
    }
  });
}

}  // namespace

torch::Tensor requantize(const torch::Tensor& accumulators, const std::vector<int32_t>& bias,
                         const std::vector<int32_t>& multiplier, const std::vector<int32_t>& shift,
                         int32_t zero_point, int32_t clamp_min, int32_t clamp_max) {
  const torch::Tensor acc = accumulators.contiguous();
  torch::Tensor out = torch::empty(acc.sizes(), torch::kFloat);
  if (acc.scalar_type() == torch::kFloat) {
    requantize_loop<float>(acc, out, bias, multiplier, shift, zero_point, clamp_min, clamp_max);
  } else {
    requantize_loop<double>(acc.to(torch::kDouble), out, bias, multiplier, shift, zero_point,
                            clamp_min, clamp_max);
  }
  return out;
}

torch::Tensor add_integers(const torch::Tensor& a, int32_t za, const torch::Tensor& b, int32_t zb,
                           const int8::AddParams& p, int32_t zero_point) {
  const torch::Tensor ca = a.to(torch::kFloat).contiguous(), cb = b.to(torch::kFloat).contiguous();
  torch::Tensor out = torch::empty(ca.sizes(), torch::kFloat);
  const float *pa = ca.data_ptr<float>(), *pb = cb.data_ptr<float>();
  float* q = out.data_ptr<float>();
  at::parallel_for(0, ca.numel(), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      q[i] = float(
          int8::add(int32_t(pa[i]), za, int32_t(pb[i]), zb, p, zero_point, int8::kMin, int8::kMax));
    }
  });
  return out;
}

torch::Tensor rounded_average(const torch::Tensor& sum, int64_t count) {
  const int64_t half = count / 2;
  const torch::Tensor magnitude = torch::div(sum.abs() + half, count, "floor");
  return torch::where(sum >= 0, magnitude, -magnitude);
}

int32_t weight_limit(uint32_t bits) {
  return (1 << (bits - 1)) - 1;
}

torch::Tensor magnitude_mask(const torch::Tensor& weights, double sparsity) {
  torch::NoGradGuard no_grad;
  const int64_t rows = weights.size(0);
  const int64_t per_row = rows == 0 ? 0 : weights.numel() / rows;
  // Every row keeps its largest weight: a sparsity that rounds to a whole row (0.96 of a
  // 3x3 stem's 9 weights) would cut the channel, and with all of them the network.
  const int64_t zeros = std::clamp<int64_t>(std::llround(sparsity * double(per_row)), 0,
                                            std::max<int64_t>(per_row - 1, 0));
  torch::Tensor mask = torch::ones_like(weights);
  if (zeros == 0) return mask;
  // Stable order: ties broken by position, so the count is exact.
  const torch::Tensor order =
      std::get<1>(weights.abs().reshape({rows, per_row}).sort(/*stable=*/true, 1, false));
  mask.view({rows, per_row}).scatter_(1, order.slice(1, 0, zeros), 0.0);
  return mask;
}

// ---------------------------------------------------------------- RangeObserver

RangeObserver::RangeObserver(torch::nn::Module& owner, const std::string& name) {
  range_ = owner.register_buffer(name, torch::zeros({3}, torch::kDouble));
}

void RangeObserver::observe(const torch::Tensor& values, double momentum, Ranks* ranks) {
  torch::NoGradGuard no_grad;
  double lo = values.min().item<double>(), hi = values.max().item<double>();
  if (several(ranks)) {
    torch::Tensor extremes = torch::tensor({-lo, hi}, torch::kDouble);
    max_over_ranks(ranks, extremes, "activation ranges");
    lo = -extremes[0].item<double>();
    hi = extremes[1].item<double>();
  }
  auto r = range_.accessor<double, 1>();
  if (r[2] == 0.0) {
    r[0] = lo;
    r[1] = hi;
    r[2] = 1.0;
  } else {
    r[0] = momentum * r[0] + (1 - momentum) * lo;
    r[1] = momentum * r[1] + (1 - momentum) * hi;
  }
}

bool RangeObserver::initialized() const {
  return range_[2].item<double>() != 0.0;
}

ActQuant RangeObserver::quant() const {
  auto r = range_.accessor<double, 1>();
  return act_quant_from_range(r[0], r[1]);
}

// ---------------------------------------------------------------- QWeighted

namespace {

fm::Activation to_model_activation(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::None:
      return fm::Activation::None;
    case ActivationKind::Relu:
      return fm::Activation::Relu;
    case ActivationKind::Relu6:
      return fm::Activation::Relu6;
  }
  return fm::Activation::None;
}

/// Largest |sum| a float32 accumulation stays exact for [integers].
constexpr double kFloatExactLimit = double(1 << 24);

}  // namespace

QWeighted::QWeighted(std::string name, Kind kind, uint32_t in_channels, uint32_t in_height,
                     uint32_t in_width, uint32_t out_channels, uint32_t kernel, uint32_t stride,
                     uint32_t bits, double sparsity, ActivationKind activation)
    : name_(std::move(name)),
      kind_(kind),
      in_channels_(in_channels),
      out_channels_(kind == Kind::Depthwise ? in_channels : out_channels),
      kernel_(kind == Kind::FullyConnected ? 1 : kernel),
      stride_(kind == Kind::FullyConnected ? 1 : stride),
      sparsity_(sparsity),
      activation_(activation) {
  std::vector<int64_t> shape;
  double fan_in = 0;
  if (kind_ == Kind::FullyConnected) {
    const int64_t inputs = int64_t(in_channels) * in_height * in_width;
    shape = {int64_t(out_channels_), inputs};
    fan_in = double(inputs);
    bias_ = register_parameter("bias", torch::zeros({int64_t(out_channels_)}));
  } else {
    const fm::WindowAxis y = fm::window_axis(in_height, kernel_, stride_, fm::Padding::Same);
    const fm::WindowAxis x = fm::window_axis(in_width, kernel_, stride_, fm::Padding::Same);
    out_height_ = y.out;
    out_width_ = x.out;
    pad_top_ = y.pad_before;
    pad_bottom_ = y.pad_after;
    pad_left_ = x.pad_before;
    pad_right_ = x.pad_after;
    const int64_t per_output = kind_ == Kind::Depthwise ? 1 : int64_t(in_channels);
    shape = {int64_t(out_channels_), per_output, int64_t(kernel_), int64_t(kernel_)};
    fan_in = double(per_output) * kernel_ * kernel_;
    batch_norm_ = register_module("batch_norm", torch::nn::BatchNorm2d(out_channels_));
  }
  // He initialisation.
  weight_ = register_parameter("weight", torch::randn(shape) * std::sqrt(2.0 / fan_in));
  step_ = register_parameter("step", torch::ones({int64_t(out_channels_)}));
  mask_ = register_buffer("mask", torch::ones(shape));
  weight_bits_ = register_buffer("weight_bits", torch::tensor(float(bits)));
  output_range_ = std::make_unique<RangeObserver>(*this, "output_range");
}

torch::Tensor QWeighted::padded(const torch::Tensor& x) const {
  if (pad_top_ == 0 && pad_bottom_ == 0 && pad_left_ == 0 && pad_right_ == 0) return x;
  return torch::constant_pad_nd(x, {pad_left_, pad_right_, pad_top_, pad_bottom_}, 0.0);
}

torch::Tensor QWeighted::apply(const torch::Tensor& x, const torch::Tensor& w) const {
  if (kind_ == Kind::FullyConnected) {
    // HWC flattening, the layout of the integer model.
    const torch::Tensor flat = x.permute({0, 2, 3, 1}).reshape({x.size(0), -1});
    return torch::matmul(flat, w.t()).reshape({x.size(0), -1, 1, 1});
  }
  const int64_t stride = stride_;
  return torch::conv2d(padded(x), w, torch::Tensor(), torch::IntArrayRef{stride, stride},
                       torch::IntArrayRef{0, 0}, torch::IntArrayRef{1, 1},
                       kind_ == Kind::Depthwise ? int64_t(in_channels_) : 1);
}

torch::Tensor QWeighted::activation(const torch::Tensor& x) const {
  switch (activation_) {
    case ActivationKind::None:
      return x;
    case ActivationKind::Relu:
      return torch::relu(x);
    case ActivationKind::Relu6:
      return torch::clamp(x, 0.0, 6.0);
  }
  return x;
}

std::pair<torch::Tensor, torch::Tensor> QWeighted::folded() const {
  if (kind_ == Kind::FullyConnected) return {weight_, bias_};
  const torch::Tensor scale = fold_scale();
  return {weight_ * scale.reshape({-1, 1, 1, 1}),
          batch_norm_->bias - batch_norm_->running_mean * scale};
}

torch::Tensor QWeighted::fold_scale() const {
  if (kind_ == Kind::FullyConnected) return torch::ones({int64_t(out_channels_)});
  return batch_norm_->weight * torch::rsqrt(batch_norm_->running_var + batch_norm_->options.eps());
}

void QWeighted::keep_integers_across_fold_change(const torch::Tensor& old_fold_scale) {
  torch::NoGradGuard no_grad;
  const torch::Tensor ratio = fold_scale() / old_fold_scale;
  // A channel whose scale was 0 had no weights to keep; its step starts afresh.
  step_.mul_(torch::where(torch::isfinite(ratio), ratio.abs(), torch::ones_like(ratio)));
}

void QWeighted::update_mask(double sparsity) {
  torch::NoGradGuard no_grad;
  mask_.copy_(magnitude_mask(folded().first, sparsity));
}

torch::Tensor range_step(const torch::Tensor& masked_weights, uint32_t bits) {
  torch::NoGradGuard no_grad;
  const torch::Tensor w = masked_weights.reshape({masked_weights.size(0), -1}).abs();
  return std::get<0>(w.max(1)) / double(weight_limit(bits));
}

torch::Tensor least_error_step_fraction(const torch::Tensor& masked_weights, uint32_t bits) {
  torch::NoGradGuard no_grad;
  const torch::Tensor w = masked_weights.reshape({masked_weights.size(0), -1});
  if (bits >= 8) return torch::ones({w.size(0)}, w.options());
  // 40 candidates, 2^(-k/8) of max|w| / Q for k = 0..39 (down to 1/30): wide enough for
  // a dense 2-bit channel (about 0.3) and 9 % apart, where the error is flat.
  constexpr int64_t kCandidates = 40;
  const torch::Tensor fractions = torch::pow(2.0, -torch::arange(kCandidates, w.options()) / 8.0);
  const double limit = weight_limit(bits);
  const torch::Tensor steps =  // [candidates, channels, 1]
      (fractions.reshape({-1, 1}) * range_step(w, bits).clamp_min(1e-12).reshape({1, -1}))
          .unsqueeze(2);
  const torch::Tensor rounded = torch::clamp(torch::round(w.unsqueeze(0) / steps), -limit, limit);
  const torch::Tensor error = (w.unsqueeze(0) - rounded * steps).square().sum(2);
  // argmin takes the first of equal errors: the largest step.
  return fractions.index_select(0, error.argmin(0));
}

torch::Tensor initial_weight_step(const torch::Tensor& masked_weights, uint32_t bits,
                                  WeightStepRule rule) {
  torch::NoGradGuard no_grad;
  // For 8 bits the range max/Q loses less than LSQ's rule; both rules take it.
  if (bits >= 8) return range_step(masked_weights, bits).clamp_min(1e-6);
  if (rule == WeightStepRule::LeastError) {
    return (least_error_step_fraction(masked_weights, bits) * range_step(masked_weights, bits))
        .clamp_min(1e-6);
  }
  // LSQ's initial step 2 E|w| / sqrt(Q), the mean over every weight, zeros included.
  const torch::Tensor w = masked_weights.reshape({masked_weights.size(0), -1}).abs();
  return (2.0 * w.mean(1) / std::sqrt(double(weight_limit(bits)))).clamp_min(1e-6);
}

torch::Tensor weight_integers(const torch::Tensor& masked_weights, const torch::Tensor& step,
                              uint32_t bits) {
  std::vector<int64_t> channel_shape(size_t(masked_weights.dim()), 1);
  channel_shape[0] = -1;
  const int32_t limit = weight_limit(bits);
  return torch::clamp(torch::round(masked_weights / step.reshape(channel_shape)), -limit, limit);
}

torch::Tensor rounded_at_initial_step(const torch::Tensor& masked_weights, uint32_t bits,
                                      WeightStepRule rule) {
  const torch::Tensor step = initial_weight_step(masked_weights, bits, rule);
  std::vector<int64_t> channel_shape(size_t(masked_weights.dim()), 1);
  channel_shape[0] = -1;
  return weight_integers(masked_weights, step, bits) * step.reshape(channel_shape);
}

void QWeighted::initialize_step() {
  torch::NoGradGuard no_grad;
  step_.copy_(initial_weight_step(folded().first * mask_, bits(), weight_step_rule_));
}

void QWeighted::set_bits(uint32_t bits) {
  torch::NoGradGuard no_grad;
  weight_bits_.fill_(float(bits));
}

void QWeighted::restore_step(const torch::Tensor& step) {
  torch::NoGradGuard no_grad;
  step_.copy_(step);
}

void QWeighted::assign_float_state(const torch::Tensor& weight, const torch::Tensor& bias,
                                   const torch::nn::BatchNorm2d& batch_norm, int64_t channels) {
  torch::NoGradGuard no_grad;
  weight_.copy_(weight);
  if (kind_ == Kind::FullyConnected) {
    bias_.copy_(bias);
    return;
  }
  batch_norm_->weight.copy_(batch_norm->weight.slice(0, 0, channels));
  batch_norm_->bias.copy_(batch_norm->bias.slice(0, 0, channels));
  batch_norm_->running_mean.copy_(batch_norm->running_mean.slice(0, 0, channels));
  batch_norm_->running_var.copy_(batch_norm->running_var.slice(0, 0, channels));
}

torch::Tensor QWeighted::effective_step() const {
  // LSQ gradient scale 1 / sqrt(weights per channel * Q), applied to the gradient only.
  const double per_channel = double(weight_.numel()) / double(out_channels_);
  const double gradient_scale = 1.0 / std::sqrt(per_channel * weight_limit(bits()));
  const torch::Tensor step = step_.clamp_min(1e-6);
  return straight_through(step * gradient_scale, step);
}

LayerIntegers QWeighted::integers(ActQuant input) const {
  torch::NoGradGuard no_grad;
  const auto [w, b] = folded();
  const torch::Tensor step = step_.clamp_min(1e-6).to(torch::kFloat);
  LayerIntegers li;
  li.weights = weight_integers(w * mask_, step, bits());
  li.out = output_range_->quant();
  const auto clamp =
      fm::activation_range(to_model_activation(activation_), li.out.scale, li.out.zero_point);
  li.clamp_min = clamp.first;
  li.clamp_max = clamp.second;
  const auto steps = step.contiguous();
  const auto biases = b.to(torch::kDouble).contiguous();
  for (int64_t c = 0; c < int64_t(out_channels_); ++c) {
    const double weight_scale = double(steps[c].item<float>());
    const double accumulator_scale = double(input.scale) * weight_scale;
    const double bias = std::round(biases[c].item<double>() / accumulator_scale);
    li.bias.push_back(int32_t(std::clamp<double>(bias, -(1 << 30), 1 << 30)));
    double real = accumulator_scale / double(li.out.scale);
    // Below 2^-32 a channel contributes nothing representable.
    if (real < std::ldexp(1.0, -32)) real = 0.0;
    const auto [m, s] = int8::quantize_multiplier(real);
    li.multiplier.push_back(m);
    li.shift.push_back(s);
  }
  return li;
}

QTensor QWeighted::forward(const QTensor& input, const ForwardContext& context) {
  if (context.mode != Mode::Quantized) {
    torch::Tensor w = weight_;
    if (context.mode == Mode::MaskedFloat || context.mode == Mode::CompressedWeights) {
      w = weight_ * mask_;
    }
    if (context.mode == Mode::CompressedWeights)
      w = rounded_at_initial_step(w, bits(), weight_step_rule_);
    torch::Tensor y = apply(input.x, w);
    if (kind_ == Kind::FullyConnected) {
      y = y + bias_.reshape({1, -1, 1, 1});
    } else {
      y = channel_norm(batch_norm_, y, batch_statistics_, context.ranks);
    }
    return {activation(y), {}};
  }
  // Float path (carries the gradient) with the fake-quantised folded weights.
  const auto [w, b] = folded();
  const torch::Tensor step = effective_step();
  const std::vector<int64_t> channel_shape = kind_ == Kind::FullyConnected
                                                 ? std::vector<int64_t>{-1, 1}
                                                 : std::vector<int64_t>{-1, 1, 1, 1};
  const int32_t limit = weight_limit(bits());
  const torch::Tensor scaled = torch::clamp(w * mask_ / step.reshape(channel_shape), -limit, limit);
  const torch::Tensor fake =
      straight_through(scaled, torch::round(scaled)) * step.reshape(channel_shape);
  const torch::Tensor y = activation(apply(input.x, fake) + b.reshape({1, -1, 1, 1}));
  if (context.observe) output_range_->observe(y.detach(), context.momentum, context.ranks);

  // Integer path (the values).
  torch::NoGradGuard no_grad;
  const LayerIntegers li = integers(input.quant);
  const torch::Tensor centered =
      recover_integers(input.x.detach(), input.quant) - input.quant.zero_point;
  const double per_output = double(li.weights[0].numel());
  const double max_weight = li.weights.abs().max().item<double>();
  // float32 sums integers exactly while every partial sum stays below 2^24 (inputs centred
  // on their zero point span at most 255). Wider layers split each weight as 16 hi + lo,
  // both small enough for exact float sums, and combine in double; only if even that is
  // not exact does the accumulation run in double (slow: no oneDNN kernel).
  torch::Tensor accumulator;
  if (per_output * 255.0 * max_weight < kFloatExactLimit) {
    accumulator = apply(centered, li.weights);
  } else if (per_output * 255.0 * 8.0 < kFloatExactLimit) {
    const torch::Tensor high = torch::floor((li.weights + 8.0) / 16.0);
    const torch::Tensor low = li.weights - 16.0 * high;
    accumulator =
        apply(centered, high).to(torch::kDouble) * 16.0 + apply(centered, low).to(torch::kDouble);
  } else {
    accumulator = apply(centered.to(torch::kDouble), li.weights.to(torch::kDouble));
  }
  const torch::Tensor q = requantize(accumulator, li.bias, li.multiplier, li.shift,
                                     li.out.zero_point, li.clamp_min, li.clamp_max);
  torch::AutoGradMode enable_grad(true);
  return {straight_through(y, dequantize(q, li.out)), li.out};
}

ExportedTensor QWeighted::export_to(fm::ModelBuilder& builder, const ExportedTensor& input) {
  const LayerIntegers li = integers(input.quant);
  // Torch [oc][ic][kh][kw] (conv), [c][1][kh][kw] (depthwise), [out][in] (fc) to the
  // model's [oc][kh][kw][ic], [c][kh][kw], [out][in].
  const torch::Tensor ordered =
      kind_ == Kind::Conv ? li.weights.permute({0, 2, 3, 1}).contiguous() : li.weights.contiguous();
  const torch::Tensor as_int = ordered.to(torch::kInt8).flatten();
  std::vector<int8_t> weights(as_int.data_ptr<int8_t>(),
                              as_int.data_ptr<int8_t>() + as_int.numel());
  fm::ModelBuilder::Requant requant{li.bias, li.multiplier, li.shift};
  const fm::ModelBuilder::Quant out{li.out.scale, li.out.zero_point};
  const fm::Activation act = to_model_activation(activation_);
  const uint32_t bits = this->bits();
  int32_t index = -1;
  switch (kind_) {
    case Kind::Conv:
      index = builder.conv2d(name_, input.index, out_channels_, kernel_, stride_, fm::Padding::Same,
                             std::move(weights), bits, std::move(requant), out, act);
      break;
    case Kind::Depthwise:
      index = builder.depthwise_conv2d(name_, input.index, kernel_, stride_, fm::Padding::Same,
                                       std::move(weights), bits, std::move(requant), out, act);
      break;
    case Kind::FullyConnected:
      index = builder.fully_connected(name_, input.index, out_channels_, std::move(weights), bits,
                                      std::move(requant), out, act);
      break;
  }
  return {index, li.out};
}

// ---------------------------------------------------------------- QPool

QPool::QPool(std::string name, Kind kind, uint32_t kernel, uint32_t stride)
    : name_(std::move(name)), kind_(kind), kernel_(kernel), stride_(stride) {}

QTensor QPool::forward(const QTensor& input, const ForwardContext& context) {
  const torch::Tensor& x = input.x;
  const int64_t k = kernel_, s = stride_;
  torch::Tensor y;
  switch (kind_) {
    case Kind::Max:
      y = torch::max_pool2d(x, {k, k}, {s, s});
      break;
    case Kind::Average:
      y = torch::avg_pool2d(x, {k, k}, {s, s});
      break;
    case Kind::GlobalAverage:
      y = x.mean({2, 3}, /*keepdim=*/true);
      break;
  }
  // Max pooling of exactly quantised values is exact; averages round as the integer pool.
  if (context.mode != Mode::Quantized || kind_ == Kind::Max) return {y, input.quant};
  torch::NoGradGuard no_grad;
  const torch::Tensor q = recover_integers(x.detach(), input.quant).to(torch::kDouble);
  torch::Tensor sum;
  int64_t count = 0;
  if (kind_ == Kind::Average) {
    sum = torch::avg_pool2d(q, {k, k}, {s, s}, 0, false, true, /*divisor_override=*/1);
    count = k * k;
  } else {
    sum = q.sum({2, 3}, /*keepdim=*/true);
    count = x.size(2) * x.size(3);
  }
  const torch::Tensor average =
      rounded_average(torch::round(sum).to(torch::kLong), count).to(torch::kFloat);
  torch::AutoGradMode enable_grad(true);
  return {straight_through(y, dequantize(average, input.quant)), input.quant};
}

ExportedTensor QPool::export_to(fm::ModelBuilder& builder, const ExportedTensor& input) {
  switch (kind_) {
    case Kind::Max:
      return {builder.max_pool(name_, input.index, kernel_, stride_, fm::Padding::Valid),
              input.quant};
    case Kind::Average:
      return {builder.avg_pool(name_, input.index, kernel_, stride_, fm::Padding::Valid),
              input.quant};
    case Kind::GlobalAverage:
      return {builder.global_avg_pool(name_, input.index), input.quant};
  }
  return input;
}

// ---------------------------------------------------------------- QInvertedResidual

QInvertedResidual::QInvertedResidual(const LayerSpec& spec, uint32_t in_channels,
                                     uint32_t in_height, uint32_t in_width)
    : name_(spec.name) {
  const uint32_t hidden = in_channels * spec.expansion;
  size_t sublayer = 0;
  if (spec.expansion > 1) {
    expand_ = register_module(
        "expand", std::make_shared<QWeighted>(
                      spec.name + "_expand", QWeighted::Kind::Conv, in_channels, in_height,
                      in_width, hidden, 1, 1, spec.sublayer_bits_at(sublayer),
                      spec.sublayer_sparsity_at(sublayer), spec.activation));
    ++sublayer;
  }
  depthwise_ = register_module(
      "depthwise", std::make_shared<QWeighted>(
                       spec.name + "_dw", QWeighted::Kind::Depthwise, hidden, in_height, in_width,
                       hidden, spec.kernel, spec.stride, spec.sublayer_bits_at(sublayer),
                       spec.sublayer_sparsity_at(sublayer), spec.activation));
  ++sublayer;
  project_ = register_module(
      "project",
      std::make_shared<QWeighted>(spec.name + "_project", QWeighted::Kind::Conv, hidden,
                                  depthwise_->out_height(), depthwise_->out_width(),
                                  spec.out_channels, 1, 1, spec.sublayer_bits_at(sublayer),
                                  spec.sublayer_sparsity_at(sublayer), ActivationKind::None));
  residual_ = spec.stride == 1 && spec.out_channels == in_channels;
  if (residual_) sum_range_ = std::make_unique<RangeObserver>(*this, "sum_range");
}

std::vector<std::shared_ptr<QWeighted>> QInvertedResidual::weighted() const {
  std::vector<std::shared_ptr<QWeighted>> layers;
  if (expand_) layers.push_back(expand_);
  layers.push_back(depthwise_);
  layers.push_back(project_);
  return layers;
}

QTensor QInvertedResidual::forward(const QTensor& input, const ForwardContext& context) {
  QTensor h = input;
  if (expand_) h = expand_->forward(h, context);
  h = project_->forward(depthwise_->forward(h, context), context);
  if (!residual_) return h;
  return quantized_add(input, h, *sum_range_, context);
}

ExportedTensor QInvertedResidual::export_to(fm::ModelBuilder& builder,
                                            const ExportedTensor& input) {
  ExportedTensor h = input;
  if (expand_) h = expand_->export_to(builder, h);
  h = project_->export_to(builder, depthwise_->export_to(builder, h));
  if (!residual_) return h;
  return export_add(builder, name_ + "_add", input, h, *sum_range_);
}

// ---------------------------------------------------------------- residual adds

QTensor quantized_add(const QTensor& a, const QTensor& b, RangeObserver& range,
                      const ForwardContext& context) {
  const torch::Tensor y = a.x + b.x;
  if (context.mode != Mode::Quantized) return {y, {}};
  if (context.observe) range.observe(y.detach(), context.momentum, context.ranks);
  torch::NoGradGuard no_grad;
  const ActQuant out = range.quant();
  const int8::AddParams p = int8::add_params(a.quant.scale, b.quant.scale, out.scale);
  const torch::Tensor q =
      add_integers(recover_integers(a.x.detach(), a.quant), a.quant.zero_point,
                   recover_integers(b.x.detach(), b.quant), b.quant.zero_point, p, out.zero_point);
  torch::AutoGradMode enable_grad(true);
  return {straight_through(y, dequantize(q, out)), out};
}

ExportedTensor export_add(fm::ModelBuilder& builder, const std::string& name,
                          const ExportedTensor& a, const ExportedTensor& b,
                          const RangeObserver& range) {
  const ActQuant out = range.quant();
  const int8::AddParams p = int8::add_params(a.quant.scale, b.quant.scale, out.scale);
  return {builder.add(name, a.index, b.index, p, {out.scale, out.zero_point}, fm::Activation::None),
          out};
}

// ---------------------------------------------------------------- QDepthToSpace

torch::Tensor depth_to_space(const torch::Tensor& x, int64_t block) {
  // [N, b*b*C, H, W], channel (i*b + j)*C + c
  const int64_t b = block, n = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t c = x.size(1) / (b * b);
  return x.reshape({n, b, b, c, h, w}).permute({0, 3, 4, 1, 5, 2}).reshape({n, c, h * b, w * b});
}

torch::Tensor channel_norm(torch::nn::BatchNorm2d& norm, const torch::Tensor& y,
                           bool batch_statistics, Ranks* ranks) {
  if (batch_statistics) return synchronized_batch_norm(norm, y, ranks);
  return torch::batch_norm(y, norm->weight, norm->bias, norm->running_mean, norm->running_var,
                           /*training=*/false, 0.0, norm->options.eps(), /*cudnn_enabled=*/false);
}

QTensor QDepthToSpace::forward(const QTensor& input, const ForwardContext&) {
  return {depth_to_space(input.x, block_), input.quant};
}

ExportedTensor QDepthToSpace::export_to(fm::ModelBuilder& builder, const ExportedTensor& input) {
  return {builder.depth_to_space(name_, input.index, block_), input.quant};
}

// ---------------------------------------------------------------- QNet

QNet::QNet(const ArchitectureSpec& spec, const data::Normalization& normalization) : spec_(spec) {
  input_quant_ = {normalization.input_scale(), normalization.input_zero_point()};
  uint32_t c = spec.channels, h = spec.height, w = spec.width;
  for (const LayerSpec& layer : spec.layers) {
    std::shared_ptr<QLayer> module;
    switch (layer.kind) {
      case LayerKind::Conv:
      case LayerKind::Depthwise:
      case LayerKind::FullyConnected: {
        const QWeighted::Kind kind = layer.kind == LayerKind::Conv ? QWeighted::Kind::Conv
                                     : layer.kind == LayerKind::Depthwise
                                         ? QWeighted::Kind::Depthwise
                                         : QWeighted::Kind::FullyConnected;
        auto weighted = std::make_shared<QWeighted>(layer.name, kind, c, h, w, layer.out_channels,
                                                    layer.kernel, layer.stride, layer.weight_bits,
                                                    layer.sparsity, layer.activation);
        c = weighted->out_channels();
        h = weighted->out_height();
        w = weighted->out_width();
        weighted_.push_back(weighted);
        module = weighted;
        break;
      }
      case LayerKind::InvertedResidual: {
        auto block = std::make_shared<QInvertedResidual>(layer, c, h, w);
        for (const auto& l : block->weighted()) weighted_.push_back(l);
        c = layer.out_channels;
        h = block->out_height();
        w = block->out_width();
        module = block;
        break;
      }
      case LayerKind::MaxPool:
      case LayerKind::AvgPool:
        if (layer.kernel > h || layer.kernel > w) {
          throw std::invalid_argument(fmt::format("layer {}: {}x{} window on a {}x{} input",
                                                  layer.name, layer.kernel, layer.kernel, h, w));
        }
        module = std::make_shared<QPool>(
            layer.name, layer.kind == LayerKind::MaxPool ? QPool::Kind::Max : QPool::Kind::Average,
            layer.kernel, layer.stride);
        h = (h - layer.kernel) / layer.stride + 1;
        w = (w - layer.kernel) / layer.stride + 1;
        break;
      case LayerKind::GlobalAvgPool:
        module = std::make_shared<QPool>(layer.name, QPool::Kind::GlobalAverage, 1, 1);
        h = w = 1;
        break;
      case LayerKind::DepthToSpace: {
        const uint32_t b = layer.kernel;
        if (b < 2 || c % (b * b) != 0) {
          throw std::invalid_argument(
              fmt::format("layer {}: depth_to_space by {} needs a multiple of {} channels, has {}",
                          layer.name, b, b * b, c));
        }
        module = std::make_shared<QDepthToSpace>(layer.name, b);
        c /= b * b;
        h *= b;
        w *= b;
        break;
      }
    }
    layers_.push_back(register_module(layer.name, module));
  }
  for (const auto& layer : weighted_) layer->set_weight_step_rule(spec.weight_step);
  if (!spec.batch_statistics) {
    for (const auto& layer : weighted_) layer->freeze_batch_statistics();
  }
  if (spec.anchor != AnchorKind::None) {
    if (spec.layers.empty() || spec.layers.back().kind != LayerKind::DepthToSpace) {
      throw std::invalid_argument("an anchor needs a network that ends in depth_to_space");
    }
    // Per output channel: the largest weight at 127, or weights 1 at scale 1 (exact) where
    // the filter is a copy.
    const torch::Tensor filter =
        anchor_filter(spec.anchor, spec.layers.back().kernel, spec.channels);
    const torch::Tensor largest = std::get<0>(filter.abs().flatten(1).max(1));
    anchor_scales_ = spec.anchor == AnchorKind::Nearest ? torch::ones_like(largest)
                                                        : largest / double(weight_limit(8));
    anchor_weights_ = torch::round(filter / anchor_scales_.reshape({-1, 1, 1, 1}));
    for (int64_t k = 0; k < anchor_scales_.size(0); ++k) {
      // Accumulator scale input_scale * weight scale into the input's scale.
      const auto [multiplier, shift] = int8::quantize_multiplier(anchor_scales_[k].item<double>());
      anchor_multiplier_.push_back(multiplier);
      anchor_shift_.push_back(shift);
    }
    anchor_sum_range_ = std::make_unique<RangeObserver>(*this, "anchor_sum_range");
    // The residual starts at 0 and the output at the anchor (SkipInit's zero-initialised
    // residual branch): a random residual is an error far above the anchor's, and the
    // first steps that remove it leave the ReLUs before it dead (a bicubic-anchored ESPCN
    // stayed at bicubic's PSNR through its whole float warm-up, issue 25 note).
    torch::NoGradGuard no_grad;
    weighted_.back()->named_parameters(/*recurse=*/false)["weight"].zero_();
  }
}

torch::Tensor anchor_filter(AnchorKind kind, uint32_t block, uint32_t channels) {
  const int64_t b = block, c = channels;
  if (kind == AnchorKind::Nearest) {
    torch::Tensor filter = torch::zeros({b * b * c, c, 1, 1});
    for (int64_t k = 0; k < b * b * c; ++k) filter[k][k % c][0][0] = 1.0;
    return filter;
  }
  // Catmull-Rom (cubic convolution with a = -0.5) at distance d.
  auto cubic = [](double d) {
    d = std::abs(d);
    if (d < 1) return 1.5 * d * d * d - 2.5 * d * d + 1;
    if (d < 2) return -0.5 * d * d * d + 2.5 * d * d - 4 * d + 2;
    return 0.0;
  };
  constexpr int64_t kTaps = 5;  // offsets -2..2 hold every tap of a shift within +-0.5
  auto taps = [&](int64_t phase) {
    const double shift = (double(phase) + 0.5) / double(b) - 0.5;
    std::vector<double> t(kTaps);
    for (int64_t o = 0; o < kTaps; ++o) t[size_t(o)] = cubic(double(o - kTaps / 2) - shift);
    return t;
  };
  torch::Tensor filter = torch::zeros({b * b * c, c, kTaps, kTaps});
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < b; ++j) {
      const std::vector<double> rows = taps(i), columns = taps(j);
      for (int64_t ch = 0; ch < c; ++ch) {
        const int64_t k = (i * b + j) * c + ch;
        for (int64_t y = 0; y < kTaps; ++y) {
          for (int64_t x = 0; x < kTaps; ++x) {
            filter[k][ch][y][x] = rows[size_t(y)] * columns[size_t(x)];
          }
        }
      }
    }
  }
  return filter;
}

QTensor QNet::add_anchor(const QTensor& input, const QTensor& residual,
                         const ForwardContext& context) {
  const int64_t pad = anchor_weights_.size(3) / 2;
  QTensor anchor{torch::Tensor(), input.quant};
  if (context.mode != Mode::Quantized) {
    const torch::Tensor weights = anchor_weights_ * anchor_scales_.reshape({-1, 1, 1, 1});
    anchor.x = torch::conv2d(input.x.detach(), weights, {}, 1, pad);
  } else {
    // The exported convolution: zero-point padding, int32 accumulators, requantisation.
    torch::NoGradGuard no_grad;
    const torch::Tensor centered =
        recover_integers(input.x.detach(), input.quant) - input.quant.zero_point;
    const torch::Tensor accumulators =
        torch::conv2d(centered.to(torch::kDouble), anchor_weights_.to(torch::kDouble), {}, 1, pad);
    const torch::Tensor q = requantize(
        accumulators, std::vector<int32_t>(anchor_multiplier_.size(), 0), anchor_multiplier_,
        anchor_shift_, input.quant.zero_point, int8::kMin, int8::kMax);
    anchor.x = dequantize(q, input.quant);
  }
  return quantized_add(anchor, residual, *anchor_sum_range_, context);
}

ExportedTensor QNet::export_anchor(fm::ModelBuilder& builder, const ExportedTensor& input,
                                   const ExportedTensor& residual) const {
  const uint32_t out_channels = uint32_t(anchor_weights_.size(0));
  const uint32_t kernel = uint32_t(anchor_weights_.size(3));
  // Torch [oc][ic][kh][kw] to the model's [oc][kh][kw][ic].
  const torch::Tensor ordered =
      anchor_weights_.permute({0, 2, 3, 1}).contiguous().to(torch::kInt8).flatten();
  std::vector<int8_t> weights(ordered.data_ptr<int8_t>(),
                              ordered.data_ptr<int8_t>() + ordered.numel());
  fm::ModelBuilder::Requant requant{std::vector<int32_t>(out_channels, 0), anchor_multiplier_,
                                    anchor_shift_};
  const ExportedTensor anchor{
      builder.conv2d("anchor", input.index, out_channels, kernel, 1, fm::Padding::Same,
                     std::move(weights), 8, std::move(requant),
                     {input.quant.scale, input.quant.zero_point}, fm::Activation::None),
      input.quant};
  return export_add(builder, "anchor_add", anchor, residual, *anchor_sum_range_);
}

QTensor QNet::forward(const torch::Tensor& images, const ForwardContext& context) {
  const QTensor input{images, input_quant_};
  QTensor t = input;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (anchor_sum_range_ && i + 1 == layers_.size()) t = add_anchor(input, t, context);
    t = layers_[i]->forward(t, context);
  }
  return {t.x.reshape({t.x.size(0), -1}), t.quant};
}

fm::Model QNet::export_model() const {
  fm::ModelBuilder builder(spec_.name);
  const ExportedTensor input{builder.add_input("input", {spec_.height, spec_.width, spec_.channels},
                                               input_quant_.scale, input_quant_.zero_point),
                             input_quant_};
  ExportedTensor t = input;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (anchor_sum_range_ && i + 1 == layers_.size()) t = export_anchor(builder, input, t);
    t = layers_[i]->export_to(builder, t);
  }
  builder.mark_output(t.index);
  return builder.finish();
}

}  // namespace udc::search
