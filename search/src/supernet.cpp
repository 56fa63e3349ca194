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
}

torch::Tensor SharedLayer::forward(const torch::Tensor& x, const torch::Tensor& input_widths,
                                   const torch::Tensor& bits, const torch::Tensor& sparsity,
                                   const std::vector<uint32_t>& bit_choices) {
  if (masks_.size() != input_widths_.size() || input_widths.size(0) != int64_t(masks_.size()) ||
      (!masks_.empty() && masks_[0].size() != size_t(sparsity.size(0)))) {
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
    torch::Tensor sparse = prunable() ? torch::Tensor() : weight_;
    for (int64_t s = 0; prunable() && s < sparsity.size(0); ++s) {
      if (!needed(sparsity, s)) continue;
      const torch::Tensor term = sparsity[s] * (weight_ * masks_[size_t(i)][size_t(s)]);
      sparse = sparse.defined() ? sparse + term : term;
    }
    const torch::Tensor slice = input_slice(sparse.detach(), depthwise, input_widths_[size_t(i)]);
    for (int64_t b = 0; b < bits.size(0); ++b) {
      if (!needed(bits, b)) continue;
      const uint32_t width = bit_choices[size_t(b)];
      const torch::Tensor step = initial_weight_step(slice, width).reshape(channel_shape);
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
    y = batch_norm_->forward(y);
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

uint64_t SharedLayer::encoded_bytes(int64_t out, int64_t in, uint32_t bits, double sparsity) const {
  torch::NoGradGuard no_grad;
  const torch::Tensor folded = folded_slice(out, in);
  const torch::Tensor masked = folded * magnitude_mask(folded, prunable() ? sparsity : 0.0);
  torch::Tensor integers = weight_integers(masked, initial_weight_step(masked, bits), bits);
  // The model's order: [oc][kh][kw][ic] for convolutions; depthwise and fc as Torch's.
  if (kind_ == Kind::Conv) integers = integers.permute({0, 2, 3, 1});
  const torch::Tensor as_int = integers.contiguous().to(torch::kInt8);
  return compression::encoded_size_bytes(as_int.data_ptr<int8_t>(), size_t(as_int.numel()));
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

/// Matrix [choices, channels]: row j is 1 on the first widths[j] channels.
torch::Tensor width_matrix(const std::vector<uint32_t>& widths, int64_t channels) {
  torch::Tensor m = torch::zeros({int64_t(widths.size()), channels});
  for (size_t j = 0; j < widths.size(); ++j) m[int64_t(j)].slice(0, 0, widths[j]).fill_(1.0);
  return m;
}

}  // namespace

Supernet::Supernet(const SearchSpace& space) : space_(space), geometry_(block_geometry(space)) {
  for (size_t k = 0; k < space_.blocks.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockGeometry& g = geometry_[k];
    const uint32_t max_in = *std::max_element(g.in_widths.begin(), g.in_widths.end());
    const uint32_t max_out = bs.widths.back();
    Block block;
    for (const OpChoice& op : bs.ops) {
      std::vector<std::shared_ptr<SharedLayer>> layers;
      using K = SharedLayer::Kind;
      switch (op.op) {
        case BlockOp::Conv:
          layers.push_back(std::make_shared<SharedLayer>(K::Conv, max_in, max_out, bs.kernel,
                                                         bs.stride, g.in_height, g.in_width, true));
          break;
        case BlockOp::Separable:
          layers.push_back(std::make_shared<SharedLayer>(K::Depthwise, max_in, max_in, bs.kernel,
                                                         bs.stride, g.in_height, g.in_width, true));
          layers.push_back(std::make_shared<SharedLayer>(K::Conv, max_in, max_out, 1, 1,
                                                         g.out_height, g.out_width, true));
          break;
        case BlockOp::InvertedResidual: {
          const uint32_t hidden = max_in * op.expansion;
          if (op.expansion > 1) {
            layers.push_back(std::make_shared<SharedLayer>(K::Conv, max_in, hidden, 1, 1,
                                                           g.in_height, g.in_width, true));
          }
          layers.push_back(std::make_shared<SharedLayer>(K::Depthwise, hidden, hidden, bs.kernel,
                                                         bs.stride, g.in_height, g.in_width, true));
          layers.push_back(std::make_shared<SharedLayer>(K::Conv, hidden, max_out, 1, 1,
                                                         g.out_height, g.out_width, false));
          break;
        }
        case BlockOp::Classifier:
          layers.push_back(
              std::make_shared<SharedLayer>(K::FullyConnected, max_in, max_out, 1, 1, 1, 1, false));
          break;
        case BlockOp::Skip:
          break;
      }
      // Each layer's possible input widths, by the block's input width index.
      std::vector<int64_t> block_inputs(g.in_widths.begin(), g.in_widths.end()), hidden_inputs;
      for (uint32_t w : g.in_widths) hidden_inputs.push_back(int64_t(w) * op.expansion);
      for (size_t i = 0; i < layers.size(); ++i) {
        const bool depthwise = layers[i]->kind() == K::Depthwise;
        const bool after_hidden = op.op == BlockOp::InvertedResidual && i + 1 == layers.size();
        if (!depthwise) layers[i]->set_input_widths(after_hidden ? hidden_inputs : block_inputs);
        register_module(fmt::format("{}_{}_{}", bs.name, op.name(), i), layers[i]);
      }
      block.op_layers.push_back(std::move(layers));
    }
    auto logits = [&](const std::string& kind, size_t n) {
      return register_parameter(bs.name + "_" + kind + "_logits", torch::zeros({int64_t(n)}));
    };
    block.op_logits = logits("op", bs.ops.size());
    block.width_logits = logits("width", bs.widths.size());
    block.bits_logits = logits("bits", space_.bits.size());
    block.sparsity_logits = logits("sparsity", space_.sparsity.size());
    blocks_.push_back(std::move(block));
  }
  refresh_masks();
  flash_table_.resize(blocks_.size());
}

void Supernet::refresh_masks() {
  for (const Block& block : blocks_) {
    for (const auto& layers : block.op_layers) {
      for (const auto& layer : layers) layer->refresh_masks(space_.sparsity);
    }
  }
}

std::vector<torch::Tensor> Supernet::architecture_parameters() const {
  std::vector<torch::Tensor> list;
  for (const Block& b : blocks_) {
    list.insert(list.end(), {b.op_logits, b.width_logits, b.bits_logits, b.sparsity_logits});
  }
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
  torch::Tensor op_p, width_p, bits_p, sparsity_p;
  bool sample_operator = true;
  if (settings.fixed) {
    const BlockChoice& c = (*settings.fixed)[k];
    op_p = one_hot(int64_t(bs.ops.size()), c.op);
    width_p = one_hot(int64_t(bs.widths.size()), c.width);
    bits_p = one_hot(int64_t(space_.bits.size()), c.bits);
    sparsity_p = one_hot(int64_t(space_.sparsity.size()), c.sparsity);
  } else {
    const double t = settings.temperature, n = settings.noise;
    sample_operator = settings.hard || settings.sample_operator;
    op_p = gumbel_softmax(block.op_logits, t, n, sample_operator);
    width_p = gumbel_softmax(block.width_logits, t, n, settings.hard);
    bits_p = gumbel_softmax(block.bits_logits, t, n, settings.hard);
    sparsity_p = gumbel_softmax(block.sparsity_logits, t, n, settings.hard);
  }
  if (sample_operator || bs.ops.size() == 1) {
    const size_t o = argmax_of(op_p.detach());
    const torch::Tensor gate = op_p[int64_t(o)];
    SuperTensor out = run_operator(k, o, in, width_p, bits_p, sparsity_p);
    out.x = out.x * gate;
    return out;
  }
  // Every operator runs; values, channel masks and width probabilities are mixed (a skip's
  // width probabilities are its input's, over the same widths).
  SuperTensor mixed;
  for (size_t o = 0; o < bs.ops.size(); ++o) {
    const torch::Tensor p = op_p[int64_t(o)];
    const SuperTensor out = run_operator(k, o, in, width_p, bits_p, sparsity_p);
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
                                   const torch::Tensor& width_p, const torch::Tensor& bits_p,
                                   const torch::Tensor& sparsity_p) {
  const Block& block = blocks_[k];
  const BlockSpace& bs = space_.blocks[k];
  const OpChoice& op = bs.ops[o];
  const auto& layers = block.op_layers[o];
  if (op.op == BlockOp::Skip) return in;

  const int64_t max_out = bs.widths.back();
  const torch::Tensor out_mask = torch::matmul(width_p, width_matrix(bs.widths, max_out));
  auto channel_mask = [](const torch::Tensor& mask) { return mask.reshape({1, -1, 1, 1}); };
  const torch::Tensor whole = torch::ones({1});
  auto run = [&](size_t i, const torch::Tensor& x) {
    const bool depthwise = layers[i]->kind() == SharedLayer::Kind::Depthwise;
    return layers[i]->forward(x, depthwise ? whole : in.width_probabilities, bits_p, sparsity_p,
                              space_.bits);
  };
  torch::Tensor y;
  switch (op.op) {
    case BlockOp::Conv:
      y = run(0, in.x);
      break;
    case BlockOp::Separable:
      y = run(1, run(0, in.x) * channel_mask(in.mask));
      break;
    case BlockOp::InvertedResidual: {
      torch::Tensor h = in.x;
      size_t next = 0;
      const torch::Tensor hidden_mask =
          channel_mask(in.mask.repeat_interleave(int64_t(op.expansion)));
      if (op.expansion > 1) h = run(next++, h) * hidden_mask;
      h = run(next++, h) * hidden_mask;
      y = run(next, h);
      if (bs.stride == 1) {
        // The residual exists when the output width equals the input width: its weight is
        // the probability of that event.
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
        if (x.size(1) < max_out)
          x = torch::constant_pad_nd(x, {0, 0, 0, 0, 0, max_out - x.size(1)});
        y = y + same * x;
      }
      break;
    }
    case BlockOp::Classifier:
      y = run(0, in.x.mean({2, 3}, /*keepdim=*/true));
      return {y.reshape({y.size(0), -1}), torch::ones({max_out}), width_p};
    case BlockOp::Skip:
      break;
  }
  return {y * channel_mask(out_mask), out_mask, width_p};
}

torch::Tensor Supernet::forward(const torch::Tensor& images, const SamplingSettings& settings) {
  SuperTensor t{images, torch::ones({images.size(1)}), torch::ones({1})};
  for (size_t k = 0; k < blocks_.size(); ++k) t = run_block(k, t, settings);
  return t.x;
}

void Supernet::refresh_flash_table() {
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockGeometry& g = geometry_[k];
    const TableShape shape = table_shape(space_, k);
    std::vector<double>& table = flash_table_[k];
    table.assign(shape.size(), 0.0);
    // Layers whose slice does not depend on every index are encoded once.
    std::map<std::tuple<const SharedLayer*, int64_t, int64_t, size_t, size_t>, uint64_t> memo;
    auto bytes = [&](const SharedLayer& layer, int64_t out, int64_t in, size_t b, size_t s) {
      const auto key = std::make_tuple(&layer, out, in, b, s);
      auto it = memo.find(key);
      if (it != memo.end()) return it->second;
      const uint64_t n = layer.encoded_bytes(out, in, space_.bits[b], space_.sparsity[s]);
      memo.emplace(key, n);
      return n;
    };
    for (size_t o = 0; o < shape.ops; ++o) {
      const OpChoice& op = bs.ops[o];
      const auto& layers = blocks_[k].op_layers[o];
      for (size_t i = 0; i < shape.in_widths; ++i) {
        const int64_t wi = g.in_widths[i];
        for (size_t j = 0; j < shape.out_widths; ++j) {
          const int64_t wo = bs.widths[j];
          for (size_t b = 0; b < shape.bits; ++b) {
            for (size_t s = 0; s < shape.sparsity; ++s) {
              uint64_t total = 0;
              switch (op.op) {
                case BlockOp::Conv:
                case BlockOp::Classifier:
                  total = bytes(*layers[0], wo, wi, b, s);
                  break;
                case BlockOp::Separable:
                  total = bytes(*layers[0], wi, wi, b, s) + bytes(*layers[1], wo, wi, b, s);
                  break;
                case BlockOp::InvertedResidual: {
                  const int64_t hidden = wi * op.expansion;
                  size_t next = 0;
                  if (op.expansion > 1) total += bytes(*layers[next++], hidden, wi, b, s);
                  total += bytes(*layers[next++], hidden, hidden, b, s);
                  total += bytes(*layers[next], wo, hidden, b, s);
                  break;
                }
                case BlockOp::Skip:
                  break;
              }
              table[shape.index(o, i, j, b, s)] = double(total);
            }
          }
        }
      }
    }
  }
}

ExpectedCosts Supernet::expected_costs() const {
  if (hardware_.blocks.size() != blocks_.size()) {
    throw std::logic_error("Supernet: hardware tables not set");
  }
  const auto dtype = torch::kDouble;
  torch::Tensor in = torch::ones({1}, dtype);
  torch::Tensor flash = torch::zeros({}, dtype), cycles = torch::zeros({}, dtype);
  std::vector<torch::Tensor> sram;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const Block& block = blocks_[k];
    const BlockSpace& bs = space_.blocks[k];
    const TableShape shape = table_shape(space_, k);
    const std::vector<int64_t> dims{int64_t(shape.ops), int64_t(shape.in_widths),
                                    int64_t(shape.out_widths), int64_t(shape.bits),
                                    int64_t(shape.sparsity)};
    auto table = [&](const std::vector<double>& values) {
      return torch::tensor(values, dtype).reshape(dims);
    };
    const torch::Tensor op = torch::softmax(block.op_logits.to(dtype), 0);
    const torch::Tensor width = torch::softmax(block.width_logits.to(dtype), 0);
    const torch::Tensor bits = torch::softmax(block.bits_logits.to(dtype), 0);
    const torch::Tensor sparsity = torch::softmax(block.sparsity_logits.to(dtype), 0);
    flash = flash + torch::einsum("o,i,j,b,s,oijbs->",
                                  {op, in, width, bits, sparsity, table(flash_table_[k])});
    cycles = cycles + torch::einsum("o,i,j,b,s,oijbs->", {op, in, width, bits, sparsity,
                                                          table(hardware_.blocks[k].cycles)});
    // The arena does not depend on bitwidth or sparsity: the first entry stands for all.
    const torch::Tensor arena = table(hardware_.blocks[k].sram_bytes).select(4, 0).select(3, 0);
    sram.push_back(torch::einsum("o,i,j,oij->", {op, in, width, arena}));
    torch::Tensor out = width;
    for (size_t o = 0; o < bs.ops.size(); ++o) {
      if (bs.ops[o].op == BlockOp::Skip) {
        const torch::Tensor skip = op[int64_t(o)];
        out = skip * in + (1.0 - skip) * width;
      }
    }
    in = out;
  }
  return {flash, torch::stack(sram).max(), cycles};
}

std::vector<size_t> Supernet::input_width_indices(const ArchitectureChoice& choice) const {
  std::vector<size_t> indices;
  size_t current = 0;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    indices.push_back(current);
    if (space_.blocks[k].ops[choice[k].op].op != BlockOp::Skip) current = choice[k].width;
  }
  return indices;
}

TableCosts Supernet::table_costs(const ArchitectureChoice& choice) const {
  const std::vector<size_t> in = input_width_indices(choice);
  TableCosts costs;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockChoice& c = choice[k];
    const size_t n = table_shape(space_, k).index(c.op, in[k], c.width, c.bits, c.sparsity);
    costs.flash_bytes += flash_table_[k].at(n);
    if (!hardware_.blocks.empty()) {
      costs.cycles += hardware_.blocks[k].cycles[n];
      costs.sram_bytes = std::max(costs.sram_bytes, hardware_.blocks[k].sram_bytes[n]);
      costs.fits = costs.fits && hardware_.blocks[k].fits[n];
    }
  }
  return costs;
}

ArchitectureChoice Supernet::most_probable() const {
  ArchitectureChoice choice;
  for (const Block& b : blocks_) {
    choice.push_back({argmax_of(b.op_logits), argmax_of(b.width_logits), argmax_of(b.bits_logits),
                      argmax_of(b.sparsity_logits)});
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
    if (space_.blocks[k].ops[c.op].op == BlockOp::Skip) continue;
    total += log_p(b.width_logits, c.width) + log_p(b.bits_logits, c.bits) +
             log_p(b.sparsity_logits, c.sparsity);
  }
  return total;
}

std::vector<double> Supernet::probabilities(size_t block, const std::string& kind) const {
  torch::NoGradGuard no_grad;
  const Block& b = blocks_.at(block);
  const torch::Tensor& logits = kind == "op"      ? b.op_logits
                                : kind == "width" ? b.width_logits
                                : kind == "bits"  ? b.bits_logits
                                                  : b.sparsity_logits;
  const torch::Tensor p = torch::softmax(logits.to(torch::kDouble), 0).contiguous();
  return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
}

ArchitectureSpec Supernet::derive(const ArchitectureChoice& choice) const {
  ArchitectureSpec arch;
  arch.name = space_.name;
  arch.height = space_.height;
  arch.width = space_.width;
  arch.channels = space_.channels;
  arch.classes = space_.classes;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockChoice& c = choice[k];
    const OpChoice& op = bs.ops[c.op];
    LayerSpec layer;
    layer.name = bs.name;
    layer.out_channels = bs.widths[c.width];
    layer.kernel = bs.kernel;
    layer.stride = bs.stride;
    layer.weight_bits = space_.bits[c.bits];
    layer.sparsity = space_.sparsity[c.sparsity];
    layer.activation = ActivationKind::Relu;
    switch (op.op) {
      case BlockOp::Conv:
        layer.kind = LayerKind::Conv;
        arch.layers.push_back(layer);
        break;
      case BlockOp::Separable: {
        LayerSpec depthwise = layer;
        depthwise.kind = LayerKind::Depthwise;
        depthwise.name = bs.name + "_dw";
        depthwise.out_channels = 0;
        depthwise.sparsity = 0.0;  // as SharedLayer::prunable
        arch.layers.push_back(depthwise);
        layer.kind = LayerKind::Conv;
        layer.name = bs.name + "_pw";
        layer.kernel = 1;
        layer.stride = 1;
        arch.layers.push_back(layer);
        break;
      }
      case BlockOp::InvertedResidual:
        layer.kind = LayerKind::InvertedResidual;
        layer.expansion = op.expansion;
        arch.layers.push_back(layer);
        break;
      case BlockOp::Classifier: {
        LayerSpec pool;
        pool.kind = LayerKind::GlobalAvgPool;
        pool.name = "pool";
        pool.activation = ActivationKind::None;
        pool.kernel = 1;
        arch.layers.push_back(pool);
        layer.kind = LayerKind::FullyConnected;
        layer.kernel = 1;
        layer.activation = ActivationKind::None;
        arch.layers.push_back(layer);
        break;
      }
      case BlockOp::Skip:
        break;
    }
  }
  return arch;
}

void Supernet::inherit(const ArchitectureChoice& choice, QNet& net) const {
  const std::vector<size_t> in = input_width_indices(choice);
  const auto& targets = net.weighted();
  size_t next = 0;
  auto copy = [&](const SharedLayer& layer, int64_t out, int64_t in_channels) {
    if (next >= targets.size()) throw std::logic_error("Supernet::inherit: network mismatch");
    layer.copy_to(*targets[next++], out, in_channels);
  };
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockChoice& c = choice[k];
    const OpChoice& op = bs.ops[c.op];
    const auto& layers = blocks_[k].op_layers[c.op];
    const int64_t wi = geometry_[k].in_widths[in[k]], wo = bs.widths[c.width];
    switch (op.op) {
      case BlockOp::Conv:
      case BlockOp::Classifier:
        copy(*layers[0], wo, wi);
        break;
      case BlockOp::Separable:
        copy(*layers[0], wi, wi);
        copy(*layers[1], wo, wi);
        break;
      case BlockOp::InvertedResidual: {
        const int64_t hidden = wi * op.expansion;
        size_t l = 0;
        if (op.expansion > 1) copy(*layers[l++], hidden, wi);
        copy(*layers[l++], hidden, hidden);
        copy(*layers[l], wo, hidden);
        break;
      }
      case BlockOp::Skip:
        break;
    }
  }
  if (next != targets.size()) throw std::logic_error("Supernet::inherit: network mismatch");
}

std::string Supernet::describe(const ArchitectureChoice& choice) const {
  std::string text;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const BlockSpace& bs = space_.blocks[k];
    const BlockChoice& c = choice[k];
    if (!text.empty()) text += ' ';
    text += bs.name + ':' + bs.ops[c.op].name();
    if (bs.ops[c.op].op == BlockOp::Skip) continue;
    text += fmt::format("/{}/w{}/s{}", bs.widths[c.width], space_.bits[c.bits],
                        int(std::lround(100 * space_.sparsity[c.sparsity])));
  }
  return text;
}

}  // namespace udc::search
