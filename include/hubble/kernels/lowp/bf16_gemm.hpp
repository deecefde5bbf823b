#pragma once
// A bf16 GEMM with fp32 accumulation, and the run-time choice of its micro-kernel.
//
//   C_f32 [m x n] = A_bf16 [m x k] * B_bf16 [k x n]  (+ bias[n], then max(., 0) if relu)
//
// The instruction it is built around, VDPBF16PS (AVX-512 BF16), works on pairs: each 32-bit lane
// holds two bf16 values, and for each of the 16 fp32 lanes i of a zmm register
//   acc[i] += a_odd[i] * b_odd[i];  acc[i] += a_even[i] * b_even[i]      (Intel's pseudo-code)
// So both operands are stored as pairs along k (k padded to even with a zero):
//   B packed once, panel by panel of NR = 32 columns:
//     bp[panel][p][j] = { B[2p][panel*32 + j] (low 16 bits), B[2p+1][panel*32 + j] (high 16 bits) }
//   A packed per block, panel by panel of MR = 8 rows:
//     ap[p][r]        = { A[r][2p] (low), A[r][2p+1] (high) }       p < pairs = ceil(k / 2)
// and the micro-kernel keeps an 8 x 32 tile of C in 16 zmm registers: per pair p, two loads of B,
// eight 32-bit broadcasts of A, sixteen VDPBF16PS (512 multiply-adds).
//
// The paths (Bf16Path), fastest first; one binary built with the project's usual flags (-mavx2
// -mfma, no -mavx512) holds them all, each compiled with __attribute__((target(...))), and picks
// by CPUID at run time (cpu_features.hpp; HUBBLE_CPU_LIMIT=avx2 hides the AVX-512 ones):
//   amx_bf16     AMX tiles (TDPBF16PS, kernels/amx.hpp): C [16][16] += A [16 rows][16 pairs] *
//                B [16 pairs][16 columns] per instruction, 8,192 multiply-adds. B's tile is 16
//                pair rows of a panel's first or last 16 columns: the panels above, read at a
//                stride of 32 words. A's tile wants each row's pairs consecutive, the transpose of
//                an A panel: a packer that can writes rows of pairs itself (TileRows, below);
//                otherwise each task's 8-row panels (packed as for every path) are transposed
//                into rows of pairs (AVX-512 permutes, 8 x 16 words at a time). The kernel keeps
//                32 x 32 sums in four C tiles.
//   avx512_bf16  VDPBF16PS on zmm, as above.
//   avx2         the same products in fp32 FMA on ymm: bf16 -> fp32 is a 16-bit shift, and per
//                pair acc = fma(a_odd, b_odd, acc); acc = fma(a_even, b_even, acc).
//   generic      the same with std::fma in plain loops.
//
// How close the paths are. A product of two bf16 values (8-bit significands) has at most 16
// significant bits, so it is exact in fp32; each accumulation step then rounds once, to nearest
// even. VDPBF16PS is documented as the two additions above in that order, so avx2 and generic do
// exactly that, and on normal numbers the paths agree bit for bit: measured on an AMD EPYC Zen 4
// on 320,000 random outputs (k up to 100); tests/test_bf16_kernels.cpp fails on an avx2/generic
// difference and warns (doctest WARN) on an avx512_bf16 one, which another CPU might show. Where they
// may differ: VDPBF16PS treats denormal inputs and accumulators as zero and flushes denormal
// results to zero (DAZ/FTZ, whatever MXCSR says), the FMA paths keep them. Each step then drops
// less than the smallest normal, 2^-126 = 1.2e-38 (on all-tiny data the paths differ by less than
// k * 2^-126: tested), but a later rounding can turn such a difference into one unit in the last
// place of a larger sum, so what holds for every path on any data is the bound for k sequential
// fp32 additions (plus k * 2^-126 for flushed denormals on avx512_bf16):
//   |C - sum_l A[i,l] B[l,j]| <= gamma_k * sum_l |A[i,l] B[l,j]|,  gamma_k = k u / (1 - k u), u = 2^-24
// (plus one more rounding for the bias). The result of each C element is computed by one thread,
// k in order, so it does not depend on the number of threads; the k-split used for tall-skinny
// products (weight gradients) cuts k into chunks fixed by the shape alone and adds the chunk sums
// in order, which keeps that property.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "hubble/core/aligned.hpp"
#include "hubble/kernels/amx.hpp"
#include "hubble/kernels/gemm.hpp"  // max_threads
#include "hubble/kernels/lowp/bf16.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hubble::kernels::lowp {

// ---- paths and their run-time choice ------------------------------------------------------------
enum class Bf16Path { generic, avx2, avx512_bf16, amx_bf16 };
inline constexpr Bf16Path all_bf16_paths[] = {Bf16Path::generic, Bf16Path::avx2, Bf16Path::avx512_bf16,
                                              Bf16Path::amx_bf16};

inline const char* name_of(Bf16Path p) {
  switch (p) {
    case Bf16Path::generic:
      return "generic";
    case Bf16Path::avx2:
      return "avx2";
    case Bf16Path::avx512_bf16:
      return "avx512_bf16";
    case Bf16Path::amx_bf16:
      return "amx_bf16";
  }
  return "?";
}

// Empty when `p` can run in this process; otherwise why not, in words.
inline std::string bf16_path_unavailable(Bf16Path p) {
  const auto& f = cpu::features();
  switch (p) {
    case Bf16Path::generic:
      return "";
    case Bf16Path::avx2:
      if (!HUBBLE_BF16_X86) return "avx2: not an x86-64 build";
      return f.has(cpu::Isa::avx2) ? "" : "avx2: this CPU lacks it (or HUBBLE_CPU_LIMIT hides it)";
    case Bf16Path::avx512_bf16:
      if (!HUBBLE_BF16_X86) return "avx512_bf16: not an x86-64 build";
      return f.has(cpu::Isa::avx512_bf16) ? "" : "avx512_bf16: this CPU lacks it (or HUBBLE_CPU_LIMIT hides it)";
    case Bf16Path::amx_bf16:
      if (!HUBBLE_BF16_X86 || !HUBBLE_AMX) return "amx_bf16: not an x86-64 build";
      return f.has(cpu::Isa::amx_bf16) ? "" : "amx_bf16: this CPU lacks it (or HUBBLE_CPU_LIMIT hides it)";
  }
  return "unknown path";
}
inline bool bf16_path_runs(Bf16Path p) { return bf16_path_unavailable(p).empty(); }

// The fastest path this process can run.
inline Bf16Path best_bf16_path() {
  for (Bf16Path p : {Bf16Path::amx_bf16, Bf16Path::avx512_bf16, Bf16Path::avx2})
    if (bf16_path_runs(p)) return p;
  return Bf16Path::generic;
}

namespace bf16_detail {
inline std::atomic<int>& forced_path() {
  static std::atomic<int> forced{-1};  // -1: none, else a Bf16Path
  return forced;
}
}  // namespace bf16_detail

// Forces every later bf16 GEMM/convolution onto `p` (tests, benchmarks); refused with a
// hubble::Error naming the reason when `p` cannot run here. unforce_bf16_path() undoes it.
inline void force_bf16_path(Bf16Path p) {
  const std::string why = bf16_path_unavailable(p);
  if (!why.empty()) throw Error("lowp::force_bf16_path: cannot use " + why);
  bf16_detail::forced_path().store(int(p));
}
inline void unforce_bf16_path() { bf16_detail::forced_path().store(-1); }

// The path the kernels use now: the forced one, else the fastest.
inline Bf16Path active_bf16_path() {
  const int forced = bf16_detail::forced_path().load();
  return forced >= 0 ? Bf16Path(forced) : best_bf16_path();
}
inline const char* chosen_bf16_path() { return name_of(active_bf16_path()); }

// Scope guard: forces `p` until the end of the scope, then restores what was there.
class ForcedBf16Path {
 public:
  explicit ForcedBf16Path(Bf16Path p) : previous_(bf16_detail::forced_path().load()) { force_bf16_path(p); }
  ~ForcedBf16Path() { bf16_detail::forced_path().store(previous_); }
  ForcedBf16Path(const ForcedBf16Path&) = delete;
  ForcedBf16Path& operator=(const ForcedBf16Path&) = delete;

 private:
  int previous_;
};

// ---- packed operands ----------------------------------------------------------------------------
inline constexpr int gemm_mr = 8;   // rows of an A panel (and of a C tile)
inline constexpr int gemm_nr = 32;  // columns of a B panel (and of a C tile)

// A 32-bit word holding a pair of bf16 (low: even k, high: odd k). may_alias: pairs live in
// the float buffers of a Workspace<float>.
typedef std::uint32_t PairWord __attribute__((may_alias));

inline PairWord make_pair_word(std::uint16_t even, std::uint16_t odd) { return PairWord(even) | (PairWord(odd) << 16); }

// A read-only view of a packed B: panels of gemm_nr columns, each `pairs` rows of gemm_nr words.
struct PackedBView {
  const PairWord* data = nullptr;
  int k = 0, n = 0;
  int pairs() const { return (k + 1) / 2; }
  int panels() const { return (n + gemm_nr - 1) / gemm_nr; }
  std::size_t panel_stride() const { return std::size_t(pairs()) * gemm_nr; }
};
inline std::size_t packed_b_words(int k, int n) {
  return std::size_t((k + 1) / 2) * std::size_t((n + gemm_nr - 1) / gemm_nr) * gemm_nr;
}

// Packs B[k x n], read through get(l, j) -> float (l < k, j < n), rounded to bf16, into `out`
// (packed_b_words(k, n) words; zeros where l >= k or j >= n). Parallel over panels and k blocks.
template <class Get>
void pack_b(int k, int n, Get&& get, PairWord* out) {
  const int pairs = (k + 1) / 2, panels = (n + gemm_nr - 1) / gemm_nr;
  constexpr int pair_block = 256;
  const int blocks = (pairs + pair_block - 1) / pair_block;
  const long tasks = long(panels) * blocks;
#pragma omp parallel for schedule(static) if (tasks > 1 && long(k) * n > 32768)
  for (long t = 0; t < tasks; ++t) {
    const int panel = int(t / blocks), p0 = int(t % blocks) * pair_block, p1 = std::min(pairs, p0 + pair_block);
    const int j0 = panel * gemm_nr, cols = std::min(gemm_nr, n - j0);
    PairWord* dst = out + std::size_t(panel) * std::size_t(pairs) * gemm_nr;
    for (int p = p0; p < p1; ++p) {
      const int l = 2 * p;
      for (int jj = 0; jj < gemm_nr; ++jj) {
        std::uint16_t even = 0, odd = 0;
        if (jj < cols) {
          even = float_to_bf16_bits(get(l, j0 + jj));
          if (l + 1 < k) odd = float_to_bf16_bits(get(l + 1, j0 + jj));
        }
        dst[std::size_t(p) * gemm_nr + std::size_t(jj)] = make_pair_word(even, odd);
      }
    }
  }
}

namespace bf16_detail {
// One pair row of a panel from two rows of fp32 (32 columns each): {bf16(even[j]), bf16(odd[j])}.
inline void pair_row_portable(const float* even, const float* odd, PairWord* dst) {
  for (int j = 0; j < gemm_nr; ++j) dst[j] = make_pair_word(float_to_bf16_bits(even[j]), float_to_bf16_bits(odd[j]));
}
#if HUBBLE_BF16_X86
// The same with VCVTNE2PS2BF16 (16 columns of both rows into one register: even in the low
// half, odd in the high half) and a word shuffle that interleaves the halves into pairs.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void pair_row_avx512(const float* even,
                                                                                            const float* odd,
                                                                                            PairWord* dst) {
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int half = 0; half < 2; ++half) {
    const __m512bh both = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(odd + 16 * half), _mm512_loadu_ps(even + 16 * half));
    _mm512_storeu_si512(dst + 16 * half, _mm512_permutexvar_epi16(interleave, reinterpret_cast<__m512i>(both)));
  }
}
#endif
}  // namespace bf16_detail

// pack_b for a row-major fp32 B (rows ldb apart), the common case (weights, output gradients):
// whole panel rows are converted 32 columns at a time, with VCVTNE2PS2BF16 on `path`
// avx512_bf16. Same bits as pack_b(k, n, get, out).
inline void pack_b_rows(int k, int n, const float* b, std::size_t ldb, PairWord* out,
                        ConvertPath path = convert_path()) {
  const int pairs = (k + 1) / 2, panels = (n + gemm_nr - 1) / gemm_nr;
  constexpr int pair_block = 256;
  const int blocks = (pairs + pair_block - 1) / pair_block;
  const long tasks = long(panels) * blocks;
#if HUBBLE_BF16_X86
  const bool vector = path == ConvertPath::avx512_bf16 && cpu::features().has(cpu::Isa::avx512_bf16);
#else
  const bool vector = false;
  (void)path;
#endif
#pragma omp parallel for schedule(static) if (tasks > 1 && long(k) * n > 32768)
  for (long t = 0; t < tasks; ++t) {
    const int panel = int(t / blocks), p0 = int(t % blocks) * pair_block, p1 = std::min(pairs, p0 + pair_block);
    const int j0 = panel * gemm_nr, cols = std::min(gemm_nr, n - j0);
    PairWord* dst = out + std::size_t(panel) * std::size_t(pairs) * gemm_nr;
    for (int p = p0; p < p1; ++p) {
      const int l = 2 * p;
      const float* even = b + std::size_t(l) * ldb + std::size_t(j0);
      PairWord* row = dst + std::size_t(p) * gemm_nr;
      if (cols == gemm_nr && l + 1 < k) {
#if HUBBLE_BF16_X86
        if (vector) {
          bf16_detail::pair_row_avx512(even, even + ldb, row);
          continue;
        }
#endif
        bf16_detail::pair_row_portable(even, even + ldb, row);
        continue;
      }
      for (int j = 0; j < gemm_nr; ++j)  // the last panel or the last (odd) row: zero padding
        row[j] = j < cols ? make_pair_word(float_to_bf16_bits(even[j]),
                                           l + 1 < k ? float_to_bf16_bits(even[std::size_t(j) + ldb]) : 0)
                          : 0;
    }
  }
}

// An owning packed B, for callers outside the convolution (which keeps its own in a Workspace).
struct PackedB {
  AlignedVector<std::uint32_t> words;
  int k = 0, n = 0;
  PackedBView view() const { return {words.data(), k, n}; }
};
// B [k x n] bf16, row-major with leading dimension ldb >= n.
inline PackedB pack_b(int k, int n, const bfloat16* b, std::size_t ldb) {
  HUBBLE_CHECK(k > 0 && n > 0, "lowp::pack_b: B must be at least 1 x 1 (got ", k, " x ", n, ")");
  HUBBLE_CHECK(b != nullptr, "lowp::pack_b: B is null");
  HUBBLE_CHECK(ldb >= std::size_t(n), "lowp::pack_b: leading dimension ", ldb, " is smaller than n = ", n);
  PackedB out;
  out.k = k;
  out.n = n;
  out.words.resize(packed_b_words(k, n));
  pack_b(
      k, n, [&](int l, int j) { return bf16_to_float(b[std::size_t(l) * ldb + std::size_t(j)]); }, out.words.data());
  return out;
}

// What is done to C after the sum: C = acc (+ bias[j]) then max(C, 0) if relu. max is written
// v > 0 ? v : 0 (NaN and -0 give +0), as VMAXPS(v, 0) does, so every path stores the same bits.
struct Epilogue {
  const float* bias = nullptr;
  bool relu = false;
};

namespace bf16_detail {

inline float apply_epilogue(float v, const float* bias, int j, bool relu) {
  if (bias) v += bias[j];
  if (relu) v = v > 0.f ? v : 0.f;
  return v;
}

// Every path's block kernel: for the B panels j0 .. j1-1, the C tile of `rows` (<= MR) rows and
// the panel's columns (< n) = ap [np pairs][MR] times bp(panel) [np pairs][NR], stored at
// c + panel*NR with the epilogue. b points at the first pair of panel 0; panels are b_stride apart.
using BlockKernel = void (*)(const PairWord* ap, int np, const PairWord* b, std::size_t b_stride, int j0, int j1,
                             int rows, int n, float* c, std::size_t ldc, const float* bias, bool relu);

inline void block_generic(const PairWord* ap, int np, const PairWord* b, std::size_t b_stride, int j0, int j1, int rows,
                          int n, float* c, std::size_t ldc, const float* bias, bool relu) {
  constexpr int MR = gemm_mr, NR = gemm_nr;
  for (int panel = j0; panel < j1; ++panel) {
    const PairWord* bp = b + std::size_t(panel) * b_stride;
    float acc[MR][NR] = {};
    for (int p = 0; p < np; ++p)
      for (int r = 0; r < MR; ++r) {
        const PairWord a = ap[std::size_t(p) * MR + std::size_t(r)];
        const float a_even = float_from_bits(a << 16), a_odd = float_from_bits(a & 0xFFFF0000u);
        for (int j = 0; j < NR; ++j) {
          const PairWord w = bp[std::size_t(p) * NR + std::size_t(j)];
          acc[r][j] = std::fma(a_odd, float_from_bits(w & 0xFFFF0000u), acc[r][j]);  // VDPBF16PS's order:
          acc[r][j] = std::fma(a_even, float_from_bits(w << 16), acc[r][j]);         // odd, then even
        }
      }
    const int cols = std::min(NR, n - panel * NR);
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j)
        c[std::size_t(r) * ldc + std::size_t(panel * NR + j)] = apply_epilogue(acc[r][j], bias, panel * NR + j, relu);
  }
}

#if HUBBLE_BF16_X86
// avx2: the 8 x 32 tile as four 4 x 16 sub-tiles (8 accumulators, 4 B registers, 2 A broadcasts:
// 14 of the 16 ymm registers). bf16 -> fp32: even = word << 16, odd = word & 0xFFFF0000.
__attribute__((target("avx2,fma"))) inline void block_avx2(const PairWord* ap, int np, const PairWord* b,
                                                           std::size_t b_stride, int j0, int j1, int rows, int n,
                                                           float* c, std::size_t ldc, const float* bias, bool relu) {
  constexpr int MR = gemm_mr, NR = gemm_nr;
  const __m256i high_half = _mm256_set1_epi32(int(0xFFFF0000u));
  for (int panel = j0; panel < j1; ++panel) {
    const PairWord* bp = b + std::size_t(panel) * b_stride;
    const int cols = std::min(NR, n - panel * NR);
    for (int half = 0; half < 2 && half * 16 < cols; ++half)
      for (int r0 = 0; r0 < rows; r0 += 4) {
        __m256 acc[4][2];
#pragma GCC unroll 4
        for (auto& acc_row : acc) acc_row[0] = acc_row[1] = _mm256_setzero_ps();
        for (int p = 0; p < np; ++p) {
          const PairWord* bw = bp + std::size_t(p) * NR + std::size_t(half) * 16;
          const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bw));
          const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bw + 8));
          const __m256 b_even0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
          const __m256 b_odd0 = _mm256_castsi256_ps(_mm256_and_si256(w0, high_half));
          const __m256 b_even1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
          const __m256 b_odd1 = _mm256_castsi256_ps(_mm256_and_si256(w1, high_half));
#pragma GCC unroll 4
          for (int r = 0; r < 4; ++r) {
            const PairWord a = ap[std::size_t(p) * MR + std::size_t(r0 + r)];
            const __m256 a_odd = _mm256_set1_ps(float_from_bits(a & 0xFFFF0000u));
            const __m256 a_even = _mm256_set1_ps(float_from_bits(a << 16));
            acc[r][0] = _mm256_fmadd_ps(a_odd, b_odd0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a_odd, b_odd1, acc[r][1]);
            acc[r][0] = _mm256_fmadd_ps(a_even, b_even0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a_even, b_even1, acc[r][1]);
          }
        }
        const int col0 = panel * NR + half * 16, sub_cols = std::min(16, cols - half * 16),
                  sub_rows = std::min(4, rows - r0);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {  // constant bounds keep acc in registers
          if (r >= sub_rows) break;
          float* out = c + std::size_t(r0 + r) * ldc + std::size_t(col0);
          if (sub_cols == 16) {
            __m256 v0 = acc[r][0], v1 = acc[r][1];
            if (bias) {
              v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias + col0));
              v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias + col0 + 8));
            }
            if (relu) {
              v0 = _mm256_max_ps(v0, _mm256_setzero_ps());
              v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
            }
            _mm256_storeu_ps(out, v0);
            _mm256_storeu_ps(out + 8, v1);
          } else {
            alignas(32) float tmp[16];
            _mm256_store_ps(tmp, acc[r][0]);
            _mm256_store_ps(tmp + 8, acc[r][1]);
            for (int j = 0; j < sub_cols; ++j) out[j] = apply_epilogue(tmp[j], bias, col0 + j, relu);
          }
        }
      }
  }
}

// The AVX-512 paths' epilogue for one panel of 32 columns (cols of them inside C): the store
// masks of its two halves, its bias (none when null) and the ReLU, as apply_epilogue does them
// (VMAXPS(v, 0): NaN and -0 give +0; the zero-masked form, as GCC 12 warns that the plain one
// reads an undefined source). block_avx512_bf16, task_amx_bf16 and the direct AMX convolution
// (bf16_conv_amx.hpp) share it, so every AVX-512 path finishes a sum the same way.
struct PanelEpilogue {
  __mmask16 mask[2];
  __m512 bias[2];
  bool has_bias, relu;
};
__attribute__((target("avx512f"))) inline PanelEpilogue panel_epilogue(int cols, const float* bias, bool relu) {
  PanelEpilogue e{};
  e.mask[0] = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  e.mask[1] = cols >= 32 ? __mmask16(0xFFFF) : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0);
  e.has_bias = bias != nullptr;
  e.relu = relu;
  for (int h = 0; h < 2; ++h) e.bias[h] = bias ? _mm512_maskz_loadu_ps(e.mask[h], bias + 16 * h) : _mm512_setzero_ps();
  return e;
}
// Half `h` (columns 16h .. 16h + 15 of the panel) of one row's sums, finished.
__attribute__((target("avx512f"))) inline __m512 finish(const PanelEpilogue& e, __m512 v, int h) {
  if (e.has_bias) v = _mm512_add_ps(v, e.bias[h]);
  return e.relu ? _mm512_maskz_max_ps(__mmask16(0xFFFF), v, _mm512_setzero_ps()) : v;
}
// One row's 32 sums, finished and stored at `out` (the panel's first column).
__attribute__((target("avx512f"))) inline void finish_row(const PanelEpilogue& e, __m512 v0, __m512 v1, float* out) {
  _mm512_mask_storeu_ps(out, e.mask[0], finish(e, v0, 0));
  _mm512_mask_storeu_ps(out + 16, e.mask[1], finish(e, v1, 1));
}

// avx512_bf16: the 8 x 32 tile in 16 zmm accumulators, VDPBF16PS on a broadcast pair of A and 16
// pairs of B. Partial tiles store through masks. The row loops are unrolled by pragma: at -O2 GCC
// leaves them rolled, the accumulators go to memory and the kernel runs ~3x slower (measured).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void block_avx512_bf16(
    const PairWord* ap, int np, const PairWord* b, std::size_t b_stride, int j0, int j1, int rows, int n, float* c,
    std::size_t ldc, const float* bias, bool relu) {
  constexpr int MR = gemm_mr, NR = gemm_nr;
  for (int panel = j0; panel < j1; ++panel) {
    const PairWord* bp = b + std::size_t(panel) * b_stride;
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (auto& acc_row : acc) acc_row[0] = acc_row[1] = _mm512_setzero_ps();
    for (int p = 0; p < np; ++p) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + std::size_t(p) * NR);
      const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + std::size_t(p) * NR + 16);
      const PairWord* a = ap + std::size_t(p) * MR;
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512bh ar = (__m512bh)_mm512_set1_epi32(int(a[r]));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
      }
    }
    const int col0 = panel * NR;
    const PanelEpilogue e = panel_epilogue(std::min(NR, n - col0), bias ? bias + col0 : nullptr, relu);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {  // constant bounds keep acc in registers
      if (r >= rows) break;
      finish_row(e, acc[r][0], acc[r][1], c + std::size_t(r) * ldc + std::size_t(col0));
    }
  }
}
#endif

#if HUBBLE_BF16_X86 && HUBBLE_AMX
// 8 rows x 16 pairs of an A panel, src[p * 8 + r], into dst[r * dst_stride + p]: the panel's
// transpose, whose rows a tile load reads. v[i] holds pairs 2i and 2i+1 of the 8 rows; one
// permute makes its 64-bit lane r row r's two pairs; then an 8 x 8 transpose of 64-bit lanes
// (three rounds of two-register permutes) gives row r = lane r of v[0..7].
__attribute__((target("avx512f"))) inline void transpose_panel_block(const PairWord* src, PairWord* dst,
                                                                     std::size_t dst_stride) {
  const __m512i rows_of_pairs = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  __m512i v[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)  // maskz: GCC 12 warns on the plain form's undefined source
    v[i] = _mm512_maskz_permutexvar_epi32(__mmask16(0xFFFF), rows_of_pairs, _mm512_loadu_si512(src + 16 * i));
  const __m512i lo1 = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), hi1 = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
  const __m512i lo2 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi2 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  const __m512i lo3 = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11), hi3 = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
  __m512i a[8], b[8];
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {  // a[2m]: rows 0-3 of v[2m], v[2m+1] interleaved; a[2m+1]: rows 4-7
    a[2 * m] = _mm512_permutex2var_epi64(v[2 * m], lo1, v[2 * m + 1]);
    a[2 * m + 1] = _mm512_permutex2var_epi64(v[2 * m], hi1, v[2 * m + 1]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h)      // h: v[0..3] or v[4..7]
    for (int q = 0; q < 2; ++q) {  // q: rows 0-3 or 4-7
      const __m512i x = a[4 * h + q], y = a[4 * h + 2 + q];
      b[4 * h + 2 * q] = _mm512_permutex2var_epi64(x, lo2, y);      // rows 4q, 4q+1 of four v
      b[4 * h + 2 * q + 1] = _mm512_permutex2var_epi64(x, hi2, y);  // rows 4q+2, 4q+3
    }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {  // b[j]: rows 2j, 2j+1 of v[0..3]; b[4 + j]: of v[4..7]
    _mm512_storeu_si512(dst + std::size_t(2 * j) * dst_stride, _mm512_permutex2var_epi64(b[j], lo3, b[4 + j]));
    _mm512_storeu_si512(dst + std::size_t(2 * j + 1) * dst_stride, _mm512_permutex2var_epi64(b[j], hi3, b[4 + j]));
  }
}

// AMX reads A as rows of pairs (a tile row: 16 pairs of one row of A). A task's rows go to a
// per-thread buffer of rows16 = `rows` rounded up to 16 rows, lda = np rounded up to 16 pairs
// each, zero past `rows` and past np.
inline PairWord* amx_a_rows(int rows, int np) {
  static thread_local AlignedVector<std::uint32_t> at;
  const std::size_t need = std::size_t((rows + 15) / 16 * 16) * std::size_t((np + 15) / 16 * 16);
  if (at.size() < need) at.resize(need);
  return at.data();
}

// The panels every packer writes (ap, panel_words apart, np pairs each, 8 rows) transposed into
// amx_a_rows' layout: 8 x 16 pairs at a time, the last pair block through a zeroed copy so that
// no pair past the chunk is read (it could be another chunk's, or past the end of the buffer).
__attribute__((target("avx512f"))) inline void panels_to_rows(const PairWord* ap, std::size_t panel_words, int rows,
                                                              int np, PairWord* at) {
  constexpr int MR = gemm_mr;
  const int blocks = (np + 15) / 16, lda = blocks * 16;
  const int rows16 = (rows + 15) / 16 * 16, rows8 = (rows + MR - 1) / MR * MR;  // rows8: what the transpose writes
  std::fill(at + std::ptrdiff_t(rows8) * lda, at + std::ptrdiff_t(rows16) * lda, PairWord(0));
  alignas(64) PairWord tail[16 * 16];
  for (int r0 = 0; r0 < rows; r0 += MR) {
    const PairWord* panel = ap + std::size_t(r0 / MR) * panel_words;
    for (int blk = 0; blk < blocks; ++blk) {
      const PairWord* src = panel + std::size_t(blk) * 16 * MR;
      const int pairs = std::min(16, np - blk * 16);
      if (pairs < 16) {  // the last block: zero pairs after np
        std::fill(std::begin(tail), std::end(tail), PairWord(0));
        std::copy(src, src + std::size_t(pairs) * MR, tail);
        src = tail;
      }
      transpose_panel_block(src, at + std::size_t(r0) * std::size_t(lda) + std::size_t(blk) * 16, std::size_t(lda));
    }
  }
  // (rows of `at` past `rows` are zero: a panel's rows past `rows` were packed as zeros, and the
  // rows from rows8 on were filled above.)
}

// One task's C block on AMX: `rows` (<= gemm_mc) rows of A in amx_a_rows' layout (at), B panels
// j0 .. j1-1 (np pairs from b, b_stride apart), epilogue into c. Four C tiles hold 32 x 32 sums;
// B's last pair block, when np is not a multiple of 16, is copied into a zeroed tile.
__attribute__((target("avx512f,avx512bw,avx512vl,amx-tile,amx-bf16"))) inline void task_amx_bf16(
    const PairWord* at, int rows, int np, const PairWord* b, std::size_t b_stride, int j0, int j1, int n, float* c,
    std::size_t ldc, const float* bias, bool relu) {
  constexpr int NR = gemm_nr;
  amx::configure_tiles();
  const int blocks = (np + 15) / 16, lda = blocks * 16;  // lda: words per row of `at`
  const int rows16 = (rows + 15) / 16 * 16;
  alignas(64) PairWord b_tail[16 * 32];
  alignas(64) float sums[32][32];
  const int last = np - (blocks - 1) * 16;  // pairs in the last block
  for (int panel = j0; panel < j1; ++panel) {
    const PairWord* bp = b + std::size_t(panel) * b_stride;
    if (last < 16) {
      std::fill(std::begin(b_tail), std::end(b_tail), PairWord(0));
      std::copy(bp + std::size_t(blocks - 1) * 16 * NR, bp + std::size_t(np) * NR, b_tail);
    }
    const int col0 = panel * NR, cols = std::min(NR, n - col0);
    for (int rt = 0; rt < rows16; rt += 32) {
      const bool two = rt + 16 < rows16;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int blk = 0; blk < blocks; ++blk) {
        const PairWord* bk = blk + 1 == blocks && last < 16 ? b_tail : bp + std::size_t(blk) * 16 * NR;
        const PairWord* ak = at + std::size_t(rt) * std::size_t(lda) + std::size_t(blk) * 16;
        _tile_loadd(6, bk, NR * 4);
        _tile_loadd(7, bk + 16, NR * 4);
        _tile_loadd(4, ak, lda * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
          _tile_loadd(5, ak + std::size_t(16) * std::size_t(lda), lda * 4);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      _tile_stored(0, &sums[0][0], 32 * 4);
      _tile_stored(1, &sums[0][16], 32 * 4);
      _tile_stored(2, &sums[16][0], 32 * 4);
      _tile_stored(3, &sums[16][16], 32 * 4);
      const PanelEpilogue e = panel_epilogue(cols, bias ? bias + col0 : nullptr, relu);
      const int tile_rows = std::min(32, rows - rt);
      for (int r = 0; r < tile_rows; ++r)
        finish_row(e, _mm512_load_ps(&sums[r][0]), _mm512_load_ps(&sums[r][16]),
                   c + std::size_t(rt + r) * ldc + std::size_t(col0));
    }
  }
}
#endif

inline BlockKernel block_kernel(Bf16Path path) {
  const std::string why = bf16_path_unavailable(path);
  if (!why.empty()) throw Error("lowp bf16 GEMM: cannot run " + why);
  if (path == Bf16Path::amx_bf16) return nullptr;  // no block kernel: whole tasks run task_amx_bf16
#if HUBBLE_BF16_X86
  if (path == Bf16Path::avx512_bf16) return block_avx512_bf16;
  if (path == Bf16Path::avx2) return block_avx2;
#endif
  return block_generic;
}

// Each thread's packed A block, kept between calls.
inline AlignedVector<std::uint32_t>& thread_a_buffer() {
  static thread_local AlignedVector<std::uint32_t> buffer;
  return buffer;
}
// Each thread's C block, for a BlockSink.
inline AlignedVector<float>& thread_c_buffer() {
  static thread_local AlignedVector<float> buffer;
  return buffer;
}

}  // namespace bf16_detail

// ---- the driver ---------------------------------------------------------------------------------
inline constexpr int gemm_mc = 64;                         // rows of A packed per task (8 panels)
inline constexpr double gemm_parallel_min_work = 1 << 19;  // multiply-adds below which one thread runs it

// How many fp32 words gemm_bf16_packed needs in `partials` to split k into chunks of
// k_chunk_pairs pairs (0 when it does not split).
inline std::size_t gemm_partials_size(int m, int n, int k, int k_chunk_pairs) {
  const int pairs = (k + 1) / 2;
  if (k_chunk_pairs <= 0 || pairs <= k_chunk_pairs) return 0;
  const int chunks = (pairs + k_chunk_pairs - 1) / k_chunk_pairs;
  return std::size_t(chunks) * std::size_t(m) * std::size_t(n);
}

// C [m x ldc] = A * B with the epilogue, A produced block by block by
//   pack_rows(int row0, int rows, int p0, int p1, PairWord* ap):
//     ap[(p - p0) * MR + r] = { A[row0 + r][2p], A[row0 + r][2p + 1] } for p0 <= p < p1, r < MR,
//     zero for r >= rows (and for columns >= k),
// so a convolution gathers its patches straight into the micro-kernel's layout. Tasks are blocks
// of gemm_mc rows x groups of B panels (x chunks of k when k_chunk_pairs > 0 and k is longer:
// each chunk's sum goes to `partials`, gemm_partials_size() words, and the chunks are then added
// in order). Which thread runs a task never changes what it computes.
//
// With a block sink (no k-split), C is not stored: each task's rows row0 .. row0+rows-1, columns
// col0 .. col1-1, go to a per-thread buffer and then to
//   sink(int row0, int rows, int col0, int col1, const float* block)   block[i * n + j], j in [col0, col1)
// (the convolution pools them there). Row blocks start at multiples of gemm_mc.
// A packer may also write rows of pairs directly, for the amx_bf16 path (which otherwise
// transposes the panels), through a second call operator (see Overloaded):
//   pack_rows(TileRows{}, int row0, int rows, int p0, int p1, PairWord* at, int lda):
//     at[r * lda + (p - p0)] = { A[row0 + r][2p], A[row0 + r][2p + 1] } for r < rows, p0 <= p < p1
// (the driver zeroes the rest of each row and the rows past `rows`).
struct TileRows {};
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

struct NoBlockSink {};
template <class PackRows, class BlockSink = NoBlockSink>
void gemm_bf16_packed(int m, const PackedBView& b, PackRows&& pack_rows, float* c, std::size_t ldc, const Epilogue& ep,
                      Bf16Path path, int k_chunk_pairs = 0, float* partials = nullptr, BlockSink&& sink = {}) {
  constexpr bool has_sink = !std::is_same_v<std::decay_t<BlockSink>, NoBlockSink>;
  constexpr bool packs_tile_rows = requires(PackRows & f, PairWord * at) { f(TileRows{}, 0, 0, 0, 0, at, 0); };
  constexpr int MR = gemm_mr;
  const bf16_detail::BlockKernel kernel = bf16_detail::block_kernel(path);
  const bool whole_tasks = path == Bf16Path::amx_bf16;  // packs every panel first, then one AMX call
  const int n = b.n, pairs = b.pairs(), panels = b.panels();
  if (m <= 0 || n <= 0) return;
  const bool split = gemm_partials_size(m, n, b.k, k_chunk_pairs) > 0;
  HUBBLE_CHECK(!split || partials != nullptr, "lowp bf16 GEMM: a k-split needs a partials buffer");
  HUBBLE_CHECK(!split || !has_sink, "lowp bf16 GEMM: a block sink cannot be used with a k-split");
  const int chunk_pairs = split ? k_chunk_pairs : std::max(pairs, 1);
  const int chunks = (pairs + chunk_pairs - 1) / chunk_pairs;
  const int row_blocks = (m + gemm_mc - 1) / gemm_mc;
  // Enough tasks for every thread (batch 1 included): split the B panels into groups when the
  // rows and chunks alone are too few. This changes only who computes a tile, not how.
  const int want = 4 * kernels::max_threads();
  const int groups = std::clamp((want + row_blocks * chunks - 1) / (row_blocks * chunks), 1, panels);
  const int panels_per_group = (panels + groups - 1) / groups;
  const long tasks = long(row_blocks) * chunks * groups;
  // Threads only for work worth waking them for (paper layers at batch 1: 4.7M multiply-adds and up).
  const bool parallel = tasks > 1 && double(m) * n * b.k >= gemm_parallel_min_work;
#pragma omp parallel for schedule(static) if (parallel)
  for (long t = 0; t < tasks; ++t) {
    // Chunks outermost: a static split then gives each thread whole chunks of every row block
    // (weight gradients: conv1's 80 rows are blocks of 64 and 16, which block-major split unevenly).
    const int group = int(t % groups), block = int((t / groups) % row_blocks), chunk = int(t / groups / row_blocks);
    const int j0 = group * panels_per_group, j1 = std::min(panels, j0 + panels_per_group);
    if (j0 >= j1) continue;
    const int p0 = chunk * chunk_pairs, p1 = std::min(pairs, p0 + chunk_pairs), np = p1 - p0;
    const int row0 = block * gemm_mc, rows = std::min(gemm_mc, m - row0);
    auto& abuf = bf16_detail::thread_a_buffer();
    const std::size_t panel_words = std::size_t(np) * MR;
    if (abuf.size() < panel_words * (gemm_mc / MR)) abuf.resize(panel_words * (gemm_mc / MR));
    // Where row row0 of the block goes: C, the chunk's partial sums, or this thread's buffer.
    float* out = split ? partials + (std::size_t(chunk) * std::size_t(m) + std::size_t(row0)) * std::size_t(n)
                 : c   ? c + std::size_t(row0) * ldc
                       : nullptr;
    std::size_t ld = split ? std::size_t(n) : ldc;
    if constexpr (has_sink) {
      auto& cbuf = bf16_detail::thread_c_buffer();
      if (cbuf.size() < std::size_t(gemm_mc) * std::size_t(n)) cbuf.resize(std::size_t(gemm_mc) * std::size_t(n));
      out = cbuf.data();
      ld = std::size_t(n);
    }
    if (!(whole_tasks && packs_tile_rows))
      for (int r0 = 0; r0 < rows; r0 += MR) {
        PairWord* ap = abuf.data() + std::size_t(r0 / MR) * panel_words;
        const int panel_rows = std::min(MR, rows - r0);
        pack_rows(row0 + r0, panel_rows, p0, p1, ap);
        if (!whole_tasks)
          kernel(ap, np, b.data + std::size_t(p0) * gemm_nr, b.panel_stride(), j0, j1, panel_rows, n,
                 out + std::size_t(r0) * ld, ld, split ? nullptr : ep.bias, split ? false : ep.relu);
      }
#if HUBBLE_BF16_X86 && HUBBLE_AMX
    if (whole_tasks) {
      PairWord* at = bf16_detail::amx_a_rows(rows, np);
      if constexpr (packs_tile_rows) {
        const int lda = (np + 15) / 16 * 16, rows16 = (rows + 15) / 16 * 16;
        pack_rows(TileRows{}, row0, rows, p0, p1, at, lda);
        for (int r = 0; r < rows; ++r)
          std::fill(at + std::ptrdiff_t(r) * lda + np, at + std::ptrdiff_t(r + 1) * lda, 0u);
        std::fill(at + std::ptrdiff_t(rows) * lda, at + std::ptrdiff_t(rows16) * lda, 0u);
      } else {
        bf16_detail::panels_to_rows(abuf.data(), panel_words, rows, np, at);
      }
      bf16_detail::task_amx_bf16(at, rows, np, b.data + std::size_t(p0) * gemm_nr, b.panel_stride(), j0, j1, n, out, ld,
                                 split ? nullptr : ep.bias, split ? false : ep.relu);
    }
#endif
    if constexpr (has_sink)
      sink(row0, rows, j0 * gemm_nr, std::min(n, j1 * gemm_nr), bf16_detail::thread_c_buffer().data());
  }
  if (!split) return;
    // C = chunk 0 + chunk 1 + ... in this order, then the epilogue.
#pragma omp parallel for schedule(static) if (long(m) * n > 16384)
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float v = 0;
      for (int ch = 0; ch < chunks; ++ch)
        v += partials[(std::size_t(ch) * std::size_t(m) + std::size_t(i)) * std::size_t(n) + std::size_t(j)];
      c[std::size_t(i) * ldc + std::size_t(j)] = bf16_detail::apply_epilogue(v, ep.bias, j, ep.relu);
    }
}

// Packs rows whose k values are contiguous lines of bf16: line(i, scratch) returns a pointer to
// row i's values, at least 2 * p1 of them readable (k padded to even with zeros), using `scratch`
// (2 * p1 values) when it has to build the line. One 32-bit load per pair.
template <class Line>
void pack_rows_from_lines(int row0, int rows, int p0, int p1, PairWord* ap, Line&& line) {
  constexpr int MR = gemm_mr;
  static thread_local AlignedVector<bfloat16> scratch;
  if (scratch.size() < std::size_t(2 * p1)) scratch.resize(std::size_t(2 * p1));
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) {
      for (int p = p0; p < p1; ++p) ap[std::size_t(p - p0) * MR + std::size_t(r)] = 0;
      continue;
    }
    const bfloat16* values = line(row0 + r, scratch.data());
    const PairWord* words = reinterpret_cast<const PairWord*>(values);
    for (int p = p0; p < p1; ++p) ap[std::size_t(p - p0) * MR + std::size_t(r)] = words[p];
  }
}

// The plain interface: C [m x n] (ldc) = A [m x k] bf16 (row-major, lda) * B (packed) + epilogue,
// on `path` (default: the forced or fastest one). Bad shapes are a hubble::Error.
inline void gemm_bf16(int m, const bfloat16* a, std::size_t lda, const PackedBView& b, float* c, std::size_t ldc,
                      const Epilogue& ep = {}, Bf16Path path = active_bf16_path()) {
  HUBBLE_CHECK(m >= 0 && b.k > 0 && b.n > 0, "lowp::gemm_bf16: bad shape m = ", m, ", k = ", b.k, ", n = ", b.n);
  HUBBLE_CHECK(b.data != nullptr, "lowp::gemm_bf16: B is not packed (null data)");
  HUBBLE_CHECK(m == 0 || (a != nullptr && c != nullptr), "lowp::gemm_bf16: A or C is null");
  HUBBLE_CHECK(lda >= std::size_t(b.k), "lowp::gemm_bf16: lda = ", lda, " is smaller than k = ", b.k);
  HUBBLE_CHECK(ldc >= std::size_t(b.n), "lowp::gemm_bf16: ldc = ", ldc, " is smaller than n = ", b.n);
  const int k = b.k;
  const bool direct = k % 2 == 0 && lda % 2 == 0 && reinterpret_cast<std::uintptr_t>(a) % 4 == 0;
  gemm_bf16_packed(
      m, b,
      [&](int row0, int rows, int p0, int p1, PairWord* ap) {
        pack_rows_from_lines(row0, rows, p0, p1, ap, [&](int i, bfloat16* scratch) -> const bfloat16* {
          const bfloat16* row = a + std::size_t(i) * lda;
          if (direct) return row;
          const int upto = std::min(k, 2 * p1);
          std::copy(row, row + upto, scratch);
          for (int l = upto; l < 2 * p1; ++l) scratch[l] = bfloat16{};
          return scratch;
        });
      },
      c, ldc, ep, path);
}

}  // namespace hubble::kernels::lowp
