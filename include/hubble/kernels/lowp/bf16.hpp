#pragma once
// bfloat16 ("brain float"): the top half of an IEEE fp32 number.
//
//   fp32  s eeeeeeee mmmmmmmmmmmmmmmmmmmmmmm     1 sign, 8 exponent, 23 mantissa bits
//   bf16  s eeeeeeee mmmmmmm                     1 sign, 8 exponent,  7 mantissa bits
//
// Same exponent, so the same range as fp32 (1e-38 .. 3e38) and no overflow when converting;
// 7 stored mantissa bits (8 with the implicit 1): neighbours 2^-7 apart at 1, so rounding to
// nearest moves a value by at most u = 2^-8 = 0.39% relative (the unit roundoff; fp32's is 2^-24).
// bf16 -> fp32 is exact: append 16 zero bits.
//
// fp32 -> bf16 rounds to nearest, ties to even, on the bit pattern: add 0x7FFF plus the lowest
// kept bit, then drop the low 16 bits. A carry out of the mantissa bumps the exponent, which is
// exactly the right rounding (and 3.4e38 rounds to infinity, as it must). Three special cases
// follow what the AVX-512 BF16 instruction VCVTNEPS2BF16 does, so that the vector path and the
// portable loop give the same bits:
//   NaN       -> a quiet NaN with the same sign and top payload bits (a plain rounding could carry
//                a NaN into infinity: 0x7FFFFFFF + 0x7FFF overflows the exponent field)
//   denormal  -> zero of the same sign (the instruction treats fp32 denormals, |x| < 2^-126 =
//                1.2e-38, as zero; no activation or weight of a network lives there)
//   +-inf     -> +-inf (the rounding leaves them unchanged)
//
//   float_to_bf16(1.0f) == bfloat16{0x3F80};  bf16_to_float(bfloat16{0x3F80}) == 1.0f
//   to_bf16(src, dst, n) / to_float(src, dst, n): bulk conversions, vectorised where possible
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hubble/kernels/cpu_features.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HUBBLE_BF16_X86 1
#else
#define HUBBLE_BF16_X86 0
#endif

namespace hubble::kernels::lowp {

// One bfloat16 value, kept as its 16 bits (C++20 has no bf16 arithmetic type; std::bfloat16_t is C++23).
// (lowp::Bf16, capitalised, is the convolution variant in bf16_conv.hpp.)
// may_alias: the convolution keeps bf16 copies in the float buffers of a Workspace<float>.
struct __attribute__((may_alias)) bfloat16 {
  std::uint16_t bits = 0;
  friend bool operator==(bfloat16, bfloat16) = default;
};
static_assert(sizeof(bfloat16) == 2);

inline std::uint32_t float_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline float float_from_bits(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// fp32 -> bf16 bits, round to nearest even (denormals to signed zero, NaN kept a quiet NaN).
// Written without branches so that the bulk loop below vectorises.
inline std::uint16_t float_to_bf16_bits(float x) {
  const std::uint32_t u = float_bits(x);
  const std::uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;  // normal numbers and inf
  const std::uint32_t quiet_nan = (u >> 16) | 0x0040u;                   // set the top mantissa bit
  const std::uint32_t signed_zero = (u >> 16) & 0x8000u;                 // zero and denormals
  const bool is_nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  const bool is_zero_or_denormal = (u & 0x7F800000u) == 0;
  const std::uint32_t r = is_nan ? quiet_nan : is_zero_or_denormal ? signed_zero : rounded;
  return std::uint16_t(r);
}
inline bfloat16 float_to_bf16(float x) { return bfloat16{float_to_bf16_bits(x)}; }

// bf16 -> fp32: exact (the low 16 mantissa bits are zero).
inline float bf16_bits_to_float(std::uint16_t b) { return float_from_bits(std::uint32_t(b) << 16); }
inline float bf16_to_float(bfloat16 b) { return bf16_bits_to_float(b.bits); }

// x rounded to the nearest bf16 and back: what the bf16 kernels multiply instead of x.
inline float round_to_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }

// How the bulk conversion ran in this process ("avx512_bf16" or "portable"), for logs and tests.
enum class ConvertPath { portable, avx512_bf16 };
inline const char* name_of(ConvertPath p) { return p == ConvertPath::avx512_bf16 ? "avx512_bf16" : "portable"; }

namespace bf16_detail {

inline void to_bf16_portable(const float* src, bfloat16* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i].bits = float_to_bf16_bits(src[i]);
}

#if HUBBLE_BF16_X86
// 32 floats per step: VCVTNE2PS2BF16 rounds two 16-float registers into one of 32 bf16, the
// second operand into the low half. The tail (< 32) takes the portable loop, which gives the
// same bits (tests/test_bf16_kernels.cpp checks 2^24 bit patterns and the special cases).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void to_bf16_avx512(const float* src,
                                                                                           bfloat16* dst,
                                                                                           std::size_t n) {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(src + i), hi = _mm512_loadu_ps(src + i + 16);
    const __m512bh packed = _mm512_cvtne2ps_pbh(hi, lo);
    _mm512_storeu_si512(reinterpret_cast<void*>(dst + i), reinterpret_cast<__m512i>(packed));
  }
  to_bf16_portable(src + i, dst + i, n - i);
}
#endif

}  // namespace bf16_detail

// The path to_bf16 takes: the AVX-512 BF16 instruction when this CPU (after HUBBLE_CPU_LIMIT) has it.
inline ConvertPath convert_path() {
#if HUBBLE_BF16_X86
  if (cpu::features().has(cpu::Isa::avx512_bf16)) return ConvertPath::avx512_bf16;
#endif
  return ConvertPath::portable;
}

// dst[i] = bf16(src[i]), i < n, on `path` (default: the fastest this CPU has). Every path gives
// the same bits; asking for avx512_bf16 on a CPU without it is refused with a hubble::Error.
inline void to_bf16(const float* src, bfloat16* dst, std::size_t n, ConvertPath path = convert_path()) {
  if (path == ConvertPath::avx512_bf16) {
#if HUBBLE_BF16_X86
    if (cpu::features().has(cpu::Isa::avx512_bf16)) return bf16_detail::to_bf16_avx512(src, dst, n);
#endif
    throw Error("lowp::to_bf16: the avx512_bf16 conversion path was asked for, but this CPU lacks it (" +
                cpu::describe() + ")");
  }
  bf16_detail::to_bf16_portable(src, dst, n);
}

// dst[i] = float(src[i]): exact; a shift the compiler vectorises on any target.
inline void to_float(const bfloat16* src, float* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
}

}  // namespace hubble::kernels::lowp
