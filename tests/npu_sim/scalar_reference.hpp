// A plain scalar implementation of the TFLite int8 operations, written separately from
// the simulator's kernels: its own loops, its own formulation of the rounding rules
// (floor arithmetic on 64-bit values instead of nudges and masks). Tests compare the
// simulator against it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace udc::npu_sim::test {

/// int8 HWC tensor.
struct Tensor {
  int h = 1, w = 1, c = 1;
  std::vector<int8_t> data;
  Tensor() = default;
  Tensor(int h_, int w_, int c_) : h(h_), w(w_), c(c_), data(size_t(h_) * w_ * c_) {}
  int8_t& at(int y, int x, int k) { return data[(size_t(y) * w + x) * c + k]; }
  int8_t at(int y, int x, int k) const { return data[(size_t(y) * w + x) * c + k]; }
};

inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/// floor(a*b / 2^31 + 1/2), saturated: the doubling high multiply with ties upward.
inline int32_t ref_high_mul(int32_t a, int32_t b) {
  if (a == std::numeric_limits<int32_t>::min() && b == a)
    return std::numeric_limits<int32_t>::max();
  const int64_t product = int64_t(a) * b;
  return int32_t(floor_div(product + (int64_t(1) << 30), int64_t(1) << 31));
}

/// x / 2^e rounded to nearest, ties away from zero.
inline int32_t ref_round_shift(int32_t x, int e) {
  if (e == 0) return x;
  const int64_t magnitude = x < 0 ? -int64_t(x) : int64_t(x);
  const int64_t rounded = (magnitude + (int64_t(1) << (e - 1))) >> e;
  return int32_t(x < 0 ? -rounded : rounded);
}

inline int32_t ref_requantize(int32_t x, int32_t multiplier, int shift) {
  int64_t scaled = int64_t(x) * (int64_t(1) << std::max(shift, 0));
  scaled = std::clamp<int64_t>(scaled, std::numeric_limits<int32_t>::min(),
                               std::numeric_limits<int32_t>::max());
  return ref_round_shift(ref_high_mul(int32_t(scaled), multiplier), std::max(-shift, 0));
}

struct RefQuant {
  int input_zp = 0, output_zp = 0, act_min = -128, act_max = 127;
  std::vector<int32_t> bias, multiplier, shift;  // per output channel
};

struct RefWindow {
  int kh = 1, kw = 1, sh = 1, sw = 1, pad_top = 0, pad_left = 0, out_h = 1, out_w = 1;
};

inline int8_t ref_output(int64_t acc, int channel, const RefQuant& q) {
  int32_t v =
      ref_requantize(int32_t(acc + q.bias[channel]), q.multiplier[channel], q.shift[channel]);
  v += q.output_zp;
  return int8_t(std::clamp(v, q.act_min, q.act_max));
}

/// weights: [oc][kh][kw][ic].
inline Tensor ref_conv(const Tensor& in, const std::vector<int8_t>& weights, int out_c,
                       const RefWindow& win, const RefQuant& q) {
  Tensor out(win.out_h, win.out_w, out_c);
  for (int oy = 0; oy < win.out_h; ++oy)
    for (int ox = 0; ox < win.out_w; ++ox)
      for (int oc = 0; oc < out_c; ++oc) {
        int64_t acc = 0;
        for (int ky = 0; ky < win.kh; ++ky)
          for (int kx = 0; kx < win.kw; ++kx) {
            const int y = oy * win.sh - win.pad_top + ky, x = ox * win.sw - win.pad_left + kx;
            if (y < 0 || y >= in.h || x < 0 || x >= in.w) continue;  // padding: input == zp
            for (int ic = 0; ic < in.c; ++ic) {
              const int8_t wv = weights[((size_t(oc) * win.kh + ky) * win.kw + kx) * in.c + ic];
              acc += int64_t(in.at(y, x, ic) - q.input_zp) * wv;
            }
          }
        out.at(oy, ox, oc) = ref_output(acc, oc, q);
      }
  return out;
}

/// weights: [c][kh][kw].
inline Tensor ref_depthwise(const Tensor& in, const std::vector<int8_t>& weights,
                            const RefWindow& win, const RefQuant& q) {
  Tensor out(win.out_h, win.out_w, in.c);
  for (int oy = 0; oy < win.out_h; ++oy)
    for (int ox = 0; ox < win.out_w; ++ox)
      for (int k = 0; k < in.c; ++k) {
        int64_t acc = 0;
        for (int ky = 0; ky < win.kh; ++ky)
          for (int kx = 0; kx < win.kw; ++kx) {
            const int y = oy * win.sh - win.pad_top + ky, x = ox * win.sw - win.pad_left + kx;
            if (y < 0 || y >= in.h || x < 0 || x >= in.w) continue;
            acc += int64_t(in.at(y, x, k) - q.input_zp) *
                   weights[(size_t(k) * win.kh + ky) * win.kw + kx];
          }
        out.at(oy, ox, k) = ref_output(acc, k, q);
      }
  return out;
}

/// weights: [oc][h*w*c] over the input in HWC order.
inline Tensor ref_fully_connected(const Tensor& in, const std::vector<int8_t>& weights, int out_c,
                                  const RefQuant& q) {
  Tensor out(1, 1, out_c);
  const size_t n = in.data.size();
  for (int oc = 0; oc < out_c; ++oc) {
    int64_t acc = 0;
    for (size_t i = 0; i < n; ++i) acc += int64_t(in.data[i] - q.input_zp) * weights[oc * n + i];
    out.at(0, 0, oc) = ref_output(acc, oc, q);
  }
  return out;
}

struct RefAdd {
  int zp1 = 0, zp2 = 0, out_zp = 0, act_min = -128, act_max = 127, left_shift = 20;
  int32_t m1 = 1 << 30, m2 = 1 << 30, mo = 1 << 30;
  int s1 = 0, s2 = 0, so = 0;
};

inline Tensor ref_add(const Tensor& a, const Tensor& b, const RefAdd& p) {
  Tensor out(a.h, a.w, a.c);
  for (size_t i = 0; i < a.data.size(); ++i) {
    const int32_t x = (a.data[i] - p.zp1) * (1 << p.left_shift);
    const int32_t y = (b.data[i] - p.zp2) * (1 << p.left_shift);
    const int32_t sum = ref_requantize(x, p.m1, p.s1) + ref_requantize(y, p.m2, p.s2);
    out.data[i] =
        int8_t(std::clamp(ref_requantize(sum, p.mo, p.so) + p.out_zp, p.act_min, p.act_max));
  }
  return out;
}

inline Tensor ref_pool(const Tensor& in, bool max_pool, const RefWindow& win, int act_min,
                       int act_max) {
  Tensor out(win.out_h, win.out_w, in.c);
  for (int oy = 0; oy < win.out_h; ++oy)
    for (int ox = 0; ox < win.out_w; ++ox)
      for (int k = 0; k < in.c; ++k) {
        int best = -128, sum = 0, count = 0;
        for (int ky = 0; ky < win.kh; ++ky)
          for (int kx = 0; kx < win.kw; ++kx) {
            const int y = oy * win.sh - win.pad_top + ky, x = ox * win.sw - win.pad_left + kx;
            if (y < 0 || y >= in.h || x < 0 || x >= in.w) continue;
            best = std::max<int>(best, in.at(y, x, k));
            sum += in.at(y, x, k);
            ++count;
          }
        int v = best;
        if (!max_pool) {
          // Nearest, ties away from zero.
          const int magnitude = (std::abs(sum) * 2 + count) / (2 * std::max(count, 1));
          v = count == 0 ? 0 : (sum < 0 ? -magnitude : magnitude);
        }
        out.at(oy, ox, k) = int8_t(std::clamp(v, act_min, act_max));
      }
  return out;
}

/// TFLite's int8 MEAN over the whole plane: the sum of (input - in_zp), requantised by
/// (multiplier, shift), divided by the plane's size to nearest with ties away from zero,
/// plus out_zp, clamped.
inline Tensor ref_mean(const Tensor& in, int in_zp, int32_t multiplier, int shift, int out_zp,
                       int act_min, int act_max) {
  Tensor out(1, 1, in.c);
  const int64_t count = int64_t(in.h) * in.w;
  for (int k = 0; k < in.c; ++k) {
    int64_t sum = 0;
    for (int y = 0; y < in.h; ++y)
      for (int x = 0; x < in.w; ++x) sum += in.at(y, x, k) - in_zp;
    const int64_t scaled = ref_requantize(int32_t(sum), multiplier, shift);
    const int64_t magnitude = (std::abs(scaled) * 2 + count) / (2 * count);
    const int64_t v = (scaled < 0 ? -magnitude : magnitude) + out_zp;
    out.at(0, 0, k) = int8_t(std::clamp<int64_t>(v, act_min, act_max));
  }
  return out;
}

}  // namespace udc::npu_sim::test
