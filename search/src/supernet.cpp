#include "supernet.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <tuple>

#include <fmt/format.h>

#include "udc/compression/encoder.hpp"
#include "udc/firmware_model/model.hpp"

namespace udc::search {

namespace fm = firmware_model;

// ---------------------------------------------------------------- SharedLayer

SharedLayer::SharedLayer(Kind kind, uint32_t in_channels, uint32_t out_channels, uint32_t kernel,
                         uint32_t stride, uint32_t in_height, uint32_t in_width, bool relu)
    : kind_(kind),
      in_channels_(in_channels),
      out_channels_(kind == Kind::Depthwise ? in_channels : out_channels),
      kernel_(kernel),
      stride_(stride),
      relu_(relu) {
  std::vector<int64_t> shape;
  double fan_in = 0;
  if (kind_ == Kind::FullyConnected) {
    shape = {int64_t(out_channels_), int64_t(in_channels_)};
    fan_in = in_channels_;
    bias_ = register_parameter("bias", torch::zeros({int64_t(out_channels_)}));
  } else {
    const fm::WindowAxis y = fm::window_axis(in_height, kernel_, stride_, fm::Padding::Same);
    const fm::WindowAxis x = fm::window_axis(in_width, kernel_, stride_, fm::Padding::Same);
    pad_top_ = y.pad_before;
    pad_bottom_ = y.pad_after;
    pad_left_ = x.pad_before;
    pad_right_ = x.pad_after;
    const int64_t per_output = kind_ == Kind::Depthwise ? 1 : int64_t(in_channels_);
    shape = {int64_t(out_channels_), per_output, int64_t(kernel_), int64_t(kernel_)};
    fan_in = double(per_output) * kernel_ * kernel_;
    batch_norm_ = register_module("batch_norm", torch::nn::BatchNorm2d(out_channels_));
  }
  weight_ = register_parameter("weight", torch::randn(shape) * std::sqrt(2.0 / fan_in));
  input_widths_ = {int64_t(in_channels_)};
}

void SharedLayer::set_weight_step_rule(WeightStepRule rule, std::vector<uint32_t> bit_choices) {
  weight_step_rule_ = rule;
  bit_choices_ = std::move(bit_choices);
  step_fractions_.clear();
}

void SharedLayer::set_input_widths(std::vector<int64_t> widths) {
  input_widths_ = std::move(widths);
  masks_.clear();
}

namespace {

/// The weights of a derived layer with `in` input channels (all outputs).
torch::Tensor input_slice(const torch::Tensor& weights, bool depthwise, int64_t in) {
  return depthwise ? weights : weights.slice(1, 0, in);
}

}  // namespace

void SharedLayer::refresh_masks(const std::vector<double>& levels) {
  torch::NoGradGuard no_grad;
  masks_.clear();
  const torch::Tensor w = weight_.detach();
  for (int64_t in : input_widths_) {
    std::vector<torch::Tensor> by_level;
    for (double level : levels) {
      torch::Tensor mask = torch::ones_like(w);
      const bool depthwise = kind_ == Kind::Depthwise;
      input_slice(mask, depthwise, in).copy_(magnitude_mask(input_slice(w, depthwise, in), level));
      by_level.push_back(mask);
    }
    masks_.push_back(std::move(by_level));
  }
  step_fractions_.clear();
  if (weight_step_rule_ != WeightStepRule::LeastError) return;
  const bool depthwise = kind_ == Kind::Depthwise;
  for (size_t i = 0; i < input_widths_.size(); ++i) {
    std::vector<std::vector<torch::Tensor>> by_level;
    for (const torch::Tensor& mask : masks_[i]) {
      const torch::Tensor slice =
          input_slice(prunable() ? w * mask : w, depthwise, input_widths_[i]);
      std::vector<torch::Tensor> by_bits;
      for (uint32_t bits : bit_choices_) by_bits.push_back(least_error_step_fraction(slice, bits));
      by_level.push_back(std::move(by_bits));
    }
    step_fractions_.push_back(std::move(by_level));
  }
}

torch::Tensor SharedLayer::forward(const torch::Tensor& x, const torch::Tensor& input_widths,
                                   const torch::Tensor& bits, const torch::Tensor& sparsity,
                                   const std::vector<uint32_t>& bit_choices, Ranks* ranks) {
  const bool least_error = weight_step_rule_ == WeightStepRule::LeastError;
  if (masks_.size() != input_widths_.size() || input_widths.size(0) != int64_t(masks_.size()) ||
      (!masks_.empty() && masks_[0].size() != size_t(sparsity.size(0))) ||
      (least_error && (step_fractions_.size() != masks_.size() || bit_choices != bit_choices_))) {
    throw std::logic_error("SharedLayer: masks not refreshed for the input widths and levels");
  }
  // A term of zero weight without a gradient to carry (one-hot, fixed choices) is skipped.
  auto needed = [](const torch::Tensor& p, int64_t i) {
    return p.requires_grad() || p[i].item<float>() != 0.0f;
  };
  std::vector<int64_t> channel_shape(size_t(weight_.dim()), 1);
  channel_shape[0] = -1;
  const bool depthwise = kind_ == Kind::Depthwise;
  torch::Tensor mixed;
  for (int64_t i = 0; i < input_widths.size(0); ++i) {
    if (!needed(input_widths, i)) continue;
    const int64_t in = input_widths_[size_t(i)];
    torch::Tensor sparse = prunable() ? torch::Tensor() : weight_;
    // Least-error rule: each needed level's slice (no gradient), whose range its step takes.
    std::vector<std::pair<int64_t, torch::Tensor>> level_slices;
    for (int64_t s = 0; prunable() && s < sparsity.size(0); ++s) {
      if (!needed(sparsity, s)) continue;
      const torch::Tensor masked = weight_ * masks_[size_t(i)][size_t(s)];
      const torch::Tensor term = sparsity[s] * masked;
      sparse = sparse.defined() ? sparse + term : term;
      if (least_error) level_slices.emplace_back(s, input_slice(masked.detach(), depthwise, in));
    }
    const torch::Tensor slice = input_slice(sparse.detach(), depthwise, in);
    for (int64_t b = 0; b < bits.size(0); ++b) {
      if (!needed(bits, b)) continue;
      const uint32_t width = bit_choices[size_t(b)];
      torch::Tensor step;
      if (!least_error) {
        step = initial_weight_step(slice, width, WeightStepRule::Lsq);
      } else if (!prunable()) {
        step = step_fractions_[size_t(i)][0][size_t(b)] *
               range_step(input_slice(weight_.detach(), depthwise, in), width);
      } else {
        // Each level's step (its fraction of its slice's range), mixed by the level's
        // probability: a one-hot level quantises as the derived layer does.
        for (const auto& [s, level_slice] : level_slices) {
          const torch::Tensor term = sparsity[s].detach() *
                                     step_fractions_[size_t(i)][size_t(s)][size_t(b)] *
                                     range_step(level_slice, width);
          step = step.defined() ? step + term : term;
        }
      }
      step = step.clamp_min(1e-6).reshape(channel_shape);
      const double limit = weight_limit(width);
      const torch::Tensor scaled = torch::clamp(sparse / step, -limit, limit);
      const torch::Tensor quantized = straight_through(scaled, torch::round(scaled)) * step;
      const torch::Tensor term = (input_widths[i] * bits[b]) * quantized;
      mixed = mixed.defined() ? mixed + term : term;
    }
  }
  torch::Tensor y;
  if (kind_ == Kind::FullyConnected) {
    y = torch::matmul(x.reshape({x.size(0), -1}), mixed.t()) + bias_;
    y = y.reshape({x.size(0), -1, 1, 1});
  } else {
    torch::Tensor padded = x;
    if (pad_top_ || pad_bottom_ || pad_left_ || pad_right_) {
      padded = torch::constant_pad_nd(x, {pad_left_, pad_right_, pad_top_, pad_bottom_}, 0.0);
    }
    const int64_t stride = stride_;
    y = torch::conv2d(padded, mixed, torch::Tensor(), torch::IntArrayRef{stride, stride},
                      torch::IntArrayRef{0, 0}, torch::IntArrayRef{1, 1},
                      kind_ == Kind::Depthwise ? int64_t(in_channels_) : 1);
    y = channel_norm(batch_norm_, y, batch_statistics_, ranks);
  }
  return relu_ ? torch::relu(y) : y;
}

torch::Tensor SharedLayer::folded_slice(int64_t out, int64_t in) const {
  torch::NoGradGuard no_grad;
  if (kind_ == Kind::FullyConnected) return weight_.slice(0, 0, out).slice(1, 0, in);
  const torch::Tensor inv_std = torch::rsqrt(batch_norm_->running_var + batch_norm_->options.eps());
  const torch::Tensor folded = weight_ * (batch_norm_->weight * inv_std).reshape({-1, 1, 1, 1});
  if (kind_ == Kind::Depthwise) return folded.slice(0, 0, out);
  return folded.slice(0, 0, out).slice(1, 0, in);
}

std::vector<int8_t> SharedLayer::integer_weights(int64_t out, int64_t in, uint32_t bits,
                                                 double sparsity) const {
  torch::NoGradGuard no_grad;
  const torch::Tensor folded = folded_slice(out, in);
  const torch::Tensor masked = folded * magnitude_mask(folded, prunable() ? sparsity : 0.0);
  torch::Tensor integers =
      weight_integers(masked, initial_weight_step(masked, bits, weight_step_rule_), bits);
  // The model's order: [oc][kh][kw][ic] for convolutions; depthwise and fc as Torch's.
  if (kind_ == Kind::Conv) integers = integers.permute({0, 2, 3, 1});
  const torch::Tensor as_int = integers.contiguous().to(torch::kInt8);
  return std::vector<int8_t>(as_int.data_ptr<int8_t>(), as_int.data_ptr<int8_t>() + as_int.numel());
}

firmware_model::WeightLayout SharedLayer::layout(int64_t out, int64_t in, uint32_t bits,
                                                 double sparsity, uint32_t block_depth) const {
  const std::vector<int8_t> weights = integer_weights(out, in, bits, sparsity);
  return firmware_model::layout_weights(weights.data(), uint32_t(out),
                                        weights.size() / uint64_t(out), block_depth);
}

void SharedLayer::copy_to(QWeighted& layer, int64_t out, int64_t in) const {
  torch::NoGradGuard no_grad;
  torch::Tensor weight = kind_ == Kind::Depthwise ? weight_.slice(0, 0, out)
                                                  : weight_.slice(0, 0, out).slice(1, 0, in);
  layer.assign_float_state(weight, bias_.defined() ? bias_.slice(0, 0, out) : torch::Tensor(),
                           batch_norm_, out);
}

// ---------------------------------------------------------------- Supernet

namespace {

torch::Tensor gumbel_softmax(const torch::Tensor& logits, double temperature, double noise,
                             bool hard) {
  torch::Tensor perturbed = logits;
  if (noise > 0) {
    const torch::Tensor u = torch::rand_like(logits).clamp(1e-10, 1.0 - 1e-10);
    perturbed = logits + noise * -torch::log(-torch::log(u));
  }
  const torch::Tensor soft = torch::softmax(perturbed / temperature, 0);
  if (!hard) return soft;
  const torch::Tensor one_hot =
      torch::zeros_like(soft).index_fill_(0, soft.argmax(0, /*keepdim=*/true), 1.0);
  return straight_through(soft, one_hot);
}

torch::Tensor one_hot(int64_t size, size_t index) {
  torch::Tensor t = torch::zeros({size});
  t[int64_t(index)] = 1.0;
  return t;
}

size_t argmax_of(const torch::Tensor& logits) {
  return size_t(logits.argmax().item<int64_t>());
}

/// {outputs, inputs} of the slice of weighted layer `l` of `op` in a block with `wi` input
/// and `wo` output channels (a depthwise layer: {channels, channels}).
std::pair<int64_t, int64_t> layer_slice(const SearchOperator& op, size_t l, int64_t wi,
                                        int64_t wo) {
  if (l >= op.layers().size()) throw std::logic_error("layer_slice: no such layer of " + op.name());
  const OperatorLayer& layer = op.layers()[l];
  const int64_t hidden = wi * op.expansion();
  const int64_t in = layer.from_hidden ? hidden : wi;
  if (layer.shape == OperatorLayer::Shape::Depthwise) return {in, in};
  return {layer.to_hidden ? hidden : wo, in};
}

/// Matrix [choices, channels]: row j is 1 on the first widths[j] channels.
torch::Tensor width_matrix(const std::vector<uint32_t>& widths, int64_t channels) {
  torch::Tensor m = torch::zeros({int64_t(widths.size()), channels});
  for (size_t j = 0; j < widths.size(); ++j) m[int64_t(j)].slice(0, 0, widths[j]).fill_(1.0);
  return m;
}

}  // namespace

Supernet::Supernet(const SearchSpace& space, std::vector<size_t> hardware_options)
    : space_(space),
      geometry_(block_geometry(space)),
      hardware_options_(std::move(hardware_options)) {
  for (size_t k = 0; k < space_.blocks.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockGeometry& g = geometry_[k];
    const uint32_t max_in = *std::max_element(g.in_widths.begin(), g.in_widths.end());
    const uint32_t max_out = bs.widths.back();
    Block block;
    for (const OperatorPtr& op : bs.ops) {
      // The operator's weighted layers, as the operator describes them: the windowed
      // layer and those before it see the block's input grid, those after it its output
      // grid; a fully connected layer follows global pooling (1x1).
      std::vector<std::shared_ptr<SharedLayer>> layers;
      using K = SharedLayer::Kind;
      using Shape = OperatorLayer::Shape;
      const uint32_t hidden = max_in * op->expansion();
      bool after_window = false;
      const std::vector<OperatorLayer>& described = op->layers();
      for (const OperatorLayer& l : described) {
        const K kind = l.shape == Shape::Conv        ? K::Conv
                       : l.shape == Shape::Depthwise ? K::Depthwise
                                                     : K::FullyConnected;
        const uint32_t in_c = l.from_hidden ? hidden : max_in;
        const uint32_t out_c = l.shape == Shape::Depthwise ? in_c : l.to_hidden ? hidden : max_out;
        const bool pooled = l.shape == Shape::FullyConnected;
        const uint32_t height = pooled ? 1 : after_window ? g.out_height : g.in_height;
        const uint32_t width = pooled ? 1 : after_window ? g.out_width : g.in_width;
        layers.push_back(
            std::make_shared<SharedLayer>(kind, in_c, out_c, l.windowed ? bs.kernel : 1,
                                          l.windowed ? bs.stride : 1, height, width, l.relu));
        after_window = after_window || l.windowed;
      }
      // Each layer's possible input widths, by the block's input width index.
      std::vector<int64_t> block_inputs(g.in_widths.begin(), g.in_widths.end()), hidden_inputs;
      for (uint32_t w : g.in_widths) hidden_inputs.push_back(int64_t(w) * op->expansion());
      for (size_t i = 0; i < layers.size(); ++i) {
        const bool depthwise = layers[i]->kind() == K::Depthwise;
        const bool after_hidden = described[i].from_hidden;
        if (!depthwise) layers[i]->set_input_widths(after_hidden ? hidden_inputs : block_inputs);
        register_module(fmt::format("{}_{}_{}", bs.name, op->name(), i), layers[i]);
      }
      block.op_layers.push_back(std::move(layers));
    }
    auto logits = [&](const std::string& name, size_t n) {
      return register_parameter(name + "_logits", torch::zeros({int64_t(n)}));
    };
    block.op_logits = logits(bs.name + "_op", bs.ops.size());
    block.width_logits = logits(bs.name + "_width", bs.widths.size());
    for (const OperatorPtr& op : bs.ops) {
      std::vector<torch::Tensor> bits, sparsity;
      for (size_t l = 0; l < op->layers().size(); ++l) {
        const std::string layer = fmt::format("{}_{}_{}", bs.name, op->name(), l);
        bits.push_back(logits(layer + "_bits", space_.bits.size()));
        sparsity.push_back(op->prunable(l) ? logits(layer + "_sparsity", space_.sparsity.size())
                                           : torch::Tensor());
      }
      block.bits_logits.push_back(std::move(bits));
      block.sparsity_logits.push_back(std::move(sparsity));
    }
    blocks_.push_back(std::move(block));
  }
  if (!space_.batch_statistics) {
    for (const Block& block : blocks_) {
      for (const auto& layers : block.op_layers) {
        for (const auto& layer : layers) layer->freeze_batch_statistics();
      }
    }
  }
  for (const Block& block : blocks_) {
    for (const auto& layers : block.op_layers) {
      for (const auto& layer : layers) layer->set_weight_step_rule(space_.weight_step, space_.bits);
    }
  }
  if (space_.anchor != AnchorKind::None) {
    anchor_filter_ = anchor_filter(space_.anchor, space_.scale, space_.channels);
    // The upscaler's residual starts at 0, as in QNet (ArchitectureSpec::anchor).
    torch::NoGradGuard no_grad;
    for (const auto& layer : blocks_.back().op_layers.back()) {
      layer->named_parameters(/*recurse=*/false)["weight"].zero_();
    }
  }
  refresh_masks();
  // After every block's, so that a fixed-NPU supernet's parameters are what they were.
  size_t hardware_count = 1;
  for (size_t c = 0; c < hardware_options_.size(); ++c) {
    hardware_logits_.push_back(register_parameter(fmt::format("hardware_{}_logits", c),
                                                  torch::zeros({int64_t(hardware_options_[c])})));
    hardware_count *= hardware_options_[c];
  }
  candidates_.resize(hardware_count);
  for (CandidateCostTables& c : candidates_) {
    c.weight.resize(blocks_.size());
    c.flash.resize(blocks_.size());
  }
  allowed_.assign(hardware_count, true);
}

void Supernet::set_candidate_tables(std::vector<HardwareTables> tables) {
  if (tables.size() != candidates_.size()) {
    throw std::logic_error(fmt::format("Supernet: {} hardware tables for {} candidates",
                                       tables.size(), candidates_.size()));
  }
  for (size_t h = 0; h < tables.size(); ++h) candidates_[h].hardware = std::move(tables[h]);
  refresh_weight_tables();
}

void Supernet::select_hardware(size_t h) {
  if (h >= candidates_.size()) throw std::out_of_range("Supernet: no hardware candidate");
  selected_ = h;
}

void Supernet::set_hardware_allowed(std::vector<bool> allowed) {
  if (allowed.size() != candidates_.size() ||
      std::none_of(allowed.begin(), allowed.end(), [](bool a) { return a; })) {
    throw std::logic_error("Supernet: hardware mask of the wrong size, or allowing none");
  }
  allowed_ = std::move(allowed);
}

torch::Tensor Supernet::hardware_probabilities() const {
  const auto dtype = torch::kDouble;
  torch::Tensor joint = torch::ones({1}, dtype);
  for (const torch::Tensor& logits : hardware_logits_) {
    // Candidate numbering: the last choice varies fastest (npu_sim::HardwareSpace).
    joint = torch::outer(joint, torch::softmax(logits.to(dtype), 0)).flatten();
  }
  if (std::all_of(allowed_.begin(), allowed_.end(), [](bool a) { return a; })) return joint;
  std::vector<double> mask(allowed_.begin(), allowed_.end());
  joint = joint * torch::tensor(mask, dtype);
  return joint / joint.sum();
}

size_t Supernet::most_probable_hardware() const {
  torch::NoGradGuard no_grad;
  return size_t(hardware_probabilities().argmax().item<int64_t>());
}

void Supernet::refresh_masks() {
  for (const Block& block : blocks_) {
    for (const auto& layers : block.op_layers) {
      for (const auto& layer : layers) layer->refresh_masks(space_.sparsity);
    }
  }
}

std::vector<torch::Tensor> Supernet::masks() const {
  std::vector<torch::Tensor> flat;
  for (const Block& block : blocks_) {
    for (const auto& layers : block.op_layers) {
      for (const auto& layer : layers) {
        for (const auto& by_level : layer->masks())
          flat.insert(flat.end(), by_level.begin(), by_level.end());
        for (const auto& by_level : layer->step_fractions()) {
          for (const auto& by_bits : by_level)
            flat.insert(flat.end(), by_bits.begin(), by_bits.end());
        }
      }
    }
  }
  return flat;
}

void Supernet::set_masks(const std::vector<torch::Tensor>& masks) {
  size_t next = 0;
  for (const Block& block : blocks_) {
    for (const auto& layers : block.op_layers) {
      for (const auto& layer : layers) {
        std::vector<std::vector<torch::Tensor>> restored = layer->masks();
        for (auto& by_level : restored) {
          for (torch::Tensor& mask : by_level) {
            if (next >= masks.size() || !masks[next].sizes().equals(mask.sizes())) {
              throw std::runtime_error(fmt::format("mask {} does not match the supernet", next));
            }
            mask = masks[next++].clone();
          }
        }
        layer->set_masks(std::move(restored));
        auto fractions = layer->step_fractions();
        for (auto& by_level : fractions) {
          for (auto& by_bits : by_level) {
            for (torch::Tensor& fraction : by_bits) {
              if (next >= masks.size() || !masks[next].sizes().equals(fraction.sizes())) {
                throw std::runtime_error(
                    fmt::format("step fraction {} does not match the supernet", next));
              }
              fraction = masks[next++].clone();
            }
          }
        }
        layer->set_step_fractions(std::move(fractions));
      }
    }
  }
  if (next != masks.size()) {
    throw std::runtime_error(fmt::format("{} masks for a supernet of {}", masks.size(), next));
  }
}

std::vector<torch::Tensor> Supernet::architecture_parameters() const {
  std::vector<torch::Tensor> list;
  for (const Block& b : blocks_) {
    list.insert(list.end(), {b.op_logits, b.width_logits});
    for (size_t o = 0; o < b.bits_logits.size(); ++o) {
      for (size_t l = 0; l < b.bits_logits[o].size(); ++l) {
        list.push_back(b.bits_logits[o][l]);
        if (b.sparsity_logits[o][l].defined()) list.push_back(b.sparsity_logits[o][l]);
      }
    }
  }
  list.insert(list.end(), hardware_logits_.begin(), hardware_logits_.end());
  return list;
}

std::vector<torch::Tensor> Supernet::weight_parameters() const {
  const std::vector<torch::Tensor> logits = architecture_parameters();
  std::vector<torch::Tensor> list;
  for (const torch::Tensor& p : parameters()) {
    const bool is_logit = std::any_of(logits.begin(), logits.end(), [&](const torch::Tensor& l) {
      return l.unsafeGetTensorImpl() == p.unsafeGetTensorImpl();
    });
    if (!is_logit) list.push_back(p);
  }
  return list;
}

SuperTensor Supernet::run_block(size_t k, const SuperTensor& in, const SamplingSettings& settings) {
  const Block& block = blocks_[k];
  const BlockSpace& bs = space_.blocks[k];
  torch::Tensor op_p, width_p;
  bool sample_operator = true;
  if (settings.fixed) {
    const BlockChoice& c = (*settings.fixed)[k];
    op_p = one_hot(int64_t(bs.ops.size()), c.op);
    width_p = one_hot(int64_t(bs.widths.size()), c.width);
  } else {
    const double t = settings.temperature, n = settings.noise;
    sample_operator = settings.hard || settings.sample_operator;
    op_p = gumbel_softmax(block.op_logits, t, n, sample_operator);
    width_p = gumbel_softmax(block.width_logits, t, n, settings.hard);
  }
  if (sample_operator || bs.ops.size() == 1) {
    const size_t o = argmax_of(op_p.detach());
    const torch::Tensor gate = op_p[int64_t(o)];
    SuperTensor out = run_operator(k, o, in, width_p, settings);
    out.x = out.x * gate;
    return out;
  }
  // Every operator runs; values, channel masks and width probabilities are mixed (a skip's
  // width probabilities are its input's, over the same widths).
  SuperTensor mixed;
  for (size_t o = 0; o < bs.ops.size(); ++o) {
    const torch::Tensor p = op_p[int64_t(o)];
    const SuperTensor out = run_operator(k, o, in, width_p, settings);
    if (!mixed.x.defined()) {
      mixed = {out.x * p, out.mask * p, out.width_probabilities * p};
    } else {
      mixed.x = mixed.x + out.x * p;
      mixed.mask = mixed.mask + out.mask * p;
      mixed.width_probabilities = mixed.width_probabilities + out.width_probabilities * p;
    }
  }
  return mixed;
}

SuperTensor Supernet::run_operator(size_t k, size_t o, const SuperTensor& in,
                                   const torch::Tensor& width_p, const SamplingSettings& settings) {
  const Block& block = blocks_[k];
  const BlockSpace& bs = space_.blocks[k];
  const SearchOperator& op = *bs.ops[o];
  const auto& layers = block.op_layers[o];
  if (op.passes_input()) return in;

  // Each layer's bitwidth and sparsity probabilities (a depthwise layer: dense, index 0).
  const auto levels = int64_t(space_.sparsity.size());
  std::vector<torch::Tensor> bits_p, sparsity_p;
  for (size_t l = 0; l < layers.size(); ++l) {
    const torch::Tensor& sparsity_logits = block.sparsity_logits[o][l];
    if (settings.fixed) {
      const BlockChoice& c = (*settings.fixed)[k];
      if (c.op != o || c.layers.size() != layers.size()) {
        throw std::logic_error("Supernet: a fixed choice without its layers' bits and sparsity");
      }
      bits_p.push_back(one_hot(int64_t(space_.bits.size()), c.layers[l].bits));
      sparsity_p.push_back(one_hot(levels, sparsity_logits.defined() ? c.layers[l].sparsity : 0));
    } else {
      const double t = settings.temperature, n = settings.noise;
      bits_p.push_back(gumbel_softmax(block.bits_logits[o][l], t, n, settings.hard));
      sparsity_p.push_back(sparsity_logits.defined()
                               ? gumbel_softmax(sparsity_logits, t, n, settings.hard)
                               : one_hot(levels, 0));
    }
  }

  const int64_t max_out = bs.widths.back();
  const torch::Tensor out_mask = torch::matmul(width_p, width_matrix(bs.widths, max_out));
  auto channel_mask = [](const torch::Tensor& mask) { return mask.reshape({1, -1, 1, 1}); };
  const torch::Tensor whole = torch::ones({1});
  auto run = [&](size_t i, const torch::Tensor& x) {
    const bool depthwise = layers[i]->kind() == SharedLayer::Kind::Depthwise;
    return layers[i]->forward(x, depthwise ? whole : in.width_probabilities, bits_p[i],
                              sparsity_p[i], space_.bits, settings.ranks);
  };
  // The layers in order, each reading what the one before wrote; a layer that writes the
  // hidden width has its output masked to the active hidden channels. A fully connected
  // layer reads the globally pooled input and ends the network (logits, all classes).
  const std::vector<OperatorLayer>& described = op.layers();
  // Built on first use: most operators (conv, the classifier) write no hidden width.
  torch::Tensor hidden_mask;
  torch::Tensor y = in.x;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (described[i].shape == OperatorLayer::Shape::FullyConnected) {
      y = run(i, y.mean({2, 3}, /*keepdim=*/true));
      return {y.reshape({y.size(0), -1}), torch::ones({max_out}), width_p};
    }
    y = run(i, y);
    if (described[i].to_hidden) {
      if (!hidden_mask.defined()) {
        hidden_mask = channel_mask(in.mask.repeat_interleave(int64_t(op.expansion())));
      }
      y = y * hidden_mask;
    }
  }
  if (op.adds_input() && bs.stride == 1) {
    // The input is added when the output width equals the input width: its weight is the
    // probability of that event.
    const std::vector<uint32_t>& in_widths = geometry_[k].in_widths;
    torch::Tensor same = torch::zeros({});
    for (size_t i = 0; i < in_widths.size(); ++i) {
      for (size_t j = 0; j < bs.widths.size(); ++j) {
        if (in_widths[i] == bs.widths[j]) {
          same = same + in.width_probabilities[int64_t(i)] * width_p[int64_t(j)];
        }
      }
    }
    torch::Tensor x = in.x;
    if (x.size(1) > max_out) x = x.slice(1, 0, max_out);
    if (x.size(1) < max_out) x = torch::constant_pad_nd(x, {0, 0, 0, 0, 0, max_out - x.size(1)});
    y = y + same * x;
  }
  return {y * channel_mask(out_mask), out_mask, width_p};
}

torch::Tensor Supernet::forward(const torch::Tensor& images, const SamplingSettings& settings) {
  SuperTensor t{images, torch::ones({images.size(1)}), torch::ones({1})};
  for (size_t k = 0; k < blocks_.size(); ++k) t = run_block(k, t, settings);
  // A super-resolution network's output: the upscaler's channels as pixels, flattened as
  // QNet::forward returns them.
  if (space_.scale > 0) {
    torch::Tensor y = t.x;
    if (anchor_filter_.defined()) {
      // ArchitectureSpec::anchor with its exact float filter (the derived network's is
      // rounded to int8 weights).
      y = y + torch::conv2d(images, anchor_filter_, {}, 1, anchor_filter_.size(3) / 2);
    }
    return depth_to_space(y, space_.scale).flatten(1);
  }
  return t.x;
}

void Supernet::refresh_weight_tables() {
  // Hardware candidates whose compilers chose the same block depths for a layer share its
  // encodings.
  WeightLayoutCache encoded;
  for (CandidateCostTables& tables : candidates_) encode_weight_tables(tables, encoded);
}

void Supernet::encode_weight_tables(CandidateCostTables& tables, WeightLayoutCache& encoded) const {
  const HardwareTables& hardware = tables.hardware;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockGeometry& g = geometry_[k];
    const TableShape shape = table_shape(space_, k);
    const std::vector<uint32_t>* depths =
        hardware.blocks.size() == blocks_.size() ? &hardware.blocks[k].block_depth : nullptr;
    std::vector<double>& weights = tables.weight[k];
    std::vector<double>& flash = tables.flash[k];
    weights.assign(shape.size(), 0.0);
    flash.assign(shape.size(), 0.0);
    // Slices that do not depend on every index (the expand and depthwise layers on the
    // output width, the depthwise on the sparsity) are encoded once.
    for (size_t o = 0; o < shape.ops; ++o) {
      const auto& layers = blocks_[k].op_layers[o];
      for (size_t l = 0; l < layers.size(); ++l) {
        for (size_t i = 0; i < shape.in_widths; ++i) {
          for (size_t j = 0; j < shape.out_widths; ++j) {
            const auto [out, in] = layer_slice(*bs.ops[o], l, g.in_widths[i], bs.widths[j]);
            for (size_t b = 0; b < shape.bits; ++b) {
              for (size_t s = 0; s < shape.sparsity; ++s) {
                const size_t n = shape.index(o, l, i, j, b, s);
                const uint32_t depth = depths && !depths->empty() ? depths->at(n) : 0;
                const size_t level = layers[l]->prunable() ? s : 0;
                const auto key = std::make_tuple(k, o, l, out, in, b, level, depth);
                auto it = encoded.find(key);
                if (it == encoded.end()) {
                  const fm::WeightLayout layout =
                      layers[l]->layout(out, in, space_.bits[b], space_.sparsity[level], depth);
                  it = encoded.emplace(key, layout).first;
                }
                weights[n] = double(it->second.stream_bytes);
                flash[n] = double(it->second.image_bytes);
              }
            }
          }
        }
      }
    }
  }
}

double Supernet::refresh_cycles_table(const npu_sim::NpuConfig& npu) {
  return refresh_cycles_tables({npu});
}

double Supernet::refresh_cycles_tables(const std::vector<npu_sim::NpuConfig>& npus) {
  if (npus.size() != candidates_.size()) {
    throw std::logic_error(fmt::format("Supernet: {} NPUs for {} hardware candidates", npus.size(),
                                       candidates_.size()));
  }
  double seconds = 0;
  for (size_t h = 0; h < candidates_.size(); ++h) {
    seconds += remeasure_candidate_cycles(candidates_[h].hardware, npus[h]);
  }
  return seconds;
}

double Supernet::remeasure_candidate_cycles(HardwareTables& hardware,
                                            const npu_sim::NpuConfig& npu) const {
  if (hardware.blocks.size() != blocks_.size()) {
    throw std::logic_error("Supernet: hardware tables not set");
  }
  remeasure_cycles(
      hardware, space_, npu,
      [&](size_t k, size_t o, size_t l, size_t i, size_t j, uint32_t bits, double sparsity) {
        const BlockSpace& bs = space_.blocks[k];
        const auto [out, in] = layer_slice(*bs.ops[o], l, geometry_[k].in_widths[i], bs.widths[j]);
        return blocks_[k].op_layers[o][l]->integer_weights(out, in, bits, sparsity);
      });
  return hardware.seconds;
}

ExpectedCosts Supernet::expected_costs_per_hardware() const {
  for (const CandidateCostTables& c : candidates_) {
    if (c.hardware.blocks.size() != blocks_.size()) {
      throw std::logic_error("Supernet: hardware tables not set");
    }
  }
  const auto dtype = torch::kDouble;
  const int64_t hardware = int64_t(candidates_.size());
  // A table of every candidate, stacked: [H, ...].
  auto stacked = [&](auto table_of, const std::vector<int64_t>& dims) {
    std::vector<torch::Tensor> tables;
    for (const CandidateCostTables& c : candidates_) {
      tables.push_back(torch::tensor(table_of(c), dtype).reshape(dims));
    }
    return torch::stack(tables);
  };
  torch::Tensor in = torch::ones({1}, dtype);
  torch::Tensor weights = torch::zeros({hardware}, dtype), flash = torch::zeros({hardware}, dtype),
                cycles = torch::zeros({hardware}, dtype);
  std::vector<torch::Tensor> sram;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const Block& block = blocks_[k];
    const BlockSpace& bs = space_.blocks[k];
    const TableShape shape = table_shape(space_, k);
    const std::vector<int64_t> layer_dims{int64_t(shape.ops),       int64_t(shape.layers),
                                          int64_t(shape.in_widths), int64_t(shape.out_widths),
                                          int64_t(shape.bits),      int64_t(shape.sparsity)};
    const torch::Tensor weight_table =
        stacked([&](const CandidateCostTables& c) { return c.weight[k]; }, layer_dims);
    const torch::Tensor flash_table =
        stacked([&](const CandidateCostTables& c) { return c.flash[k]; }, layer_dims);
    const torch::Tensor cycles_table = stacked(
        [&](const CandidateCostTables& c) { return c.hardware.blocks[k].cycles; }, layer_dims);
    const torch::Tensor op = torch::softmax(block.op_logits.to(dtype), 0);
    const torch::Tensor width = torch::softmax(block.width_logits.to(dtype), 0);
    const torch::Tensor dense = one_hot(int64_t(shape.sparsity), 0).to(dtype);
    for (size_t o = 0; o < shape.ops; ++o) {
      for (size_t l = 0; l < block.bits_logits[o].size(); ++l) {
        const torch::Tensor bits = torch::softmax(block.bits_logits[o][l].to(dtype), 0);
        const torch::Tensor& sparsity_logits = block.sparsity_logits[o][l];
        const torch::Tensor sparsity =
            sparsity_logits.defined() ? torch::softmax(sparsity_logits.to(dtype), 0) : dense;
        const torch::Tensor p = op[int64_t(o)];
        auto expected = [&](const torch::Tensor& table) {
          return torch::einsum(
              "i,j,b,s,hijbs->h",
              {in, width, bits, sparsity, table.select(1, int64_t(o)).select(1, int64_t(l))});
        };
        weights = weights + p * expected(weight_table);
        flash = flash + p * expected(flash_table);
        cycles = cycles + p * expected(cycles_table);
      }
    }
    // The arena does not depend on bitwidth or sparsity: the first entry stands for all.
    const torch::Tensor arena =
        stacked([&](const CandidateCostTables& c) { return c.hardware.blocks[k].sram_bytes; },
                {int64_t(shape.ops), int64_t(shape.in_widths), int64_t(shape.out_widths),
                 int64_t(shape.bits), int64_t(shape.sparsity)})
            .select(5, 0)
            .select(4, 0);
    sram.push_back(torch::einsum("o,i,j,hoij->h", {op, in, width, arena}));
    torch::Tensor out = width;
    for (size_t o = 0; o < bs.ops.size(); ++o) {
      if (bs.ops[o]->passes_input()) {
        const torch::Tensor skip = op[int64_t(o)];
        out = skip * in + (1.0 - skip) * width;
      }
    }
    in = out;
  }
  return {weights, flash, std::get<0>(torch::stack(sram).max(0)), cycles};
}

ExpectedCosts Supernet::mixed(const ExpectedCosts& each) const {
  if (candidates_.size() == 1) {
    return {each.weight_bytes[0], each.flash_bytes[0], each.sram_bytes[0], each.cycles[0]};
  }
  const torch::Tensor p = hardware_probabilities();
  return {(p * each.weight_bytes).sum(), (p * each.flash_bytes).sum(), (p * each.sram_bytes).sum(),
          (p * each.cycles).sum()};
}

std::vector<size_t> Supernet::input_width_indices(const ArchitectureChoice& choice) const {
  std::vector<size_t> indices;
  size_t current = 0;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    indices.push_back(current);
    if (!space_.blocks[k].ops[choice[k].op]->passes_input()) current = choice[k].width;
  }
  return indices;
}

TableCosts Supernet::table_costs(const ArchitectureChoice& choice) const {
  const std::vector<size_t> in = input_width_indices(choice);
  TableCosts costs;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockChoice& c = choice[k];
    const TableShape shape = table_shape(space_, k);
    const size_t count = blocks_[k].op_layers.at(c.op).size();
    if (c.layers.size() != count) {
      throw std::logic_error(fmt::format("Supernet: block {} has {} layer choices for {} layers",
                                         space_.blocks[k].name, c.layers.size(), count));
    }
    for (size_t l = 0; l < count; ++l) {
      const LayerChoice& lc = c.layers[l];
      const size_t n = shape.index(c.op, l, in[k], c.width, lc.bits, lc.sparsity);
      costs.weight_bytes += selected().weight[k].at(n);
      costs.flash_bytes += selected().flash[k].at(n);
      if (selected().hardware.blocks.empty()) continue;
      const BlockHardwareTable& hw = selected().hardware.blocks[k];
      costs.cycles += hw.cycles.at(n);
      // The block's arena and fit as measured with every layer at this layer's choice.
      const size_t u = shape.uniform_index(c.op, in[k], c.width, lc.bits, lc.sparsity);
      costs.sram_bytes = std::max(costs.sram_bytes, hw.sram_bytes.at(u));
      costs.fits = costs.fits && hw.fits.at(u);
    }
  }
  return costs;
}

std::vector<LayerChoice> Supernet::most_probable_layers(size_t block, size_t op) const {
  const Block& b = blocks_.at(block);
  std::vector<LayerChoice> layers;
  for (size_t l = 0; l < b.bits_logits.at(op).size(); ++l) {
    const torch::Tensor& sparsity = b.sparsity_logits[op][l];
    layers.push_back(
        {argmax_of(b.bits_logits[op][l]), sparsity.defined() ? argmax_of(sparsity) : 0});
  }
  return layers;
}

ArchitectureChoice Supernet::most_probable() const {
  ArchitectureChoice choice;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const Block& b = blocks_[k];
    const size_t op = argmax_of(b.op_logits);
    choice.push_back({op, argmax_of(b.width_logits), most_probable_layers(k, op)});
  }
  return choice;
}

double Supernet::log_probability(const ArchitectureChoice& choice) const {
  torch::NoGradGuard no_grad;
  double total = 0;
  auto log_p = [](const torch::Tensor& logits, size_t i) {
    return torch::log_softmax(logits.to(torch::kDouble), 0)[int64_t(i)].item<double>();
  };
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const Block& b = blocks_[k];
    const BlockChoice& c = choice[k];
    total += log_p(b.op_logits, c.op);
    if (space_.blocks[k].ops[c.op]->passes_input()) continue;
    total += log_p(b.width_logits, c.width);
    for (size_t l = 0; l < c.layers.size(); ++l) {
      total += log_p(b.bits_logits[c.op].at(l), c.layers[l].bits);
      const torch::Tensor& sparsity = b.sparsity_logits[c.op][l];
      if (sparsity.defined()) total += log_p(sparsity, c.layers[l].sparsity);
    }
  }
  return total;
}

torch::Tensor Supernet::logits(size_t block, const std::string& kind, size_t op,
                               size_t layer) const {
  const Block& b = blocks_.at(block);
  if (kind == "op") return b.op_logits;
  if (kind == "width") return b.width_logits;
  if (kind == "bits") return b.bits_logits.at(op).at(layer);
  if (kind == "sparsity") return b.sparsity_logits.at(op).at(layer);
  throw std::invalid_argument("Supernet::logits: unknown kind " + kind);
}

std::vector<double> Supernet::probabilities(size_t block, const std::string& kind, size_t op,
                                            size_t layer) const {
  torch::NoGradGuard no_grad;
  const torch::Tensor l = logits(block, kind, op, layer);
  if (!l.defined()) return {1.0};
  const torch::Tensor p = torch::softmax(l.to(torch::kDouble), 0).contiguous();
  return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
}

ArchitectureSpec Supernet::derive(const ArchitectureChoice& choice) const {
  ArchitectureSpec arch;
  arch.name = space_.name;
  arch.height = space_.height;
  arch.width = space_.width;
  arch.channels = space_.channels;
  arch.classes = space_.classes;
  arch.batch_statistics = space_.batch_statistics;
  arch.anchor = space_.anchor;
  arch.weight_step = space_.weight_step;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockChoice& c = choice[k];
    const SearchOperator& op = *bs.ops[c.op];
    if (c.layers.size() != op.layers().size()) {
      throw std::logic_error("Supernet::derive: layer choices do not match the operator");
    }
    ChosenOperator chosen{bs.name, bs.widths[c.width], bs.kernel, bs.stride, {}, {}};
    for (size_t l = 0; l < c.layers.size(); ++l) {
      chosen.bits.push_back(space_.bits[c.layers[l].bits]);
      // A dense layer's sparsity is 0 whatever its (unused) index.
      chosen.sparsity.push_back(op.prunable(l) ? space_.sparsity[c.layers[l].sparsity] : 0.0);
    }
    op.derive(chosen, arch.layers);
  }
  return arch;
}

void Supernet::inherit(const ArchitectureChoice& choice, QNet& net) const {
  const std::vector<size_t> in = input_width_indices(choice);
  const auto& targets = net.weighted();
  size_t next = 0;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockChoice& c = choice[k];
    const auto& layers = blocks_[k].op_layers[c.op];
    for (size_t l = 0; l < layers.size(); ++l) {
      if (next >= targets.size()) throw std::logic_error("Supernet::inherit: network mismatch");
      const auto [out, in_channels] =
          layer_slice(*bs.ops[c.op], l, geometry_[k].in_widths[in[k]], bs.widths[c.width]);
      layers[l]->copy_to(*targets[next++], out, in_channels);
    }
  }
  if (next != targets.size()) throw std::logic_error("Supernet::inherit: network mismatch");
}

std::string Supernet::describe(const ArchitectureChoice& choice) const {
  // "b3:ir2/64/w4-8-2/s50-75": bits of every weighted layer and sparsity of every prunable
  // one, in execution order, written once when all are equal.
  auto joined = [](const std::vector<int>& values) {
    const bool uniform =
        std::all_of(values.begin(), values.end(), [&](int v) { return v == values.front(); });
    return uniform ? std::to_string(values.front()) : fmt::format("{}", fmt::join(values, "-"));
  };
  std::string text;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockChoice& c = choice[k];
    const SearchOperator& op = *bs.ops[c.op];
    if (!text.empty()) text += ' ';
    text += bs.name + ':' + op.name();
    if (op.passes_input()) continue;
    std::vector<int> bits, sparsity;
    for (size_t l = 0; l < c.layers.size(); ++l) {
      bits.push_back(int(space_.bits[c.layers[l].bits]));
      if (op.prunable(l)) {
        sparsity.push_back(int(std::lround(100 * space_.sparsity[c.layers[l].sparsity])));
      }
    }
    text += fmt::format("/{}/w{}/s{}", bs.widths[c.width], joined(bits), joined(sparsity));
  }
  return text;
}

}  // namespace udc::search
