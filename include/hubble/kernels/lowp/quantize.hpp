#pragma once
// Quantisation: storing real numbers as 8-bit integer codes, and getting them back.
//
// Activations (u8, affine): a tensor's values in [lo, hi] are mapped onto the 256 codes 0..255,
//     real = scale * (q - zero_point)            q in [0, 255]
//     q    = clamp(round(real / scale) + zero_point, 0, 255)
// The range is widened to contain 0 and zero_point is an integer, so real 0 has an exact code
// (zero_point itself): zero padding and ReLU's zeros are then exact, not rounded.
//
// Weights (s8, symmetric, one scale per output channel f):
//     real = scale[f] * q                          q in [-127, 127]
//     scale[f] = max_i |w[i][f]| / 127
// Symmetric (no zero point) keeps the convolution's inner product a plain sum of q_x * q_w;
// -128 is left out so that the range is symmetric around 0. A scale per channel follows each
// filter's own magnitude, which matters when filters differ in size by orders of magnitude.
//
// Rounding is to the nearest integer, ties to even (std::nearbyint in the default rounding
// mode), as numpy and PyTorch round.
//
//   const U8Quant xq = choose_u8_quant(x.data(), x.size());        // from the data's min/max
//   std::vector<std::uint8_t> xq8(x.size());
//   quantize_u8(x.data(), x.size(), xq, xq8.data());
//   const PerChannelS8 wq = quantize_per_channel(w.data(), k * k * c, f);   // w is [k][k][c][f]
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"

namespace hubble::kernels::lowp {

// The affine u8 code of one tensor: real = scale * (q - zero_point).
struct U8Quant {
  float scale = 1.0f;
  int zero_point = 0;
};

// Throws a hubble::Error naming `what` unless scale is finite and > 0 and zero_point a code.
inline void check_u8_quant(const U8Quant& p, const char* what) {
  HUBBLE_CHECK(std::isfinite(p.scale) && p.scale > 0.0f, what, ": the quantisation scale must be finite and > 0, got ",
               p.scale);
  HUBBLE_CHECK(p.zero_point >= 0 && p.zero_point <= 255, what, ": the zero point must be a u8 code in [0, 255], got ",
               p.zero_point);
}

// Parameters that map [lo, hi] (widened to contain 0) onto 0..255:
//   scale = (hi - lo) / 255,  zero_point = round(-lo / scale)  (the code of real 0)
// An all-zero range gets scale 1 (any scale represents 0 exactly).
inline U8Quant choose_u8_quant(float lo, float hi) {
  HUBBLE_CHECK(std::isfinite(lo) && std::isfinite(hi), "choose_u8_quant: the range must be finite, got [", lo, ", ", hi,
               "]");
  HUBBLE_CHECK(lo <= hi, "choose_u8_quant: the range's minimum ", lo, " is above its maximum ", hi);
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (hi == lo) return {};
  U8Quant p;
  p.scale = (hi - lo) / 255.0f;
  p.zero_point = int(std::clamp(std::nearbyint(-lo / p.scale), 0.0f, 255.0f));
  return p;
}

// The same, from the values' own minimum and maximum.
inline U8Quant choose_u8_quant(const float* x, std::size_t n) {
  HUBBLE_CHECK(n > 0 && x, "choose_u8_quant: no values to choose the range from");
  const auto [lo, hi] = std::minmax_element(x, x + n);
  return choose_u8_quant(*lo, *hi);
}

//   q = clamp(round(real / scale) + zero_point, 0, 255)
inline std::uint8_t quantize_u8(float real, const U8Quant& p) {
  const float q = std::nearbyint(real / p.scale) + float(p.zero_point);
  return q >= 255.0f ? std::uint8_t(255) : q > 0.0f ? std::uint8_t(q) : std::uint8_t(0);  // NaN -> 0, never UB
}
//   real = scale * (q - zero_point)
inline float dequantize_u8(std::uint8_t q, const U8Quant& p) { return p.scale * float(int(q) - p.zero_point); }

// The same for n values, in one pass the compiler vectorises (no branch, no check inside) and
// threads share when n is large: a network's input at batch 64 is 3.1M values, which the
// element-by-element loop with its check took 39% of an int8 PaperNet forward to quantise
// (perf, Xeon with AMX). A value that is not finite is refused afterwards, naming the first.
// The if clause names `parallel`: a plain if applies to the simd part too, and GCC then runs the
// scalar loop whenever it is false (a batch-1 input: 22% of that forward, perf). On AVX-512 CPUs
// the int8 plan calls quantize_u8_simd (int8_epilogue.hpp) instead: the same codes, about half
// the time.
inline void quantize_u8(const float* x, std::size_t n, const U8Quant& p, std::uint8_t* q) {
  check_u8_quant(p, "quantize_u8");
  const float scale = p.scale, zero = float(p.zero_point);
  const long count = long(n);
  int not_finite = 0;  // v - v is 0 for a finite v, NaN for an infinity or a NaN
#pragma omp parallel for simd schedule(static) reduction(| : not_finite) if (parallel : count > 65536)
  for (long i = 0; i < count; ++i) {
    const float v = x[i];
    not_finite |= int(!(v - v == 0.0f));
    const float c = std::nearbyint(v / scale) + zero;  // quantize_u8(v, p) written out: calling it was 9x slower
    q[i] = c >= 255.0f ? std::uint8_t(255) : c > 0.0f ? std::uint8_t(c) : std::uint8_t(0);
  }
  if (not_finite)
    for (std::size_t i = 0; i < n; ++i)
      HUBBLE_CHECK(std::isfinite(x[i]), "quantize_u8: value ", i, " is not finite (", x[i], ")");
}
inline void dequantize_u8(const std::uint8_t* q, std::size_t n, const U8Quant& p, float* x) {
  check_u8_quant(p, "dequantize_u8");
  for (std::size_t i = 0; i < n; ++i) x[i] = dequantize_u8(q[i], p);
}

// ---- symmetric s8 ------------------------------------------------------------------------------
//   scale = absmax / 127  (1 for an all-zero channel: any scale represents it exactly)
inline float choose_s8_scale(float absmax) {
  HUBBLE_CHECK(std::isfinite(absmax) && absmax >= 0.0f,
               "choose_s8_scale: the largest magnitude must be finite and >= 0, got ", absmax);
  return absmax > 0.0f ? absmax / 127.0f : 1.0f;
}
//   q = clamp(round(real / scale), -127, 127)
inline std::int8_t quantize_s8(float real, float scale) {
  const float q = std::nearbyint(real / scale);
  if (std::isnan(q)) return 0;  // never UB; quantize_per_channel refuses non-finite weights before this
  return q >= 127.0f ? std::int8_t(127) : q > -127.0f ? std::int8_t(q) : std::int8_t(-127);
}
//   real = scale * q
inline float dequantize_s8(std::int8_t q, float scale) { return scale * float(q); }

// A weight bank [rows][f] (a convolution's [k][k][c][f] with rows = k*k*c) in s8, one scale per
// output channel: w[i][f] ~ scale[f] * q[i * f + f].
struct PerChannelS8 {
  int rows = 0, f = 0;
  std::vector<std::int8_t> q;  // [rows][f]
  std::vector<float> scale;    // [f]
  float dequantized(int i, int j) const {
    return dequantize_s8(q[std::size_t(i) * std::size_t(f) + std::size_t(j)], scale[std::size_t(j)]);
  }
  // Every weight, [rows][f]: what the codes mean in fp32.
  std::vector<float> dequantized() const {
    std::vector<float> w(q.size());
    for (std::size_t i = 0; i < q.size(); ++i) w[i] = dequantize_s8(q[i], scale[i % std::size_t(f)]);
    return w;
  }
};

inline PerChannelS8 quantize_per_channel(const float* w, int rows, int f) {
  HUBBLE_CHECK(w && rows > 0 && f > 0, "quantize_per_channel: expected a [rows][f] weight bank with rows, f > 0, got ",
               rows, " x ", f);
  PerChannelS8 out;
  out.rows = rows;
  out.f = f;
  out.q.resize(std::size_t(rows) * std::size_t(f));
  out.scale.assign(std::size_t(f), 0.0f);
  std::vector<float> absmax(std::size_t(f), 0.0f);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < f; ++j) {
      const float v = w[std::size_t(i) * std::size_t(f) + std::size_t(j)];
      HUBBLE_CHECK(std::isfinite(v), "quantize_per_channel: weight [", i, "][", j, "] is not finite (", v, ")");
      absmax[std::size_t(j)] = std::max(absmax[std::size_t(j)], std::abs(v));
    }
  for (int j = 0; j < f; ++j) out.scale[std::size_t(j)] = choose_s8_scale(absmax[std::size_t(j)]);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < f; ++j) {
      const std::size_t at = std::size_t(i) * std::size_t(f) + std::size_t(j);
      out.q[at] = quantize_s8(w[at], out.scale[std::size_t(j)]);
    }
  return out;
}

}  // namespace hubble::kernels::lowp
