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
// 15 codes. The copy is k*k*c bytes per pixel against k*k*c*f multiply-adds. Counted with
// callgrind on the avx2 path (valgrind cannot run AVX-512 or VNNI), paper layers at batch 2:
// the copy and the block loop are 7-9% of conv2..conv4's instructions and 28% of conv1's, the
// epilogue 0-6% and 14%; a VNNI kernel needs ~8x fewer instructions for the same sums, so there
// these shares are larger. Reading in place, with each kernel row's weights padded to a multiple
// of 4, would remove the copy on the VNNI paths.)
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

// Copies n codes (n >= 1), widened to AT. Short fixed-size copies, the last one overlapping the
// one before, instead of a memcpy call per kernel row: conv1's rows are 15 bytes, and a call
// each cost more than the products they feed. Reads stay within [s, s + n).
// 8 u8 codes -> 8 int16 (SSE2, which every x86-64 has; the compiler did not vectorise the loop).
inline void widen8(std::int16_t* d, const std::uint8_t* s) {
#if HUBBLE_INT8_X86
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi8(bytes, _mm_setzero_si128()));
#else
  for (int t = 0; t < 8; ++t) d[t] = std::int16_t(s[t]);
#endif
}

template <class AT>
inline void copy_codes(AT* d, const std::uint8_t* s, int n) {
  if constexpr (std::is_same_v<AT, std::uint8_t>) {
    if (n >= 16) {
      int i = 0;
      for (; i + 16 <= n; i += 16) std::memcpy(d + i, s + i, 16);
      if (i < n) std::memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
      std::memcpy(d, s, 8);
      std::memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
      std::memcpy(d, s, 4);
      std::memcpy(d + n - 4, s + n - 4, 4);
    } else {
      for (int i = 0; i < n; ++i) d[i] = s[i];
    }
  } else {  // int16 (the avx2 path): 8 codes widened per step
    if (n >= 8) {
      int i = 0;
      for (; i + 8 <= n; i += 8) widen8(d + i, s + i);
      if (i < n) widen8(d + n - 8, s + n - 8);
    } else {
      for (int i = 0; i < n; ++i) d[i] = AT(s[i]);
    }
  }
}

// Copies n codes in whole chunks of 16, widened to AT: up to 15 codes past n are read and
// written too (the caller checks that they are readable; the destination has room, and the next
// kernel row or the tail of zeros overwrites them). Two instructions per chunk.
template <class AT>
inline void copy_codes_rounded_up(AT* d, const std::uint8_t* s, int n) {
  for (int i = 0; i < n; i += 16) {
    if constexpr (std::is_same_v<AT, std::uint8_t>) {
      std::memcpy(d + i, s + i, 16);
    } else {
      widen8(d + i, s + i);
      widen8(d + i + 8, s + i + 8);
    }
  }
}

// Copies the patch of output pixel (b, oy, ox) into dst (k4 codes): zx where the window is
// over the padding, zero beyond k*k*c. May write up to 15 codes past dst + k4 (pack_a's slack).
template <class AT>
inline void pack_patch(const ConvGeometry& g, const std::uint8_t* x, int zx, int b, int oy, int ox, AT* dst, int k4) {
  const int iy0 = oy * g.stride - g.pad_top, ix0 = ox * g.stride - g.pad_left, kc = g.k * g.c;
  const std::size_t row = std::size_t(g.w) * std::size_t(g.c);
  AT* d = dst;
  if (iy0 >= 0 && iy0 + g.k <= g.h && ix0 >= 0 && ix0 + g.k <= g.w) {  // inside: k rows of k*c consecutive codes
    const std::uint8_t* s = x + (std::size_t(b) * std::size_t(g.h) + std::size_t(iy0)) * row + std::size_t(ix0) * std::size_t(g.c);
    const std::uint8_t* x_end = x + g.in_size();
    for (int ky = 0; ky < g.k; ++ky, s += row, d += kc) {
      if (s + 16 * ((kc + 15) / 16) <= x_end) copy_codes_rounded_up(d, s, kc);  // may write up to 15 codes past the row
      else copy_codes(d, s, kc);
    }
  } else {
    for (int ky = 0; ky < g.k; ++ky, d += kc) {
      const int iy = iy0 + ky;
      if (iy < 0 || iy >= g.h) {
        std::fill(d, d + kc, AT(zx));
        continue;
      }
      const std::uint8_t* src = x + (std::size_t(b) * std::size_t(g.h) + std::size_t(iy)) * row;
      for (int kx = 0; kx < g.k; ++kx) {
        const int ix = ix0 + kx;
        AT* dk = d + kx * g.c;
        if (ix < 0 || ix >= g.w) std::fill(dk, dk + g.c, AT(zx));
        else copy_codes(dk, src + std::size_t(ix) * std::size_t(g.c), g.c);
      }
    }
  }
  const int tail = k4 - kc * g.k;  // 0..3: a few stores, not a memset call
  for (int t = 0; t < 3; ++t)
    if (t < tail) d[t] = AT(0);
}

// Visits the GEMM rows in order: output pixels, window by window when pooling (P > 1: the P x P
// pixels of a window are consecutive rows). Divides once, then steps.
struct PixelWalk {
  int p, ph, pw;          // window side (1: no pooling), windows per column and row
  int b, wy, wx, qy, qx;  // image, window, position in the window
  PixelWalk(long m, int p_, int ph_, int pw_) : p(p_), ph(ph_), pw(pw_) {
    const long win = m / (p * p);
    const int q = int(m % (p * p));
    b = int(win / (long(ph) * pw));
    const int rem = int(win % (long(ph) * pw));
    wy = rem / pw;
    wx = rem % pw;
    qy = q / p;
    qx = q % p;
  }
  int oy() const { return wy * p + qy; }
  int ox() const { return wx * p + qx; }
  void next() {
    if (++qx < p) return;
    qx = 0;
    if (++qy < p) return;
    qy = 0;
    if (++wx < pw) return;
    wx = 0;
    if (++wy < ph) return;
    wy = 0;
    ++b;
  }
};

inline void conv_forward(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                         const ConvEpilogue& ep) {
  check_conv(g, x, xq, W, ep);
  const int P = ep.pool, PP = P ? P * P : 1;
  const int ph = P ? g.oh / P : g.oh, pw = P ? g.ow / P : g.ow;  // pooled (or plain) output size
  const long M = long(g.n) * ph * pw * PP;  // GEMM rows: output pixels, window by window when pooling
  const int F = g.f, zx = xq.zero_point;
  const Requantize rq = make_requantize(W.scale, W.bias, W.wsum, xq, ep.relu, ep.kind == Output::u8, ep.out);
  const bool vector_epilogue = cpu::features().has(cpu::Isa::avx2);
  with_kernel(W.path(), [&]<class K>() {
    run_blocks<K>(
        M, W.packed, PP,
        [&](long m0, int rows, auto* dst, int k4) {
          PixelWalk px(m0, P ? P : 1, ph, pw);
          for (int i = 0; i < rows; ++i, px.next()) pack_patch(g, x, zx, px.b, px.oy(), px.ox(), dst + std::ptrdiff_t(i) * k4, k4);
        },
        [&](long m0, int rows, int f0, int f1, const std::int32_t* cb, std::ptrdiff_t ldc) {
          // One output row per pixel, or per window of PP consecutive pixels (their maximum).
          const std::size_t at = std::size_t(m0 / PP) * std::size_t(F) + std::size_t(f0);
          switch (ep.kind) {
            case Output::i32:
              for (int i = 0; i < rows; ++i) {
                std::int32_t* yi = ep.y_i32 + at + std::size_t(i) * std::size_t(F);
                for (int j = f0; j < f1; ++j) yi[j - f0] = cb[i * ldc + j - f0] - rq.zcorr[std::size_t(j)];
              }
              break;
            case Output::f32: requantize_block(vector_epilogue, rq, cb, ldc, rows / PP, PP, f0, f1, ep.y_f32 + at, F); break;
            case Output::u8: requantize_block(vector_epilogue, rq, cb, ldc, rows / PP, PP, f0, f1, ep.y_u8 + at, F); break;
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
