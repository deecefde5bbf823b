#pragma once
// gemm: hubble's own matrix product, BLIS-style, and the register-blocked micro-kernel every
// fast convolution variant is built on.
//
//   C[m x n] (+)= op(A)[m x k] * op(B)[k x n]   (+ bias[n] per row, then optionally max(., 0))
//   op(X) = X or X^T, read in place: a transposed operand is never materialised, the packing
//   routines simply read it with the other stride.  All matrices are row-major.
//
// How it is blocked (see docs/images/kernels_gemm_blocking.svg):
//   for each task (a block of MC rows x NCt columns x one K part), on one thread:
//     for pc in K by KC:         pack B[pc:pc+KC, cols] into NR-wide panels   ([k][NR], L1/L2)
//                                pack A[rows, pc:pc+KC] into MR-tall panels   ([k][MR], L2)
//       for jr in cols by NR:    one B panel stays in L1 ...
//         for ir in rows by MR:  ... while the micro-kernel streams A panels past it:
//                                an MR x NR tile of C lives in registers for the whole KC loop.
// The micro-kernel (Microkernel<T>) broadcasts one A value and multiplies it into NR/8 vector
// registers of B: MR*NR/8 independent FMA chains, enough to hide the FMA latency.  It reads A
// through MR row pointers plus a segmented, strided k walk (APanel), so the same kernel also runs
// on a packed panel (one segment, step MR), on unpacked rows (step 1), or directly on the input
// image of a convolution (one segment per kernel row) — see implicit_gemm.hpp.
//
// A product of at most 8 rows (a Dense layer at a small batch) skips the packing: few_rows_gemm
// reads B in place (gemm_body.inl).
//
// Threads: the tasks are spread over OpenMP threads.  A product whose output is too small to
// split (a weight gradient: few rows, huge k) is split along k into parts whose number depends
// on the shape only; each part sums into its own buffer and the parts are added in a fixed order,
// so the result does not depend on the thread count or the schedule.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#include "hubble/kernels/fp32/isa.hpp"
// Unrolls the micro-kernels' k loop where the compiler knows the pragma (GCC and Clang).
#if defined(__GNUC__)
#define HUBBLE_UNROLL_4 _Pragma("GCC unroll 4")
#else
#define HUBBLE_UNROLL_4
#endif
// The SIMD micro-kernels are always inlined into their callers, which pass constants (the walk's
// step, ldb, full tiles) the kernel's loops are then compiled for. GCC's own choice flips with the
// size of the caller: a slightly larger implicit_detail::forward once made it call an out-of-line
// copy, +66% instructions in conv1 (callgrind).
#if defined(__GNUC__)
#define HUBBLE_MICROKERNEL_INLINE [[gnu::always_inline]] inline
#else
#define HUBBLE_MICROKERNEL_INLINE inline
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace hubble::kernels {

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// A grow-only, 64-byte aligned scratch array. thread_scratch<T, Slot>(n) hands every thread its
// own one per slot (packing buffers must not be shared between threads).
template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(p_); }
  T* get(std::size_t n) {
    if (n > cap_) {
      std::free(p_);
      const std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
      p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!p_) throw std::bad_alloc();
      cap_ = n;
    }
    return p_;
  }

 private:
  T* p_ = nullptr;
  std::size_t cap_ = 0;
};

// The per-thread scratch arrays, one name per use. Buffers that are live at the same time need
// different slots; a slot may be reused by code that never runs while another use is live.
enum class Scratch {
  gemm_b_panels,          // gemm: the packed KC x NC block of B
  gemm_a_panels,          // gemm: the packed MC x KC block of A
  implicit_dy_panels,     // ImplicitGemm weight gradient: dy rows packed as B panels
  implicit_patch_panels,  // ImplicitGemm weight gradient: im2col^T rows packed as A panels
  implicit_dcol = implicit_patch_panels,  // ImplicitGemm col2im input gradient (never live with the above)
  winograd_v,             // Winograd: the input tiles' transforms V
  winograd_m,             // Winograd: the products M, or the output gradient's transforms
  winograd_zeros,         // Winograd: a row of zeros for tiles over the border, then spare rows
  implicit_pool_tiles,    // ImplicitGemm fused pooling: conv output rows before the pool
};

template <class T, Scratch Slot>
T* thread_scratch(std::size_t n) {
  thread_local AlignedBuffer<T> buffer;
  return buffer.get(n);
}

namespace gemm {

enum class Trans { no, yes };

// What happens when a tile of C is written.
template <class T>
struct Epilogue {
  bool accumulate = false;   // C += product (else C = product)
  const T* bias = nullptr;   // adds bias[j] to column j
  bool relu = false;         // max(., 0) on the final value
  const T* scale = nullptr;  // then C = scale[j] * (product (+ C)) + bias[j]: an affine map per
                             // column (BatchNorm folded at inference, network/fusion.hpp)
};

namespace detail {
// The epilogue on one value: v is the product, c the value C holds.
template <class T>
inline T finish(T v, T c, int j, const Epilogue<T>& ep) {
  if (ep.accumulate) v += c;
  if (ep.scale) v = ep.scale[j] * v + (ep.bias ? ep.bias[j] : T(0));
  else if (ep.bias) v += ep.bias[j];
  return ep.relu ? std::max(v, T(0)) : v;
}
}  // namespace detail

// ---- the reference: the definition, one dot product per entry --------------------------------
template <class T>
void reference(Trans ta, Trans tb, int m, int n, int k, const T* a, std::ptrdiff_t lda, const T* b,
               std::ptrdiff_t ldb, T* c, std::ptrdiff_t ldc, const Epilogue<T>& ep = {}) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      T s = 0;
      for (int p = 0; p < k; ++p) {
        const T av = ta == Trans::no ? a[i * lda + p] : a[p * lda + i];
        const T bv = tb == Trans::no ? b[p * ldb + j] : b[j * ldb + p];
        s += av * bv;
      }
      c[i * ldc + j] = detail::finish(s, ep.accumulate ? c[i * ldc + j] : T(0), j, ep);
    }
}

// ---- the micro-kernel -------------------------------------------------------------------------
// How the micro-kernel walks its MR rows of A:  k = s * seg_len + t  reads
//   rows[r][seg_off[s] + t * step]        (s < segments, t < seg_len)
// B is a packed panel, b[k * NR + j], or any row-major matrix with rows ldb apart whose NR
// columns are all valid (run's last argument).
template <class T>
struct APanel {
  const T* const* rows;
  const std::ptrdiff_t* seg_off;
  int segments;
  int seg_len;
  std::ptrdiff_t step;
};

namespace detail {
// Writes an MR x NR tile held in `acc` (row-major) to C, of which only mr x nr is valid.
template <class T, int MR, int NR>
inline void store_tile(const T* acc, T* c, std::ptrdiff_t ldc, int mr, int nr, const Epilogue<T>& ep) {
  for (int r = 0; r < mr; ++r)
    for (int j = 0; j < nr; ++j) c[r * ldc + j] = finish(acc[r * NR + j], ep.accumulate ? c[r * ldc + j] : T(0), j, ep);
}
}  // namespace detail

// Portable micro-kernel (double, or a build without AVX2): plain loops the compiler vectorises.
template <class T, int MR_, int NR_>
struct GenericMicrokernel {
  static constexpr int MR = MR_, NR = NR_;
  static constexpr const char* isa = "generic";
  static void run(const APanel<T>& a, const T* b, T* c, std::ptrdiff_t ldc, int mr, int nr, const Epilogue<T>& ep,
                  std::ptrdiff_t ldb = NR) {
    alignas(64) T acc[MR * NR] = {};
    for (int s = 0; s < a.segments; ++s) {
      const T* p[MR];
      for (int r = 0; r < MR; ++r) p[r] = a.rows[r] + a.seg_off[s];
      for (int t = 0; t < a.seg_len; ++t, b += ldb) {
        const std::ptrdiff_t idx = t * a.step;
        for (int r = 0; r < MR; ++r) {
          const T av = p[r][idx];
          for (int j = 0; j < NR; ++j) acc[r * NR + j] += av * b[j];
        }
      }
    }
    detail::store_tile<T, MR, NR>(acc, c, ldc, mr, nr, ep);
  }
};

}  // namespace gemm
}  // namespace hubble::kernels

// The micro-kernels (Microkernel<T>: AVX-512 8x32, AVX2 6x16 or GenericMicrokernel), Blocking,
// packing, gemm(), column_sums() and the packed-B products, once per instruction set.
#define HUBBLE_FP32_BODY "hubble/kernels/fp32/gemm_body.inl"
#include "hubble/kernels/fp32/instantiate.inl"
#undef HUBBLE_FP32_BODY

namespace hubble::kernels::gemm {

// C[m x n] (+)= op(A) op(B) with the epilogue ep; lda/ldb/ldc are the row strides of the stored
// matrices (A stored m x k when ta == no, k x m when ta == yes; likewise B). Runs the copy
// fp32_path() picks (fp32/isa.hpp).
template <class T>
void gemm(Trans ta, Trans tb, int m, int n, int k, const T* a, std::ptrdiff_t lda, const T* b, std::ptrdiff_t ldb,
          T* c, std::ptrdiff_t ldc, const Epilogue<T>& ep = {}) {
  HUBBLE_FP32_CALL(gemm::gemm<T>, (ta, tb, m, n, k, a, lda, b, ldb, c, ldc, ep));
}

// out[j] = sum_i a[i * n + j] (the bias gradient), reproducible for any thread count.
template <class T>
void column_sums(const T* a, long m, int n, T* out) {
  HUBBLE_FP32_CALL(gemm::column_sums<T>, (a, m, n, out));
}

}  // namespace hubble::kernels::gemm
