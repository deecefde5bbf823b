#pragma once
// The int8 convolution's epilogue: int32 sums -> fp32 values or u8 codes, per output channel f,
// with the optional ReLU and the max over a pooling window. With acc' = acc - zx * wsum[f] (the
// zero-point correction, int8_conv.hpp):
//   fp32:  y = max?(fma(mult[f], float(acc'), bias[f]), 0)       mult[f]  = sx * sw[f]
//   u8:    y = clamp(round(fma(qmult[f], float(acc'), qbias[f])), lo, 255)
//                                                                 qmult[f] = sx * sw[f] / sy
//                                                                 qbias[f] = b[f] / sy + zy
//          = round(real / sy) + zy, clamped, with the constants folded (they differ from the
//          unfolded formula by fp32 rounding: at most one code, at a tie). ReLU is lo = zy, the
//          code of real 0 (quantising is monotone: q(max(r, 0)) = max(q(r), q(0))); else lo = 0.
// A window's output is the maximum of its pixels' outputs (codes for u8): every step is monotone
// in acc for a fixed f, so this equals requantising the window's maximum.
//
// Scalar, AVX2 (8 channels per instruction) and AVX-512 (16) versions that give the same bits:
// fma and division-free steps, the same int -> float conversion, round to nearest even in all
// (std::nearbyint in the default rounding mode, _MM_FROUND_TO_NEAREST_INT), and max/min with the
// operands in the order that picks the same zero's sign as std::max/std::min.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hubble/kernels/cpu_features.hpp"
#include "hubble/kernels/lowp/int8_gemm.hpp"  // HUBBLE_TARGET, immintrin.h
#include "hubble/kernels/lowp/quantize.hpp"

namespace hubble::kernels::lowp::int8_detail {

struct Requantize {
  bool to_u8 = false;
  std::vector<std::int32_t> zcorr;  // zx * wsum[f]
  std::vector<float> mul, add;      // fp32: mult, bias;  u8: qmult, qbias
  float lo = 0.0f;                  // fp32 with ReLU: 0 (else -inf); u8: zy with ReLU, else 0
  float hi = 0.0f;                  // u8: 255; fp32: +inf
};

inline Requantize make_requantize(const std::vector<float>& sw, const std::vector<float>& bias,
                                  const std::vector<std::int32_t>& wsum, const U8Quant& xq, bool relu, bool to_u8,
                                  const U8Quant& yq) {
  Requantize r;
  r.to_u8 = to_u8;
  const std::size_t F = sw.size();
  r.zcorr.resize(F);
  r.mul.resize(F);
  r.add.resize(F);
  for (std::size_t j = 0; j < F; ++j) {
    r.zcorr[j] = xq.zero_point * wsum[j];
    const float mult = xq.scale * sw[j];
    r.mul[j] = to_u8 ? mult / yq.scale : mult;
    r.add[j] = to_u8 ? bias[j] / yq.scale + float(yq.zero_point) : bias[j];
  }
  if (to_u8) {
    r.lo = relu ? float(yq.zero_point) : 0.0f;
    r.hi = 255.0f;
  } else {
    r.lo = relu ? 0.0f : -INFINITY;
    r.hi = INFINITY;
  }
  return r;
}

// Channel j's output for one sum, before the pool.
inline float requantize_one(const Requantize& r, std::int32_t acc, std::size_t j) {
  float v = std::fma(r.mul[j], float(acc - r.zcorr[j]), r.add[j]);
  if (r.to_u8) v = std::nearbyint(v);
  return std::min(std::max(v, r.lo), r.hi);
}

// Channels [j0, j1) of `windows` windows of `rows` pixels each: window w's pixels are rows
// w * rows .. w * rows + rows - 1 of acc (ldc apart; column j at acc[j - j0]), and
//   out[w * ldo + j - j0] = max over the window's pixels of requantize_one
// (rows = 1: no pooling). Scalar.
template <class Out>
void requantize_block_scalar(const Requantize& r, const std::int32_t* acc, std::ptrdiff_t ldc, int windows, int rows,
                             int j0, int j1, Out* out, std::ptrdiff_t ldo) {
  for (int w = 0; w < windows; ++w, acc += rows * ldc, out += ldo)
    for (int j = j0; j < j1; ++j) {
      float best = requantize_one(r, acc[j - j0], std::size_t(j));
      for (int q = 1; q < rows; ++q) best = std::max(best, requantize_one(r, acc[q * ldc + j - j0], std::size_t(j)));
      out[j - j0] = Out(best);
    }
}

#if HUBBLE_INT8_X86
// The same, 8 channels per step (and the last j1 - j0 < 8 ones by the scalar code).
template <class Out>
HUBBLE_TARGET("avx2,fma")
void requantize_block_avx2(const Requantize& r, const std::int32_t* acc, std::ptrdiff_t ldc, int windows, int rows,
                           int j0, int j1, Out* out, std::ptrdiff_t ldo) {
  constexpr bool to_u8 = sizeof(Out) == 1;
  const __m256 lo = _mm256_set1_ps(r.lo), hi = _mm256_set1_ps(r.hi);
  const int j8 = j0 + (j1 - j0) / 8 * 8;
  for (int j = j0; j < j8; j += 8) {
    const std::size_t js = std::size_t(j);
    const __m256i zc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.zcorr.data() + js));
    const __m256 mul = _mm256_loadu_ps(r.mul.data() + js), add = _mm256_loadu_ps(r.add.data() + js);
    const std::int32_t* a = acc + (j - j0);
    Out* o = out + (j - j0);
    for (int w = 0; w < windows; ++w, o += ldo) {
      __m256 best = _mm256_setzero_ps();
      for (int q = 0; q < rows; ++q, a += ldc) {
        __m256 v = _mm256_fmadd_ps(
            mul, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)), zc)),
            add);
        if constexpr (to_u8) v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));  // operand order as std::max(v, lo), std::min(., hi): same bits
        best = q == 0 ? v : _mm256_max_ps(v, best);   // as std::max(best, v)
      }
      if constexpr (to_u8) {  // codes 0..255: int32 -> 8 bytes
        const __m256i codes = _mm256_cvtps_epi32(best);
        const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o), _mm_packus_epi16(w16, w16));
      } else {
        _mm256_storeu_ps(o, best);
      }
    }
  }
  if (j8 < j1) requantize_block_scalar(r, acc + (j8 - j0), ldc, windows, rows, j8, j1, out + (j8 - j0), ldo);
}
#endif

#if HUBBLE_INT8_X86
// The same, 16 channels per step (the rest by the AVX2 code).
template <class Out>
HUBBLE_TARGET("avx512f,avx512bw,avx512dq,avx512vl")
void requantize_block_avx512(const Requantize& r, const std::int32_t* acc, std::ptrdiff_t ldc, int windows, int rows,
                             int j0, int j1, Out* out, std::ptrdiff_t ldo) {
  constexpr bool to_u8 = sizeof(Out) == 1;
  const __m512 lo = _mm512_set1_ps(r.lo), hi = _mm512_set1_ps(r.hi);
  const __mmask16 all = 0xffff;
  const int j16 = j0 + (j1 - j0) / 16 * 16;
  for (int j = j0; j < j16; j += 16) {
    const std::size_t js = std::size_t(j);
    const __m512i zc = _mm512_loadu_si512(r.zcorr.data() + js);
    const __m512 mul = _mm512_loadu_ps(r.mul.data() + js), add = _mm512_loadu_ps(r.add.data() + js);
    const std::int32_t* a = acc + (j - j0);
    Out* o = out + (j - j0);
    for (int w = 0; w < windows; ++w, o += ldo) {
      __m512 best = _mm512_setzero_ps();
      for (int q = 0; q < rows; ++q, a += ldc) {
        // (The maskz_ forms with every lane set: GCC 12 warns that the unmasked forms' undefined
        // pass-through register "may be used uninitialized" when compiled under a target attribute.)
        __m512 v =
            _mm512_fmadd_ps(mul, _mm512_maskz_cvtepi32_ps(all, _mm512_sub_epi32(_mm512_loadu_si512(a), zc)), add);
        if constexpr (to_u8) v = _mm512_maskz_roundscale_ps(all, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_maskz_min_ps(all, hi,
                                _mm512_maskz_max_ps(all, lo, v));  // operand order as the AVX2 code: the same bits
        best = q == 0 ? v : _mm512_maskz_max_ps(all, v, best);
      }
      if constexpr (to_u8) {  // codes 0..255: int32 -> 16 bytes
        const __m512i codes = _mm512_maskz_cvtps_epi32(all, best);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm512_maskz_cvtepi32_epi8(all, codes));
      } else {
        _mm512_storeu_ps(o, best);
      }
    }
  }
  if (j16 < j1) requantize_block_avx2(r, acc + (j16 - j0), ldc, windows, rows, j16, j1, out + (j16 - j0), ldo);
}
#endif

// The widest version this process may run.
enum class EpilogueIsa { scalar, avx2, avx512 };
inline EpilogueIsa epilogue_isa() {
  if (cpu::features().has(cpu::Isa::avx512)) return EpilogueIsa::avx512;
  if (cpu::features().has(cpu::Isa::avx2)) return EpilogueIsa::avx2;
  return EpilogueIsa::scalar;
}

template <class Out>
void requantize_block(EpilogueIsa isa, const Requantize& r, const std::int32_t* acc, std::ptrdiff_t ldc, int windows,
                      int rows, int j0, int j1, Out* out, std::ptrdiff_t ldo) {
#if HUBBLE_INT8_X86
  if (isa == EpilogueIsa::avx512) return requantize_block_avx512(r, acc, ldc, windows, rows, j0, j1, out, ldo);
  if (isa == EpilogueIsa::avx2) return requantize_block_avx2(r, acc, ldc, windows, rows, j0, j1, out, ldo);
#endif
  (void)isa;
  requantize_block_scalar(r, acc, ldc, windows, rows, j0, j1, out, ldo);
}

}  // namespace hubble::kernels::lowp::int8_detail

namespace hubble::kernels::lowp {

#if HUBBLE_INT8_X86
namespace int8_detail {
// quantize_u8 (quantize.hpp) on 16 values per step: the same division (IEEE, correctly rounded),
// round to nearest even, + zero point, clamp to 0..255. Returns false when a value is not finite
// (the caller then names it).
HUBBLE_TARGET("avx512f,avx512bw,avx512dq,avx512vl")
inline bool quantize_u8_avx512(const float* x, long i0, long i1, const U8Quant& p, std::uint8_t* q) {
  const __mmask16 all = 0xffff;
  const __m512 scale = _mm512_set1_ps(p.scale), zero = _mm512_set1_ps(float(p.zero_point));
  const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
  __mmask16 finite = all;  // v - v == 0 only for a finite v
  long i = i0;
  for (; i + 16 <= i1; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    finite &= _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), lo, _CMP_EQ_OQ);
    const __m512 rounded =
        _mm512_maskz_roundscale_ps(all, _mm512_div_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 c = _mm512_maskz_min_ps(all, hi, _mm512_maskz_max_ps(all, lo, _mm512_add_ps(rounded, zero)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i),
                     _mm512_maskz_cvtepi32_epi8(all, _mm512_maskz_cvtps_epi32(all, c)));
  }
  bool ok = finite == all;
  for (; i < i1; ++i) {
    ok = ok && std::isfinite(x[i]);
    q[i] = quantize_u8(x[i], p);
  }
  return ok;
}
}  // namespace int8_detail
#endif

// quantize_u8 over an array, on AVX-512 where the CPU has it, in 64K-value chunks over the
// threads: the same codes (the test compares them, ties included), about twice as fast as the
// compiler's AVX2 form of the portable loop (3.1M values, a batch-64 input: 0.38 against 0.72 ms
// on 2 threads, Xeon with AMX). QuantizedPlan quantises its input with it.
inline void quantize_u8_simd(const float* x, std::size_t n, const U8Quant& p, std::uint8_t* q) {
#if HUBBLE_INT8_X86
  if (int8_detail::epilogue_isa() == int8_detail::EpilogueIsa::avx512) {
    check_u8_quant(p, "quantize_u8");
    constexpr long chunk = 65536;
    const long count = long(n), chunks = (count + chunk - 1) / chunk;
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (chunks > 1)
    for (long c = 0; c < chunks; ++c)
      bad |= int(!int8_detail::quantize_u8_avx512(x, c * chunk, std::min(count, (c + 1) * chunk), p, q));
    if (!bad) return;  // else the portable form names the first value that is not finite
  }
#endif
  quantize_u8(x, n, p, q);
}

}  // namespace hubble::kernels::lowp
