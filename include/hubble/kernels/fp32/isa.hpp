#pragma once
// Run-time choice of the fp32 kernels' instruction set.
//
// The fp32 convolution kernels (gemm, ImplicitGemm, Winograd, Tuned, PackedGemm) are written once,
// in fp32/*_body.inl, and compiled into two namespaces of the same binary:
//   kernels::portable  with the build's own flags (the default build: AVX2 + FMA, 6x16 micro-kernel)
//   kernels::avx512    with AVX-512 (F, BW, DQ, VL) enabled for those functions only (8x32
//                      micro-kernel), through the compiler's target pragma
// and the public variants (kernels::ImplicitGemm, ...) call one or the other: avx512 where the
// CPU has AVX-512 and HUBBLE_CPU_LIMIT does not hide it (kernels/cpu_features.hpp), else portable.
// The second copy exists only where it adds something and compiles: x86 with GCC, built without
// -mavx512f (a -march=native build on an AVX-512 machine already has it in `portable`), and not
// switched off with HUBBLE_NO_FP32_DISPATCH. Clang 14 (its `#pragma clang attribute` would do the
// same) stops in its back end ("Do not know how to split the result of this operator") where an
// AVX-512 micro-kernel is inlined into an OpenMP region, whose outlined function does not take the
// target attribute; Clang builds keep the build's own kernels.
//
// Both copies give the same sums up to rounding (a different micro-kernel tile, so a different
// blocking of k is possible): tests/test_fp32_dispatch.cpp runs the kernel tests on each path.
#include <cstdlib>

#include "hubble/core/error.hpp"
#include "hubble/kernels/cpu_features.hpp"

#if !defined(__AVX512F__) && (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(HUBBLE_NO_FP32_DISPATCH)
#define HUBBLE_FP32_DISPATCH 1
#else
#define HUBBLE_FP32_DISPATCH 0
#endif

// The region compiled with AVX-512 enabled (functions, their lambdas and OpenMP bodies).
#if HUBBLE_FP32_DISPATCH
#define HUBBLE_AVX512_REGION_BEGIN \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx2,fma\")")
#define HUBBLE_AVX512_REGION_END _Pragma("GCC pop_options")
#endif

// What the build's own flags give the portable copy.
#if defined(__AVX512F__)
#define HUBBLE_BUILD_AVX512 1
#else
#define HUBBLE_BUILD_AVX512 0
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define HUBBLE_BUILD_AVX2 1
#else
#define HUBBLE_BUILD_AVX2 0
#endif
#if HUBBLE_BUILD_AVX2 || HUBBLE_BUILD_AVX512 || HUBBLE_FP32_DISPATCH
#include <immintrin.h>
#endif

namespace hubble::kernels {

enum class Fp32Path { portable, avx512 };

namespace fp32_detail {
inline Fp32Path detect() {
  return HUBBLE_FP32_DISPATCH && cpu::features().has(cpu::Isa::avx512) ? Fp32Path::avx512 : Fp32Path::portable;
}
inline Fp32Path& setting() {
  static Fp32Path path = detect();
  return path;
}
}  // namespace fp32_detail

// The copy the fp32 kernels run.
inline Fp32Path fp32_path() { return fp32_detail::setting(); }

// Whether this binary and machine can run `path`.
inline bool fp32_path_available(Fp32Path path) {
  return path == Fp32Path::portable || fp32_detail::detect() == Fp32Path::avx512;
}

// Makes the kernels run `path` from now on (tests, benchmarks); refuses one the binary or the CPU
// lacks. Not thread-safe: call it while no kernel runs. Prepared weights (Workspace) carry the
// layout they were packed for, so switching never reuses the other path's packing.
inline void set_fp32_path(Fp32Path path) {
  HUBBLE_CHECK(
      fp32_path_available(path), "set_fp32_path: the avx512 fp32 kernels are not available (",
      HUBBLE_FP32_DISPATCH ? "this CPU has no AVX-512, or HUBBLE_CPU_LIMIT hides it" : "this build has no second copy",
      ")");
  fp32_detail::setting() = path;
}

// "avx512 (8x32 micro-kernel, chosen at run time)", "avx2+fma (6x16 micro-kernel)", ...: what
// the fp32 kernels run, for benchmark reports.
inline const char* fp32_path_name() {
  if (fp32_path() == Fp32Path::avx512) return "avx512 (8x32 micro-kernel, chosen at run time)";
  if (HUBBLE_BUILD_AVX512) return "avx512 (8x32 micro-kernel, compiled in)";
  if (HUBBLE_BUILD_AVX2) return "avx2+fma (6x16 micro-kernel)";
  return "generic (portable micro-kernel)";
}

}  // namespace hubble::kernels

// Calls portable::F or avx512::F with the same arguments (the public variants' bodies).
#if HUBBLE_FP32_DISPATCH
#define HUBBLE_FP32_CALL(F, ARGS)                                                                                  \
  return ::hubble::kernels::fp32_path() == ::hubble::kernels::Fp32Path::avx512 ? ::hubble::kernels::avx512::F ARGS \
                                                                               : ::hubble::kernels::portable::F ARGS
#else
#define HUBBLE_FP32_CALL(F, ARGS) return ::hubble::kernels::portable::F ARGS
#endif
