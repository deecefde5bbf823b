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
// How: implicit GEMM, as kernels/implicit_gemm.hpp: GEMM row i is output pixel i, whose patch
// is k kernel rows of k*c consecutive codes in the NHWC image. The micro-kernels read 4
// consecutive k at a time, so on the u8 paths (generic, avx_vnni, avx512_vnni) each kernel row's
// weights are padded with zeros to row_len = a multiple of 4, and the kernel reads the image in
// place: row_len codes from each kernel row's start (the up to 3 codes after the row, the next
// pixel's, meet zero weights). Padding, or a last window too close to the end of x to read
// row_len codes, costs one copy of the input with zx borders. The avx2 path multiplies int16
// (VPMADDWD), so it copies each block's patches, widened, into a per-thread buffer instead; the
// amx_int8 path copies them as u8, k4 (a multiple of 64) apart, since a tile load reads 16 rows
// at one stride.
// Counted with callgrind on the avx2 path (valgrind cannot run AVX-512 or VNNI), paper layers at
// batch 2: that copy and the block loop were 7-9% of conv2..conv4's instructions and 28% of
// conv1's; a VNNI kernel needs ~8x fewer instructions for the same sums, so reading in place
// there matters more.
//
//   auto W = lowp::prepare_int8_conv(k, c, f, w_f32, bias_f32);         // once: quantise, pack
//   lowp::conv_u8_to_u8(g, x_u8, xq, W, /*relu=*/true, yq, y_u8);        // a hidden layer
//   lowp::conv_relu_maxpool_u8(g, x_u8, xq, W, 2, yq, pooled_u8);        // Conv2D+ReLU+MaxPool<2>
//   lowp::conv_u8_to_f32(g, x_u8, xq, W, /*relu=*/false, y_f32);         // the last layer
// The weights are packed for one int8 path (prepare's last argument, default the chosen one);
// the convolution runs on that path.
#include <algorithm>
#include <cmath>
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
#include "hubble/kernels/pixel_walker.hpp"

namespace hubble::kernels::lowp {

// A convolution's weights, prepared once: per-channel s8, their column sums, packed for a path.
struct Int8ConvWeights {
  int k = 0, c = 0, f = 0;
  std::vector<float> scale;        // sw[f]
  std::vector<std::int32_t> wsum;  // sum over the patch of qw[.][f]: the zero-point correction
  std::vector<float> bias;         // b[f], fp32 (zeros when none was given)
  // How the convolution reads its input, which fixes the layout of B's rows:
  //   in place (generic, avx_vnni, avx512_vnni): each kernel row's k*c weights
  //     are followed by zeros up to row_len = a multiple of 4, so the kernel can read the image's
  //     k*c codes of a kernel row (and up to 3 codes after them, which meet those zeros) in groups
  //     of 4: B is (k * row_len) x f;
  //   packed (avx2, whose kernel wants int16; amx_int8, whose tile loads want rows k4 apart):
  //     patches are copied (widened for avx2) per block: B is (k*k*c) x f, row_len = k*k*c.
  bool in_place = false;
  int row_len = 0;
  PackedB packed;  // qw in the layout above, for packed.path
  Int8Path path() const { return packed.path; }
};

// The path a convolution with patch length k*k*c = `patch` should run on when `p` is asked for:
// p itself, except that amx_int8 gives way to the best VNNI path below 128 codes. A tile is 64
// codes deep, so a short patch is mostly padding (conv1: 75 -> 128) and each patch is copied,
// where VPDPBUSD reads the image in place (bench_int8, Xeon with AMX, conv1 + ReLU + pool:
// 0.050 ms on amx_int8, 0.029 ms on avx512_vnni at batch 1; conv2 with 288 codes: 0.017 against
// 0.027).
inline constexpr int amx_min_patch = 128;
inline Int8Path conv_path_for(Int8Path p, int patch) {
  if (p != Int8Path::amx_int8 || patch >= amx_min_patch) return p;
  for (Int8Path q : {Int8Path::avx512_vnni, Int8Path::avx_vnni})
    if (available(q)) return q;
  return p;
}

// From weights already in s8 (q [k*k*c][f] with its per-channel scales).
inline Int8ConvWeights prepare_int8_conv(int k, int c, const PerChannelS8& q, const float* bias,
                                         Int8Path path = int8_path()) {
  HUBBLE_CHECK(k > 0 && c > 0, "prepare_int8_conv: kernel side and channels must be > 0, got k = ", k, ", c = ", c);
  HUBBLE_CHECK(q.rows == k * k * c, "prepare_int8_conv: the weights have ", q.rows, " rows, but a ", k, "x", k,
               " kernel over ", c, " channels needs k*k*c = ", k * k * c);
  HUBBLE_CHECK(q.f > 0 && q.q.size() == std::size_t(q.rows) * std::size_t(q.f) && q.scale.size() == std::size_t(q.f),
               "prepare_int8_conv: the quantised weights hold ", q.q.size(), " codes and ", q.scale.size(),
               " scales, expected ", q.rows, " x ", q.f, " and ", q.f);
  for (int j = 0; j < q.f; ++j)
    HUBBLE_CHECK(std::isfinite(q.scale[std::size_t(j)]) && q.scale[std::size_t(j)] > 0.0f,
                 "prepare_int8_conv: the scale of output channel ", j, " must be finite and > 0, got ",
                 q.scale[std::size_t(j)]);
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
  W.in_place = reads_in_place(path);
  const int kc = k * c, F = q.f;
  if (W.in_place) {
    W.row_len = round_up(kc, 4);
    const int row_len = W.row_len;
    W.packed = pack_b(
        k * row_len, F,
        [&](int p, int j) {
          const int ky = p / row_len, t = p % row_len;
          return t < kc ? q.q[std::size_t(ky * kc + t) * std::size_t(F) + std::size_t(j)] : std::int8_t(0);
        },
        path);
  } else {
    W.row_len = q.rows;
    W.packed = pack_b(q.rows, F, q.q.data(), F, path);
  }
  return W;
}

// From fp32 weights [k][k][c][f]: quantised per output channel (quantize.hpp), then as above.
inline Int8ConvWeights prepare_int8_conv(int k, int c, int f, const float* w, const float* bias,
                                         Int8Path path = int8_path()) {
  HUBBLE_CHECK(k > 0 && c > 0 && f > 0, "prepare_int8_conv: k, c and f must be > 0, got ", k, ", ", c, ", ", f);
  return prepare_int8_conv(k, c, quantize_per_channel(w, k * k * c, f), bias, path);
}

namespace int8_detail {

// What the epilogue writes.
enum class Output { i32, f32, u8 };
struct ConvEpilogue {
  Output kind = Output::f32;
  bool relu = false;
  int pool = 0;  // 0: none; P: MaxPool<P> (windows P x P, stride P) after the ReLU
  U8Quant out;   // u8 output's code
  std::int32_t* y_i32 = nullptr;
  float* y_f32 = nullptr;
  std::uint8_t* y_u8 = nullptr;
};

inline void check_conv(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                       const ConvEpilogue& ep) {
  HUBBLE_CHECK(g.n > 0 && g.h > 0 && g.w > 0 && g.c > 0 && g.k > 0 && g.stride > 0 && g.oh > 0 && g.ow > 0 && g.f > 0,
               "int8 conv: every size must be > 0, got n ", g.n, " h ", g.h, " w ", g.w, " c ", g.c, " k ", g.k,
               " stride ", g.stride, " oh ", g.oh, " ow ", g.ow, " f ", g.f);
  HUBBLE_CHECK(g.pad_top >= 0 && g.pad_left >= 0, "int8 conv: padding must be >= 0, got top ", g.pad_top, ", left ",
               g.pad_left);
  HUBBLE_CHECK(W.k == g.k && W.c == g.c && W.f == g.f, "int8 conv: the weights were prepared for k ", W.k, ", c ", W.c,
               ", f ", W.f, " but the layer has k ", g.k, ", c ", g.c, ", f ", g.f);
  HUBBLE_CHECK(W.packed.k == (W.in_place ? g.k * W.row_len : g.k * g.k * g.c) && W.packed.n == g.f,
               "int8 conv: the weights are not prepared (use prepare_int8_conv)");
  HUBBLE_CHECK(x, "int8 conv: the input is a null pointer");
  check_u8_quant(xq, "int8 conv input");
  if (ep.kind == Output::u8) check_u8_quant(ep.out, "int8 conv output");
  HUBBLE_CHECK(ep.y_i32 || ep.y_f32 || ep.y_u8, "int8 conv: the output is a null pointer");
  if (ep.pool)
    HUBBLE_CHECK(ep.pool > 0 && g.oh >= ep.pool && g.ow >= ep.pool, "int8 conv: a ", ep.pool, "x", ep.pool,
                 " pool does not fit the ", g.oh, "x", g.ow, " output");
  check_available(W.path(), "int8 conv");
}

// 8 u8 codes -> 8 int16 (SSE2, which every x86-64 has; the compiler did not vectorise the loop).
inline void widen8(std::int16_t* d, const std::uint8_t* s) {
#if HUBBLE_INT8_X86
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi8(bytes, _mm_setzero_si128()));
#else
  for (int t = 0; t < 8; ++t) d[t] = std::int16_t(s[t]);
#endif
}

// Copies n codes (n >= 1), widened to int16, 8 per step, the last step overlapping the one before
// (a call per kernel row cost more than conv1's 15 codes feed). Reads stay within [s, s + n).
inline void copy_codes(std::int16_t* d, const std::uint8_t* s, int n) {
  if (n < 8) {
    for (int i = 0; i < n; ++i) d[i] = std::int16_t(s[i]);
    return;
  }
  int i = 0;
  for (; i + 8 <= n; i += 8) widen8(d + i, s + i);
  if (i < n) widen8(d + n - 8, s + n - 8);
}

// The same in whole steps of 8: up to 7 codes past n are read and written too (the caller checks
// that they are readable; the next kernel row or the tail of zeros overwrites them).
inline void copy_codes_rounded_up(std::int16_t* d, const std::uint8_t* s, int n) {
  for (int i = 0; i < n; i += 8) widen8(d + i, s + i);
}

// u8 codes as they are (the amx_int8 path's packed rows).
inline void copy_codes(std::uint8_t* d, const std::uint8_t* s, int n) { std::memcpy(d, s, std::size_t(n)); }
inline void copy_codes_rounded_up(std::uint8_t* d, const std::uint8_t* s, int n) { copy_codes(d, s, n); }

// Copies the patch of output pixel (b, oy, ox) into dst (k4 codes, widened to int16 or as u8): zx
// where the window is over the padding, zero beyond k*k*c. May write up to 7 codes past dst + k4
// (pack_slack).
template <class Code>
void pack_patch(const ConvGeometry& g, const std::uint8_t* x, int zx, int b, int oy, int ox, Code* dst, int k4) {
  const int iy0 = oy * g.stride - g.pad_top, ix0 = ox * g.stride - g.pad_left, kc = g.k * g.c;
  const std::size_t row = std::size_t(g.w) * std::size_t(g.c);
  Code* d = dst;
  if (iy0 >= 0 && iy0 + g.k <= g.h && ix0 >= 0 && ix0 + g.k <= g.w) {  // inside: k rows of k*c consecutive codes
    const std::uint8_t* s =
        x + (std::size_t(b) * std::size_t(g.h) + std::size_t(iy0)) * row + std::size_t(ix0) * std::size_t(g.c);
    const std::uint8_t* x_end = x + g.in_size();
    for (int ky = 0; ky < g.k; ++ky, s += row, d += kc) {
      if (s + 8 * ((kc + 7) / 8) <= x_end) copy_codes_rounded_up(d, s, kc);
      else copy_codes(d, s, kc);
    }
  } else {
    for (int ky = 0; ky < g.k; ++ky, d += kc) {
      const int iy = iy0 + ky;
      if (iy < 0 || iy >= g.h) {
        std::fill(d, d + kc, Code(zx));
        continue;
      }
      const std::uint8_t* src = x + (std::size_t(b) * std::size_t(g.h) + std::size_t(iy)) * row;
      for (int kx = 0; kx < g.k; ++kx) {
        const int ix = ix0 + kx;
        Code* dk = d + kx * g.c;
        if (ix < 0 || ix >= g.w) std::fill(dk, dk + g.c, Code(zx));
        else copy_codes(dk, src + std::size_t(ix) * std::size_t(g.c), g.c);
      }
    }
  }
  const int tail = k4 - kc * g.k;  // avx2: 0..3, a few stores rather than a memset call
  if (tail > 3) std::fill(d, d + tail, Code(0));
  else
    for (int t = 0; t < 3; ++t)
      if (t < tail) d[t] = 0;
}

// The input as the in-place walk reads it: x itself when every window is inside it and the last
// window's last kernel row may be read row_len codes long; else a copy [n][hp][wp][c] with the
// padding set to zx (real 0) and row_len codes of slack after it. Returns the pointer and sets
// hp, wp.
inline const std::uint8_t* input_for_in_place(const ConvGeometry& g, const std::uint8_t* x, int zx, int row_len,
                                              int& hp, int& wp) {
  hp = (g.oh - 1) * g.stride + g.k;
  wp = (g.ow - 1) * g.stride + g.k;
  const std::size_t c = std::size_t(g.c);
  if (g.pad_top == 0 && g.pad_left == 0 && hp <= g.h && wp <= g.w) {
    const std::size_t last_row =
        ((std::size_t(g.n - 1) * std::size_t(g.h) + std::size_t(hp - 1)) * std::size_t(g.w) + std::size_t(wp - g.k)) *
        c;
    if (last_row + std::size_t(row_len) <= g.in_size()) {
      hp = g.h;
      wp = g.w;
      return x;
    }
  }
  const std::size_t size = std::size_t(g.n) * std::size_t(hp) * std::size_t(wp) * c;
  std::uint8_t* xp = scratch<std::uint8_t, Int8Scratch::padded_input>(size + std::size_t(row_len));
  std::fill(xp + size, xp + size + std::size_t(row_len), std::uint8_t(0));
#pragma omp parallel for schedule(static)
  for (int b = 0; b < g.n; ++b)
    for (int y = 0; y < hp; ++y) {
      std::uint8_t* dst = xp + (std::size_t(b) * std::size_t(hp) + std::size_t(y)) * std::size_t(wp) * c;
      const int sy = y - g.pad_top;
      if (sy < 0 || sy >= g.h) {
        std::fill(dst, dst + std::size_t(wp) * c, std::uint8_t(zx));
        continue;
      }
      for (int xx = 0; xx < wp; ++xx) {
        const int sx = xx - g.pad_left;
        std::uint8_t* d = dst + std::size_t(xx) * c;
        if (sx < 0 || sx >= g.w) std::fill(d, d + c, std::uint8_t(zx));
        else
          std::memcpy(
              d, x + ((std::size_t(b) * std::size_t(g.h) + std::size_t(sy)) * std::size_t(g.w) + std::size_t(sx)) * c,
              c);
      }
    }
  return xp;
}

inline void conv_forward(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                         const ConvEpilogue& ep) {
  check_conv(g, x, xq, W, ep);
  const int P = ep.pool, PP = P ? P * P : 1;
  const int ph = P ? g.oh / P : g.oh, pw = P ? g.ow / P : g.ow;  // pooled (or plain) output size
  const long M = long(g.n) * ph * pw * PP;  // GEMM rows: output pixels, window by window when pooling
  const int F = g.f, zx = xq.zero_point;
  const Requantize rq = make_requantize(W.scale, W.bias, W.wsum, xq, ep.relu, ep.kind == Output::u8, ep.out);
  const EpilogueIsa epilogue = epilogue_isa();
  // Where each GEMM row (output pixel) reads its patch: in place from the (padded) image, one
  // segment per kernel row; or packed by pack_patch (widened for avx2).
  int hp = g.h, wp = g.w;
  const std::uint8_t* xp = W.in_place ? input_for_in_place(g, x, zx, W.row_len, hp, wp) : x;
  std::vector<std::ptrdiff_t> seg_off(W.in_place ? std::size_t(g.k) : 1, 0);
  if (W.in_place)
    for (int ky = 0; ky < g.k; ++ky) seg_off[std::size_t(ky)] = std::ptrdiff_t(ky) * wp * g.c;
  const AWalk walk{seg_off.data(), W.in_place ? g.k : 1, W.in_place ? W.row_len : W.packed.k4};
  with_kernel(W.path(), [&]<class K>() {
    using AT = typename K::A;
    run_blocks<K>(
        M, W.packed, PP, walk,
        [&](long m0, int rows, const AT** ptrs, AT* buffer) {
          PixelWalker px(m0, P ? P : 1, ph, pw);
          for (int i = 0; i < rows; ++i, px.next()) {
            if constexpr (reads_in_place(K::path)) {
              ptrs[i] = xp + ((std::ptrdiff_t(px.img) * hp + std::ptrdiff_t(px.oy()) * g.stride) * wp +
                              std::ptrdiff_t(px.ox()) * g.stride) *
                                 g.c;
            } else {
              AT* d = buffer + std::ptrdiff_t(i) * W.packed.k4;
              pack_patch(g, x, zx, px.img, px.oy(), px.ox(), d, W.packed.k4);
              ptrs[i] = d;
            }
          }
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
            case Output::f32:
              requantize_block(epilogue, rq, cb, ldc, rows / PP, PP, f0, f1, ep.y_f32 + at, F);
              break;
            case Output::u8:
              requantize_block(epilogue, rq, cb, ldc, rows / PP, PP, f0, f1, ep.y_u8 + at, F);
              break;
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
inline void conv_u8_to_f32(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                           bool relu, float* y) {
  int8_detail::ConvEpilogue ep;
  ep.kind = int8_detail::Output::f32;
  ep.relu = relu;
  ep.y_f32 = y;
  int8_detail::conv_forward(g, x, xq, W, ep);
}

// y [n][oh][ow][f] u8 in the code yq: the fp32 value above, requantised.
inline void conv_u8_to_u8(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq, const Int8ConvWeights& W,
                          bool relu, const U8Quant& yq, std::uint8_t* y) {
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
inline void conv_relu_maxpool_u8(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq,
                                 const Int8ConvWeights& W, int P, const U8Quant& yq, std::uint8_t* y) {
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
inline void conv_relu_maxpool_f32(const ConvGeometry& g, const std::uint8_t* x, const U8Quant& xq,
                                  const Int8ConvWeights& W, int P, float* y) {
  HUBBLE_CHECK(P > 0, "conv_relu_maxpool_f32: the pool size must be > 0, got ", P);
  int8_detail::ConvEpilogue ep;
  ep.kind = int8_detail::Output::f32;
  ep.relu = true;
  ep.pool = P;
  ep.y_f32 = y;
  int8_detail::conv_forward(g, x, xq, W, ep);
}

}  // namespace hubble::kernels::lowp
