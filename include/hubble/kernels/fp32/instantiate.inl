// Compiles the body named by HUBBLE_FP32_BODY into kernels::portable (the build's flags) and,
// where fp32/isa.hpp says so, into kernels::avx512 (AVX-512 enabled). Included by the public
// kernel headers; no include guard: once per body.
//   HUBBLE_FP32_AVX512 / HUBBLE_FP32_AVX2: which intrinsics the body may use in this copy.
namespace hubble::kernels::portable {
#define HUBBLE_FP32_AVX512 HUBBLE_BUILD_AVX512
#define HUBBLE_FP32_AVX2 (HUBBLE_BUILD_AVX2 || HUBBLE_BUILD_AVX512)
#include HUBBLE_FP32_BODY
#undef HUBBLE_FP32_AVX512
#undef HUBBLE_FP32_AVX2
}  // namespace hubble::kernels::portable

#if HUBBLE_FP32_DISPATCH
HUBBLE_AVX512_REGION_BEGIN
namespace hubble::kernels::avx512 {
#define HUBBLE_FP32_AVX512 1
#define HUBBLE_FP32_AVX2 1
#include HUBBLE_FP32_BODY
#undef HUBBLE_FP32_AVX512
#undef HUBBLE_FP32_AVX2
}  // namespace hubble::kernels::avx512
HUBBLE_AVX512_REGION_END
#endif
