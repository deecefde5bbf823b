#pragma once
// int8 convolution: u8 activations x s8 weights, int32 sums, then one fused epilogue back to
// fp32 or to u8 codes for the next int8 layer. Layouts as kernels/conv_geometry.hpp (NHWC):
// x [n][h][w][c] u8, weights [k][k][c][f], y [n][oh][ow][f].
//
// The maths. With x = sx * (qx - zx) (u8, affine) and w[.][f] = sw[f] * qw (s8, symmetric):
//   y[f] = b[f] + sum_p x_p * w_p[f]
//        = b[f] + sx * sw[f] * sum_p (qx_p - zx) * qw_p[f]
//        = b[f] + sx * sw[f] * (acc[f] - zx * wsum[f])       acc[f]  = sum_p qx_p * qw_p[f]  (the GEMM)
//                                                            wsum[f] = sum_p qw_p[f]         (once, with the weights)
// so the GEMM runs on the raw codes and the zero point costs one multiply-add per output.
// Padding is real 0, whose code is zx: padded positions read zx, and contribute (zx - zx) * w = 0.
// Epilogue, per output:
//   real = sx * sw[f] * (acc - zx * wsum[f]) + b[f]     (fp32)
//   real = max(real, 0)                                  (optional ReLU)
//   y    = real                                          (fp32 output: the last layer)
//   y    = clamp(round(real / sy) + zy, 0, 255)          (u8 output: the next int8 layer's input;
//                                                          computed with the constants folded:
//                                                          int8_epilogue.hpp, 8 channels at a time)
// Fused ReLU + MaxPool<P>: every step above is monotone non-decreasing in acc for a fixed f
// (sx, sw[f] > 0; rounding and clamping never reverse an order), so the maximum of a window's
// codes is the code of the window's maximum: the pool runs on the requantised codes (or fp32
// values), one window at a time, and the full-size output is never written.
//
// How: implicit GEMM over im2col rows packed per block. For each block of up to 96 output pixels,
// each pixel's patch (k*k*c codes, zx where padding, zero up to a multiple of 4) is copied from
// the image into a per-thread buffer, the micro-kernel of int8_gemm.hpp multiplies it by the
// packed weights, and the epilogue writes the block's outputs. (Reading patches in place, as the
// fp32 ImplicitGemm does, needs every 4 consecutive k in one kernel row: conv1's rows are 5*3 =
// 15 codes. The copy is k*k*c bytes per pixel against k*k*c*f multiply-adds.)
//
//   auto W = lowp::prepare_int8_conv(k, c, f, w_f32, bias_f32);         // once: quantise, pack
//   lowp::conv_u8_to_u8(g, x_u8, xq, W, /*relu=*/true, yq, y_u8);        // a hidden layer
//   lowp::conv_relu_maxpool_u8(g, x_u8, xq, W, 2, yq, pooled_u8);        // Conv2D+ReLU+MaxPool<2>
//   lowp::conv_u8_to_f32(g, x_u8, xq, W, /*relu=*/false, y_f32);         // the last layer
// The weights are packed for one int8 path (prepare's last argument, default the chosen one);
// the convolution runs on that path.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/lowp/int8_epilogue.hpp"
#include "hubble/kernels/lowp/int8_gemm.hpp"
#include "hubble/kernels/lowp/quantize.hpp"

namespace hubble::kernels::lowp {

// A convolution's weights, prepared once: per-channel s8, their column sums, packed for a path.
struct Int8ConvWeights {
  int k = 0, c = 0, f = 0;
  std::vector<float> scale;         // sw[f]
  std::vector<std::int32_t> wsum;   // sum over the patch of qw[.][f]: the zero-point correction
  std::vector<float> bias;          // b[f], fp32 (zeros when none was given)
  PackedB packed;                   // qw as a (k*k*c) x f matrix, for packed.path
  Int8Path path() const { return packed.path; }
};

// From weights already in s8 (q [k*k*c][f] with its per-channel scales).
inline Int8ConvWeights prepare_int8_conv(int k, int c, const PerChannelS8& q, const float* bias, Int8Path path = int8_path()) {
  HUBBLE_CHECK(k > 0 && c > 0, "prepare_int8_conv: kernel side and channels must be > 0, got k = ", k, ", c = ", c);
  HUBBLE_CHECK(q.rows == k * k * c, "prepare_int8_conv: the weights have ", q.rows, " rows, but a ", k, "x", k, " kernel over ",
               c, " channels needs k*k*c = ", k * k * c);
  HUBBLE_CHECK(q.f > 0 && q.q.size() == std::size_t(q.rows) * std::size_t(q.f) && q.scale.size() == std::size_t(q.f),
               "prepare_int8_conv: the quantised weights hold ", q.q.size(), " codes and ", q.scale.size(),
               " scales, expected ", q.rows, " x ", q.f, " and ", q.f);
  for (int j = 0; j < q.f; ++j)
    HUBBLE_CHECK(std::isfinite(q.scale[std::size_t(j)]) && q.scale[std::size_t(j)] > 0.0f,
                 "prepare_int8_conv: the scale of output channel ", j, " must be finite and > 0, got ", q.scale[std::size_t(j)]);
  Int8ConvWeights W;
  W.k = k;
  W.c = c;
  W.f = q.f;
  W.scale = q.scale;
  W.bias.assign(std::size_t(q.f), 0.0f);
  if (bias) {
    for (int j = 0; j < q.f; ++j) {
      HUBBLE_CHECK(std::isfinite(bias[j]), "prepare_int8_conv: bias[", j, "] is not finite (", bias[j], ")");
      W.bias[std::size_t(j)] = bias[j];
    }
  }
  W.wsum.assign(std::size_t(q.f), 0);
  for (int i = 0; i < q.rows; ++i)
    for (int j = 0; j < q.f; ++j) W.wsum[std::size_t(j)] += q.q[std::size_t(i) * std::size_t(q.f) + std::size_t(j)];
  W.packed = pack_b(q.rows, q.f, q.q.data(), q.f, path);
  return W;
}

// From fp32 weights [k][k][c][f]: quantised per output channel (quantize.hpp), then as above.
inline Int8ConvWeights prepare_int8_conv(int k, int c, int f, const float* w, const float* bias, Int8Path path = int8_path()) {
  HUBBLE_CHECK(k > 0 && c > 0 && f > 0, "prepare_int8_conv: k, c and f must be > 0, got ", k, ", ", c, ", ", f);
  return prepare_int8_conv(k, c, quantize_per_channel(w, k * k * c, f), bias, path);
}

namespace int8_detail {

// What the epilogue writes.
enum class Output { i32, f32, u8 };
struct ConvEpilogue {
  Output kind = Output::f32;
  bool relu = false;
  int pool = 0;          // 0: none; P: MaxPool<P> (windows P x P, stride P) after the ReLU
  U8Quant out;           // u8 output's code
  std::int32_t* y_i32 = nullptr;
  float* y_f32 = nullptr;
  std::uint8_t* y_u8 = nullptr;
};

inline void check_conv(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                       const ConvEpilogue& ep) {
  HUBBLE_CHECK(g.n > 0 && g.h > 0 && g.w > 0 && g.c > 0 && g.k > 0 && g.stride > 0 && g.oh > 0 && g.ow > 0 && g.f > 0,
               "int8 conv: every size must be > 0, got n ", g.n, " h ", g.h, " w ", g.w, " c ", g.c, " k ", g.k, " stride ",
               g.stride, " oh ", g.oh, " ow ", g.ow, " f ", g.f);
  HUBBLE_CHECK(g.pad_top >= 0 && g.pad_left >= 0, "int8 conv: padding must be >= 0, got top ", g.pad_top, ", left ", g.pad_left);
  HUBBLE_CHECK(W.k == g.k && W.c == g.c && W.f == g.f, "int8 conv: the weights were prepared for k ", W.k, ", c ", W.c, ", f ",
               W.f, " but the layer has k ", g.k, ", c ", g.c, ", f ", g.f);
  HUBBLE_CHECK(W.packed.k == g.k * g.k * g.c && W.packed.n == g.f, "int8 conv: the weights are not prepared (use prepare_int8_conv)");
  HUBBLE_CHECK(x, "int8 conv: the input is a null pointer");
  check_u8_quant(xq, "int8 conv input");
  if (ep.kind == Output::u8) check_u8_quant(ep.out, "int8 conv output");
  HUBBLE_CHECK(ep.y_i32 || ep.y_f32 || ep.y_u8, "int8 conv: the output is a null pointer");
  if (ep.pool)
    HUBBLE_CHECK(ep.pool > 0 && g.oh >= ep.pool && g.ow >= ep.pool, "int8 conv: a ", ep.pool, "x", ep.pool,
                 " pool does not fit the ", g.oh, "x", g.ow, " output");
  check_available(W.path(), "int8 conv");
}

// Copies the patch of output pixel (b, oy, ox) into dst (k4 codes): zx where the window is
// over the padding, zero beyond k*k*c.
template <class AT>
inline void pack_patch(const ConvGeometry& g, const std::uint8_t* x, int zx, int b, int oy, int ox, AT* dst, int k4) {
  AT* d = dst;
  const std::size_t row = std::size_t(g.w) * std::size_t(g.c);
  for (int ky = 0; ky < g.k; ++ky) {
    const int iy = oy * g.stride + ky - g.pad_top;
    const int ix0 = ox * g.stride - g.pad_left;
    const std::uint8_t* src = x + (std::size_t(b) * std::size_t(g.h) + std::size_t(std::max(iy, 0))) * row;
    if (iy < 0 || iy >= g.h) {
      std::fill(d, d + g.k * g.c, AT(zx));
    } else if (ix0 >= 0 && ix0 + g.k <= g.w) {  // the whole kernel row is inside: k*c consecutive codes
      const std::uint8_t* s = src + std::size_t(ix0) * std::size_t(g.c);
      if constexpr (std::is_same_v<AT, std::uint8_t>) std::memcpy(d, s, std::size_t(g.k) * std::size_t(g.c));
      else for (int i = 0; i < g.k * g.c; ++i) d[i] = AT(s[i]);
    } else {
      for (int kx = 0; kx < g.k; ++kx) {
        const int ix = ix0 + kx;
        AT* dk = d + kx * g.c;
        if (ix < 0 || ix >= g.w) std::fill(dk, dk + g.c, AT(zx));
        else for (int ci = 0; ci < g.c; ++ci) dk[ci] = AT(src[std::size_t(ix) * std::size_t(g.c) + std::size_t(ci)]);
      }
    }
    d += g.k * g.c;
  }
  std::fill(d, dst + k4, AT(0));
}

inline void conv_forward(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                         const ConvEpilogue& ep) {
  check_conv(g, x, xq, W, ep);
  const int P = ep.pool, PP = P ? P * P : 1;
  const int ph = P ? g.oh / P : g.oh, pw = P ? g.ow / P : g.ow;  // pooled (or plain) output size
  const long M = long(g.n) * ph * pw * PP;  // GEMM rows: output pixels, window by window when pooling
  const int F = g.f, zx = xq.zero_point;
  const Requantize rq = make_requantize(W.scale, W.bias, W.wsum, xq, ep.relu, ep.kind == Output::u8, ep.out);
  const bool vector_epilogue = cpu::features().has(cpu::Isa::avx2);
  const auto pixel_of = [&](long m, int& b, int& oy, int& ox) {
    const long win = m / PP;
    const int q = int(m % PP);
    b = int(win / (long(ph) * pw));
    const int rem = int(win % (long(ph) * pw));
    oy = (rem / pw) * (P ? P : 1) + (P ? q / P : 0);
    ox = (rem % pw) * (P ? P : 1) + (P ? q % P : 0);
  };
  with_kernel(W.path(), [&]<class K>() {
    run_blocks<K>(
        M, W.packed, PP,
        [&](long m0, int rows, auto* dst, int k4) {
          for (int i = 0; i < rows; ++i) {
            int b, oy, ox;
            pixel_of(m0 + i, b, oy, ox);
            pack_patch(g, x, zx, b, oy, ox, dst + std::ptrdiff_t(i) * k4, k4);
          }
        },
        [&](long m0, int rows, int f0, int f1, const std::int32_t* cb, std::ptrdiff_t ldc) {
          // One output row per pixel, or per window of PP consecutive pixels (their maximum).
          for (int i = 0; i < rows / PP; ++i) {
            const std::int32_t* acc = cb + std::ptrdiff_t(i) * PP * ldc;  // column j at acc[j - f0]
            const std::size_t at = std::size_t(m0 / PP + i) * std::size_t(F) + std::size_t(f0);
            switch (ep.kind) {
              case Output::i32:
                for (int j = f0; j < f1; ++j) ep.y_i32[at + std::size_t(j - f0)] = acc[j - f0] - rq.zcorr[std::size_t(j)];
                break;
              case Output::f32: requantize_window(vector_epilogue, rq, acc, ldc, PP, f0, f1, ep.y_f32 + at); break;
              case Output::u8: requantize_window(vector_epilogue, rq, acc, ldc, PP, f0, f1, ep.y_u8 + at); break;
            }
          }
        });
  });
}

}  // namespace int8_detail

// y [n][oh][ow][f] int32: the exact sums sum_p (qx_p - zx) * qw_p[f] (no scale, bias or ReLU),
// for checking the kernels and for callers with their own epilogue.
inline void conv_u8_to_i32(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                           std::int32_t* y) {
  int8_detail::ConvEpilogue ep;
  ep.kind = int8_detail::Output::i32;
  ep.y_i32 = y;
  int8_detail::conv_forward(g, x, xq, W, ep);
}

// y [n][oh][ow][f] fp32: real = sx * sw[f] * (acc - zx * wsum[f]) + b[f], then max(., 0) if relu.
inline void conv_u8_to_f32(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W, bool relu,
                           float* y) {
  int8_detail::ConvEpilogue ep;
  ep.kind = int8_detail::Output::f32;
  ep.relu = relu;
  ep.y_f32 = y;
  int8_detail::conv_forward(g, x, xq, W, ep);
}

// y [n][oh][ow][f] u8 in the code yq: the fp32 value above, requantised.
inline void conv_u8_to_u8(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W, bool relu,
                          const U8Quant& yq, std::uint8_t* y) {
  int8_detail::ConvEpilogue ep;
  ep.kind = int8_detail::Output::u8;
  ep.relu = relu;
  ep.out = yq;
  ep.y_u8 = y;
  int8_detail::conv_forward(g, x, xq, W, ep);
}

// y [n][oh/P][ow/P][f] = maxpool_P(relu(conv)), requantised to yq: Conv2D + ReLU + MaxPool<P>
// in one pass (a leftover row or column of the convolution's output, which the pool drops, is
// not computed).
inline void conv_relu_maxpool_u8(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W, int P,
                                 const U8Quant& yq, std::uint8_t* y) {
  HUBBLE_CHECK(P > 0, "conv_relu_maxpool_u8: the pool size must be > 0, got ", P);
  int8_detail::ConvEpilogue ep;
  ep.kind = int8_detail::Output::u8;
  ep.relu = true;
  ep.pool = P;
  ep.out = yq;
  ep.y_u8 = y;
  int8_detail::conv_forward(g, x, xq, W, ep);
}
// The same with an fp32 output.
inline void conv_relu_maxpool_f32(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W, int P,
                                  float* y) {
  HUBBLE_CHECK(P > 0, "conv_relu_maxpool_f32: the pool size must be > 0, got ", P);
  int8_detail::ConvEpilogue ep;
  ep.kind = int8_detail::Output::f32;
  ep.relu = true;
  ep.pool = P;
  ep.y_f32 = y;
  int8_detail::conv_forward(g, x, xq, W, ep);
}

}  // namespace hubble::kernels::lowp
