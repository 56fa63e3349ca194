#include "kernels.hpp"

#include <algorithm>
#include <cstring>

#include "udc/int8/fixed_point.hpp"

namespace udc::npu_sim {

namespace {

inline int8_t load(const MemoryArrays& m, const TensorRef& t, uint32_t y, uint32_t x, uint32_t c) {
  return static_cast<int8_t>(
      m.base[static_cast<int>(t.memory)][t.address + y * t.row_step() + x * t.col_step() + c]);
}

/// Dot product of two int16 vectors (vectorised by the compiler).
inline int32_t dot(const int16_t* a, const int16_t* b, uint32_t n) {
  int32_t sum = 0;
  for (uint32_t i = 0; i < n; ++i) sum += int32_t{a[i]} * int32_t{b[i]};
  return sum;
}

}  // namespace

KernelContext::KernelContext(const Command& command, const MemoryArrays& memories)
    : command_(command), memories_(memories) {
  const Command& c = command_;
  if (traits(c.kind).weights) {
    const uint32_t h = c.ifm.shape[0], w = c.ifm.shape[1], ch = c.ifm.shape[2];
    const bool fc = c.kind == CommandKind::FullyConnected;
    padded_h_ = h + (fc ? 0 : c.pad_top + c.pad_bottom);
    padded_w_ = w + (fc ? 0 : c.pad_left + c.pad_right);
    padded_input_.assign(size_t{padded_h_} * padded_w_ * ch, 0);
    const uint32_t top = fc ? 0 : c.pad_top, left = fc ? 0 : c.pad_left;
    const int32_t offset = -c.input_zero_point;
    for (uint32_t y = 0; y < h; ++y) {
      for (uint32_t x = 0; x < w; ++x) {
        int16_t* dst = &padded_input_[(size_t{y + top} * padded_w_ + (x + left)) * ch];
        const uint8_t* src = memories_.base[static_cast<int>(c.ifm.memory)] + c.ifm.address +
                             y * c.ifm.row_step() + x * c.ifm.col_step();
        for (uint32_t k = 0; k < ch; ++k) {
          dst[k] = static_cast<int16_t>(static_cast<int8_t>(src[k]) + offset);
        }
      }
    }
  }
}

void KernelContext::store(uint32_t y, uint32_t x, uint32_t channel, int32_t acc,
                          const ChannelScale& s) {
  const Command& c = command_;
  const int32_t value = int8::requantize(acc + s.bias, s.multiplier, s.shift, c.output_zero_point,
                                         c.activation_min, c.activation_max);
  memories_.base[static_cast<int>(c.ofm.memory)]
                [c.ofm.address + y * c.ofm.row_step() + x * c.ofm.col_step() + channel] =
      static_cast<uint8_t>(static_cast<int8_t>(value));
}

void KernelContext::run_block(uint32_t block, const int16_t* weights, const ChannelScale* scales) {
  const uint32_t first = block * command_.ofm_block_depth;
  const uint32_t count = command_.block_channels(block);
  switch (command_.kind) {
    case CommandKind::Conv2d:
      conv_block(first, count, weights, scales);
      break;
    case CommandKind::DepthwiseConv2d:
      depthwise_block(first, count, weights, scales);
      break;
    case CommandKind::FullyConnected:
      fully_connected_block(first, count, weights, scales);
      break;
    case CommandKind::Add:
      add_block(first, count);
      break;
    case CommandKind::MaxPool:
    case CommandKind::AvgPool:
    case CommandKind::Mean:
      pool_block(first, count);
      break;
    default:
      break;
  }
}

void KernelContext::conv_block(uint32_t first, uint32_t count, const int16_t* weights,
                               const ChannelScale* scales) {
  const Command& c = command_;
  const uint32_t ch = c.ifm.shape[2], kh = c.kernel_h, kw = c.kernel_w;
  const uint32_t row = kw * ch;  // one kernel row of weights, contiguous in the input too
  const size_t per_channel = size_t{kh} * row;
  for (uint32_t oy = 0; oy < c.ofm.shape[0]; ++oy) {
    for (uint32_t ox = 0; ox < c.ofm.shape[1]; ++ox) {
      const int16_t* window =
          &padded_input_[(size_t{oy * c.stride_h} * padded_w_ + ox * c.stride_w) * ch];
      for (uint32_t k = 0; k < count; ++k) {
        const int16_t* w = weights + k * per_channel;
        int32_t acc = 0;
        for (uint32_t ky = 0; ky < kh; ++ky) {
          acc += dot(window + size_t{ky} * padded_w_ * ch, w + ky * row, row);
        }
        store(oy, ox, first + k, acc, scales[k]);
      }
    }
  }
}

void KernelContext::depthwise_block(uint32_t first, uint32_t count, const int16_t* weights,
                                    const ChannelScale* scales) {
  const Command& c = command_;
  const uint32_t ch = c.ifm.shape[2], kh = c.kernel_h, kw = c.kernel_w;
  // Weights arrive per channel; the inner loop wants channels contiguous per tap.
  scratch_.resize(size_t{kh} * kw * count);
  for (uint32_t k = 0; k < count; ++k) {
    for (uint32_t t = 0; t < kh * kw; ++t) scratch_[t * count + k] = weights[k * kh * kw + t];
  }
  std::vector<int32_t> acc(count);
  for (uint32_t oy = 0; oy < c.ofm.shape[0]; ++oy) {
    for (uint32_t ox = 0; ox < c.ofm.shape[1]; ++ox) {
      std::fill(acc.begin(), acc.end(), 0);
      for (uint32_t ky = 0; ky < kh; ++ky) {
        for (uint32_t kx = 0; kx < kw; ++kx) {
          const int16_t* in =
              &padded_input_[(size_t{oy * c.stride_h + ky} * padded_w_ + (ox * c.stride_w + kx)) *
                                 ch +
                             first];
          const int16_t* w = &scratch_[(ky * kw + kx) * count];
          for (uint32_t k = 0; k < count; ++k) acc[k] += int32_t{in[k]} * int32_t{w[k]};
        }
      }
      for (uint32_t k = 0; k < count; ++k) store(oy, ox, first + k, acc[k], scales[k]);
    }
  }
}

void KernelContext::fully_connected_block(uint32_t first, uint32_t count, const int16_t* weights,
                                          const ChannelScale* scales) {
  const uint32_t n = static_cast<uint32_t>(padded_input_.size());
  for (uint32_t k = 0; k < count; ++k) {
    store(0, 0, first + k, dot(padded_input_.data(), weights + size_t{k} * n, n), scales[k]);
  }
}

void KernelContext::add_block(uint32_t first, uint32_t count) {
  const Command& c = command_;
  for (uint32_t y = 0; y < c.ofm.shape[0]; ++y) {
    for (uint32_t x = 0; x < c.ofm.shape[1]; ++x) {
      for (uint32_t k = first; k < first + count; ++k) {
        const int32_t value = int8::add(
            load(memories_, c.ifm, y, x, k), c.input_zero_point, load(memories_, c.ifm2, y, x, k),
            c.input2_zero_point, c.add, c.output_zero_point, c.activation_min, c.activation_max);
        memories_.base[static_cast<int>(c.ofm.memory)]
                      [c.ofm.address + y * c.ofm.row_step() + x * c.ofm.col_step() + k] =
            static_cast<uint8_t>(static_cast<int8_t>(value));
      }
    }
  }
}

void KernelContext::pool_block(uint32_t first, uint32_t count) {
  const Command& c = command_;
  const bool max_pool = c.kind == CommandKind::MaxPool;
  const int64_t h = c.ifm.shape[0], w = c.ifm.shape[1];
  for (uint32_t oy = 0; oy < c.ofm.shape[0]; ++oy) {
    const int64_t y0 = int64_t{oy} * c.stride_h - c.pad_top;
    const int64_t ys = std::max<int64_t>(0, y0), ye = std::min<int64_t>(h, y0 + c.kernel_h);
    for (uint32_t ox = 0; ox < c.ofm.shape[1]; ++ox) {
      const int64_t x0 = int64_t{ox} * c.stride_w - c.pad_left;
      const int64_t xs = std::max<int64_t>(0, x0), xe = std::min<int64_t>(w, x0 + c.kernel_w);
      for (uint32_t k = first; k < first + count; ++k) {
        int32_t value;
        if (max_pool) {
          value = -128;
          for (int64_t y = ys; y < ye; ++y) {
            for (int64_t x = xs; x < xe; ++x) {
              value = std::max<int32_t>(value, load(memories_, c.ifm, static_cast<uint32_t>(y),
                                                    static_cast<uint32_t>(x), k));
            }
          }
        } else {
          int32_t sum = 0;
          const int32_t n = static_cast<int32_t>((ye - ys) * (xe - xs));
          for (int64_t y = ys; y < ye; ++y) {
            for (int64_t x = xs; x < xe; ++x) {
              sum += load(memories_, c.ifm, static_cast<uint32_t>(y), static_cast<uint32_t>(x), k);
            }
          }
          if (c.kind == CommandKind::Mean) {
            // TFLite's MEAN: the sum of (input - zero point), rescaled, then averaged.
            sum = int8::multiply_by_quantized_multiplier(sum - n * c.input_zero_point,
                                                         c.mean_multiplier, c.mean_shift);
          }
          // TFLite: round half away from zero; an all-padding window averages to 0.
          value = n == 0 ? 0 : (sum > 0 ? (sum + n / 2) / n : (sum - n / 2) / n);
          if (c.kind == CommandKind::Mean) value += c.output_zero_point;
        }
        value = std::clamp(value, c.activation_min, c.activation_max);
        memories_.base[static_cast<int>(c.ofm.memory)]
                      [c.ofm.address + oy * c.ofm.row_step() + ox * c.ofm.col_step() + k] =
            static_cast<uint8_t>(static_cast<int8_t>(value));
      }
    }
  }
}

}  // namespace udc::npu_sim
