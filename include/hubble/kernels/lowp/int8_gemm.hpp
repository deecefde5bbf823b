#pragma once
// int8 matrix product with one micro-kernel per instruction family, chosen at run time:
//
//   C_i32[m x n] = A_u8[m x k] * B_s8[k x n]        C[i][j] = sum_p int(A[i][p]) * int(B[p][j])
//
// The sums are exact (int32 cannot overflow below k = 2^31 / (255 * 128) = 65793), so every path
// gives the same bits. B (the weights) is packed once, for one path:
//   quads (generic, avx_vnni, avx512_vnni): k padded to a multiple of 4; panels of 16 columns;
//       in a panel, for each group of 4 k, each column's 4 bytes are consecutive:
//           packed[panel][k/4][j][k%4] = B[k][16*panel + j]
//       which is what VPDPBUSD multiplies: each 32-bit lane j of a B register holds B[4g..4g+3][j],
//       the A register holds A[i][4g..4g+3] broadcast to every lane, and the instruction adds
//           lane j += A[i][4g]*B[4g][j] + ... + A[i][4g+3]*B[4g+3][j]   (u8 x s8, exact in int32)
//       amx_int8 uses the same layout, k padded to a multiple of 64: 16 consecutive k4 rows of a
//       panel (1 KiB) are one B tile of TDPBUSD, which adds 16 x 16 x 64 such products at once.
//   pairs (avx2): the same with 2 k per lane, widened to int16, for VPMADDWD:
//           packed[panel][k/2][j][k%2] = B[k][16*panel + j]
//       lane j += A[i][2g]*B[2g][j] + A[i][2g+1]*B[2g+1][j]   (s16 x s16: at most 2*255*128, exact)
//       (VPMADDUBSW would take the bytes directly but saturates its 16-bit pair sums at 32767 <
//       2*255*127, so it is not exact.)
// The micro-kernels read A's rows through pointers and a segmented walk (AWalk below): gemm_u8s8
// packs each block of up to 96 rows into a per-thread buffer ([row][k4], u8; int16 for avx2,
// zero beyond k), so A needs no padding; a convolution points them into its image instead
// (int8_conv.hpp), except on avx2 and amx_int8, whose kernels need A packed (widened; or rows
// k4 bytes apart, which a tile load reads as a 16 x 64-byte A tile). They keep an MR x 16*P
// block of C in registers (tiles on AMX) over the whole k (no k blocking: the int32 sums are
// exact however long k is).
//
// Threads: the (row block x column panel group) tasks are spread over OpenMP threads; every C
// entry is one exact sum made by one kernel call, so results do not depend on the thread count.
//
// Each kernel is compiled for its own family (__attribute__((target(...)))), so a binary built
// with -mavx2 -mfma (no -mavx512*) contains them all; kernels::lowp::int8_path() picks one.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HUBBLE_INT8_X86 1
#define HUBBLE_TARGET(isa) __attribute__((target(isa)))
#else
#define HUBBLE_INT8_X86 0
#define HUBBLE_TARGET(isa)
#endif
#if defined(__GNUC__)
#define HUBBLE_UNROLL_ALL _Pragma("GCC unroll 16")
#else
#define HUBBLE_UNROLL_ALL
#endif

#include "hubble/core/aligned.hpp"
#include "hubble/core/error.hpp"
#include "hubble/kernels/amx.hpp"
#include "hubble/kernels/gemm.hpp"  // AlignedBuffer, max_threads
#include "hubble/kernels/lowp/int8_path.hpp"

namespace hubble::kernels::lowp {

// ---- the reference: the definition ------------------------------------------------------------
inline void gemm_u8s8_reference(int m, int n, int k, const std::uint8_t* a, std::ptrdiff_t lda, const std::int8_t* b,
                                std::ptrdiff_t ldb, std::int32_t* c, std::ptrdiff_t ldc) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      std::int32_t s = 0;
      for (int p = 0; p < k; ++p) s += std::int32_t(a[i * lda + p]) * std::int32_t(b[p * ldb + j]);
      c[i * ldc + j] = s;
    }
}

// ---- packed B ---------------------------------------------------------------------------------
inline constexpr int panel_width = 16;  // columns per packed panel (one zmm, two ymm of int32)

constexpr int round_up(int v, int to) { return (v + to - 1) / to * to; }

// What k is padded to in packed B (and in packed A rows): one TDPBUSD tile row of 64 codes on
// amx_int8, one group of 4 (VPDPBUSD) or 2 pairs (VPMADDWD) elsewhere.
constexpr int k_multiple(Int8Path p) { return p == Int8Path::amx_int8 ? 64 : 4; }
// True for the paths whose kernels read a convolution's image in place (u8 rows at any address);
// the others (avx2: int16; amx_int8: rows k4 apart) read A rows packed per block.
constexpr bool reads_in_place(Int8Path p) { return p != Int8Path::avx2 && p != Int8Path::amx_int8; }

// B packed for one path; see the layouts above. Both layouts take k4 * 16 elements per panel.
struct PackedB {
  Int8Path path = Int8Path::generic;
  int k = 0, n = 0, k4 = 0, panels = 0;
  AlignedVector<std::int8_t> quads;   // [panel][k4/4][16][4]   (generic, avx_vnni, avx512_vnni, amx_int8)
  AlignedVector<std::int16_t> pairs;  // [panel][k4/2][16][2]   (avx2)
  std::ptrdiff_t panel_stride() const { return std::ptrdiff_t(k4) * panel_width; }  // elements
  bool uses_pairs() const { return path == Int8Path::avx2; }
};

// Packs B[k][n] (get(p, j) = B[p][j], an int8) for `path`.
template <class Get>
PackedB pack_b(int k, int n, Get get, Int8Path path) {
  HUBBLE_CHECK(k > 0 && n > 0, "pack_b: expected a k x n matrix with k, n > 0, got ", k, " x ", n);
  HUBBLE_CHECK(k <= 65792, "pack_b: k = ", k, " could overflow the int32 sums (at most 65792 = 2^31 / (255 * 128))");
  check_available(path, "pack_b");
  PackedB pb;
  pb.path = path;
  pb.k = k;
  pb.n = n;
  pb.k4 = round_up(k, k_multiple(path));
  pb.panels = (n + panel_width - 1) / panel_width;
  const std::size_t size = std::size_t(pb.panels) * std::size_t(pb.panel_stride());
  const auto value = [&](int p, int col) { return p < k && col < n ? get(p, col) : std::int8_t(0); };
  if (pb.uses_pairs()) {
    pb.pairs.assign(size, 0);
    for (int panel = 0; panel < pb.panels; ++panel)
      for (int p = 0; p < pb.k4; ++p)
        for (int j = 0; j < panel_width; ++j)
          pb.pairs[std::size_t(panel * pb.panel_stride() + (p / 2) * 32 + j * 2 + p % 2)] =
              value(p, panel * panel_width + j);
  } else {
    pb.quads.assign(size, 0);
    for (int panel = 0; panel < pb.panels; ++panel)
      for (int p = 0; p < pb.k4; ++p)
        for (int j = 0; j < panel_width; ++j)
          pb.quads[std::size_t(panel * pb.panel_stride() + (p / 4) * 64 + j * 4 + p % 4)] =
              value(p, panel * panel_width + j);
  }
  return pb;
}
inline PackedB pack_b(int k, int n, const std::int8_t* b, std::ptrdiff_t ldb, Int8Path path = int8_path()) {
  HUBBLE_CHECK(b, "pack_b: B is a null pointer");
  HUBBLE_CHECK(ldb >= n, "pack_b: ldb = ", ldb, " is less than the ", n, " columns");
  return pack_b(
      k, n, [&](int p, int j) { return b[p * ldb + j]; }, path);
}

// ---- micro-kernels ----------------------------------------------------------------------------
// Each computes a full MR x (16 * P) tile, C[r][j] = sum_p A[r][p] * B[p][j], and stores it whole
// (the caller's buffers are padded to whole tiles). Row r of A is read through a pointer and a
// segmented walk, as the fp32 micro-kernel does (gemm.hpp's APanel):
//   p = s * seg_len + t   reads   rows[r][seg_off[s] + t]      (s < segments, t < seg_len)
// so one kernel multiplies a packed block (one segment: the row itself) or an image in place (one
// segment per kernel row, rows[r] = the pixel's window). seg_len is a multiple of 4 (2 for the
// pairs layout); B's rows follow p, P panels panel_stride elements apart.
struct AWalk {
  const std::ptrdiff_t* seg_off;
  int segments;
  int seg_len;
};

namespace int8_detail {

inline std::int32_t load_i32(const void* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Scalar, on the quads layout: the reference path, and the one every other family is checked against.
struct GenericKernel {
  using A = std::uint8_t;
  using B = std::int8_t;
  static constexpr Int8Path path = Int8Path::generic;
  static constexpr int MR = 4, max_panels = 1;
  template <int P>
  static void run(const A* const* rows, const AWalk& walk, const B* b, std::ptrdiff_t panel_stride, std::int32_t* c,
                  std::ptrdiff_t ldc) {
    std::int32_t acc[MR][16 * P] = {};
    for (int s = 0; s < walk.segments; ++s)
      for (int g = 0; g < walk.seg_len / 4; ++g, b += 64)
        for (int pn = 0; pn < P; ++pn) {
          const B* bg = b + pn * panel_stride;
          for (int r = 0; r < MR; ++r) {
            const A* ar = rows[r] + walk.seg_off[s] + g * 4;
            for (int j = 0; j < 16; ++j)
              for (int t = 0; t < 4; ++t) acc[r][pn * 16 + j] += std::int32_t(ar[t]) * std::int32_t(bg[j * 4 + t]);
          }
        }
    for (int r = 0; r < MR; ++r) std::memcpy(c + r * ldc, acc[r], sizeof acc[r]);
  }
};

#if HUBBLE_INT8_X86
// AVX2, exact: A widened to int16 when packed, B packed as int16 pairs. Per pair of k and row:
// one broadcast of (A[r][2g], A[r][2g+1]), two VPMADDWD (16 columns), two VPADDD.
// 6 x 16 tile: 12 ymm accumulators + 2 of B + 1 broadcast.
struct Avx2Kernel {
  using A = std::int16_t;
  using B = std::int16_t;
  static constexpr Int8Path path = Int8Path::avx2;
  static constexpr int MR = 6, max_panels = 1;
  template <int P>
  HUBBLE_TARGET("avx2,fma")
  static void run(const A* const* rows, const AWalk& walk, const B* b, std::ptrdiff_t, std::int32_t* c,
                  std::ptrdiff_t ldc) {
    static_assert(P == 1);
    __m256i acc[MR][2];
    HUBBLE_UNROLL_ALL
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int s = 0; s < walk.segments; ++s) {
      const A* p[MR];
      HUBBLE_UNROLL_ALL
      for (int r = 0; r < MR; ++r) p[r] = rows[r] + walk.seg_off[s];
      for (int g = 0; g < walk.seg_len / 2; ++g, b += 32) {
        const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
        const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
        HUBBLE_UNROLL_ALL
        for (int r = 0; r < MR; ++r) {
          const __m256i av = _mm256_set1_epi32(load_i32(p[r] + 2 * g));
          acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
          acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
        }
      }
    }
    HUBBLE_UNROLL_ALL
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc[r][1]);
    }
  }
};

// AVX-VNNI (VEX VPDPBUSD on ymm): per group of 4 k and row, one broadcast and two VPDPBUSD.
// 6 x 16 tile, as AVX2.
struct AvxVnniKernel {
  using A = std::uint8_t;
  using B = std::int8_t;
  static constexpr Int8Path path = Int8Path::avx_vnni;
  static constexpr int MR = 6, max_panels = 1;
  template <int P>
  HUBBLE_TARGET("avx2,fma,avxvnni")
  static void run(const A* const* rows, const AWalk& walk, const B* b, std::ptrdiff_t, std::int32_t* c,
                  std::ptrdiff_t ldc) {
    static_assert(P == 1);
    __m256i acc[MR][2];
    HUBBLE_UNROLL_ALL
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int s = 0; s < walk.segments; ++s) {
      const A* p[MR];
      HUBBLE_UNROLL_ALL
      for (int r = 0; r < MR; ++r) p[r] = rows[r] + walk.seg_off[s];
      for (int g = 0; g < walk.seg_len / 4; ++g, b += 64) {
        const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
        const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
        HUBBLE_UNROLL_ALL
        for (int r = 0; r < MR; ++r) {
          const __m256i av = _mm256_set1_epi32(load_i32(p[r] + 4 * g));
          acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], av, b0);
          acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], av, b1);
        }
      }
    }
    HUBBLE_UNROLL_ALL
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), acc[r][1]);
    }
  }
};

// AVX-512 VNNI (VPDPBUSD on zmm): two panels at a time, a 12 x 32 tile = 24 zmm accumulators
// + 2 of B + 1 broadcast (of 32 registers); per group of 4 k: 2 loads, 12 broadcasts, 24 VPDPBUSD.
struct Avx512VnniKernel {
  using A = std::uint8_t;
  using B = std::int8_t;
  static constexpr Int8Path path = Int8Path::avx512_vnni;
  static constexpr int MR = 12, max_panels = 2;
  template <int P>
  HUBBLE_TARGET("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")
  static void run(const A* const* rows, const AWalk& walk, const B* b, std::ptrdiff_t panel_stride, std::int32_t* c,
                  std::ptrdiff_t ldc) {
    static_assert(P == 1 || P == 2);
    __m512i acc[MR][P];
    HUBBLE_UNROLL_ALL
    for (int r = 0; r < MR; ++r)
      for (int pn = 0; pn < P; ++pn) acc[r][pn] = _mm512_setzero_si512();
    for (int s = 0; s < walk.segments; ++s) {
      const A* p[MR];
      HUBBLE_UNROLL_ALL
      for (int r = 0; r < MR; ++r) p[r] = rows[r] + walk.seg_off[s];
      for (int g = 0; g < walk.seg_len / 4; ++g, b += 64) {
        __m512i bv[P];
        for (int pn = 0; pn < P; ++pn) bv[pn] = _mm512_loadu_si512(b + pn * panel_stride);
        HUBBLE_UNROLL_ALL
        for (int r = 0; r < MR; ++r) {
          const __m512i av = _mm512_set1_epi32(load_i32(p[r] + 4 * g));
          for (int pn = 0; pn < P; ++pn) acc[r][pn] = _mm512_dpbusd_epi32(acc[r][pn], av, bv[pn]);
        }
      }
    }
    HUBBLE_UNROLL_ALL
    for (int r = 0; r < MR; ++r)
      for (int pn = 0; pn < P; ++pn) _mm512_storeu_si512(c + r * ldc + 16 * pn, acc[r][pn]);
  }
};

// AMX (TDPBUSD on tiles): a 32 x 32 tile of C in four C tiles (tmm0..3), two A tiles of 16 rows
// x 64 k (tmm4, 5) and two B tiles of 64 k x 16 columns (tmm6, 7); per 64 k: 4 tile loads, 4
// TDPBUSD (65,536 multiply-adds). A's rows must be packed k4 = seg_len bytes apart (rows[r] =
// rows[0] + r * k4, one segment, k4 a multiple of 64): run_blocks packs them so.
struct AmxInt8Kernel {
  using A = std::uint8_t;
  using B = std::int8_t;
  static constexpr Int8Path path = Int8Path::amx_int8;
  static constexpr int MR = 32, max_panels = 2;
  template <int P>
  HUBBLE_TARGET("amx-tile,amx-int8")
  static void run(const A* const* rows, const AWalk& walk, const B* b, std::ptrdiff_t panel_stride, std::int32_t* c,
                  std::ptrdiff_t ldc) {
    static_assert(P == 1 || P == 2);
    amx::configure_tiles();
    const std::ptrdiff_t lda = walk.seg_len, ldc_bytes = ldc * std::ptrdiff_t(sizeof(std::int32_t));
    const A* a0 = rows[0];
    const A* a1 = rows[16];
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (P == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
    for (int k0 = 0; k0 < walk.seg_len; k0 += 64) {
      const B* bk = b + std::ptrdiff_t(k0) * 16;  // k4 row k0/4 of the panel, 64 bytes a row
      _tile_loadd(4, a0 + k0, lda);
      _tile_loadd(5, a1 + k0, lda);
      _tile_loadd(6, bk, 64);
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 5, 6);
      if constexpr (P == 2) {
        _tile_loadd(7, bk + panel_stride, 64);
        _tile_dpbusd(2, 4, 7);
        _tile_dpbusd(3, 5, 7);
      }
    }
    _tile_stored(0, c, ldc_bytes);
    _tile_stored(1, c + 16 * ldc, ldc_bytes);
    if constexpr (P == 2) {
      _tile_stored(2, c + 16, ldc_bytes);
      _tile_stored(3, c + 16 * ldc + 16, ldc_bytes);
    }
  }
};
#endif

// Calls f.template operator()<Kernel>() with the kernel of `path`.
template <class F>
void with_kernel(Int8Path path, F&& f) {
  switch (path) {
#if HUBBLE_INT8_X86
    case Int8Path::avx2:
      return f.template operator()<Avx2Kernel>();
    case Int8Path::avx_vnni:
      return f.template operator()<AvxVnniKernel>();
    case Int8Path::avx512_vnni:
      return f.template operator()<Avx512VnniKernel>();
    case Int8Path::amx_int8:
      return f.template operator()<AmxInt8Kernel>();
#else
    case Int8Path::avx2:
    case Int8Path::avx_vnni:
    case Int8Path::avx512_vnni:
    case Int8Path::amx_int8:
      throw Error(std::string("int8 path ") + name_of(path) + " exists on x86 only");
#endif
    case Int8Path::generic:
      return f.template operator()<GenericKernel>();
  }
}

template <class K>
const typename K::B* packed_elements(const PackedB& pb) {
  if constexpr (sizeof(typename K::B) == 2) return pb.pairs.data();
  else return pb.quads.data();
}

// Per-thread scratch, one buffer per (type, use).
enum class Int8Scratch { a_block, c_block, padded_input };
template <class T, Int8Scratch Slot>
T* scratch(std::size_t n) {
  thread_local AlignedBuffer<T> buffer;
  return buffer.get(n);
}

// The block loop shared by the GEMM and the convolution. Rows [0, M) are cut into blocks of
// `block_rows` (a multiple of `unit`, e.g. whole pooling windows); the column panels into groups
// when there are too few blocks to keep every thread busy (batch-1 convolutions). Per task:
//   rows_of_a(m0, rows, ptrs, buffer)          points ptrs[0 .. rows) at the block's rows of A, read
//                                              with `walk`: into `buffer` (room for rows, padded to
//                                              MR, x k4 elements + pack_slack) for a packer, row i
//                                              at buffer + i * k4 (amx_int8 needs that), or anywhere
//                                              (an image read in place)
//   (the kernel, over the block's panels)      C block [rows padded to MR][16 * panels of the group]
//                                              (padding rows repeat the last row, or on amx_int8
//                                              are zero rows after the packed ones: computed, unused)
//   finish(m0, rows, f0, f1, cblock, ldc)      consumes columns [f0, f1) of the block's sums
inline constexpr std::size_t pack_slack = 64;

// How run_blocks cuts the work: blocks of block_rows rows (whole units), and the column panels
// into `groups` when there are fewer than four blocks a thread (a batch-1 conv4 has 16 output
// pixels: one block, so its 16 panels are split, and every thread gets work). Depends on the
// shape and thread count only; the sums themselves never depend on it.
struct TaskPlan {
  int block_rows = 0;
  long blocks = 0;
  int groups = 1;
  long tasks() const { return blocks * groups; }
};
inline TaskPlan plan_tasks(long M, int panels, int unit, int threads) {
  TaskPlan p;
  p.block_rows = std::max(unit, 96 / unit * unit);
  p.blocks = (M + p.block_rows - 1) / p.block_rows;
  while (p.blocks * p.groups < 4L * threads && p.groups < panels) ++p.groups;
  return p;
}
template <class K, class RowsOfA, class Finish>
void run_blocks(long M, const PackedB& pb, int unit, const AWalk& walk, RowsOfA&& rows_of_a, Finish&& finish) {
  constexpr int MR = K::MR;
  using A = typename K::A;
  const TaskPlan plan = plan_tasks(M, pb.panels, unit, max_threads());
  const int block_rows = plan.block_rows, groups = plan.groups;
  const long tasks = plan.tasks();
  const std::ptrdiff_t stride = pb.panel_stride();
  const typename K::B* bp = packed_elements<K>(pb);
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1)
  for (long t = 0; t < tasks; ++t) {
    const long m0 = (t / groups) * block_rows;
    const int grp = int(t % groups);
    const int rows = int(std::min<long>(block_rows, M - m0)), rows_padded = round_up(rows, MR);
    const int p0 = pb.panels * grp / groups, p1 = pb.panels * (grp + 1) / groups;
    if (p1 <= p0) continue;
    thread_local std::vector<const A*> ptrs;  // one per thread, kept: no allocation per task
    ptrs.resize(std::size_t(rows_padded));
    A* abuf = scratch<A, Int8Scratch::a_block>(std::size_t(rows_padded) * std::size_t(pb.k4) + pack_slack);
    rows_of_a(m0, rows, ptrs.data(), abuf);
    if constexpr (K::path == Int8Path::amx_int8) {  // packed rows k4 apart; padding rows of zeros
      A* pad = abuf + std::ptrdiff_t(rows) * pb.k4;
      std::fill(pad, pad + std::ptrdiff_t(rows_padded - rows) * pb.k4, A(0));
      for (int r = rows; r < rows_padded; ++r) ptrs[std::size_t(r)] = abuf + std::ptrdiff_t(r) * pb.k4;
    } else {
      std::fill(ptrs.begin() + rows, ptrs.end(), ptrs[std::size_t(rows - 1)]);
    }
    const std::ptrdiff_t ldc = std::ptrdiff_t(p1 - p0) * panel_width;
    std::int32_t* cb = scratch<std::int32_t, Int8Scratch::c_block>(std::size_t(rows_padded) * std::size_t(ldc));
    for (int p = p0; p < p1;) {
      const int np = K::max_panels >= 2 && p + 2 <= p1 ? 2 : 1;
      const typename K::B* bpanel = bp + std::ptrdiff_t(p) * stride;
      std::int32_t* cp = cb + std::ptrdiff_t(p - p0) * panel_width;
      for (int r = 0; r < rows_padded; r += MR) {
        if constexpr (K::max_panels >= 2) {
          if (np == 2) {
            K::template run<2>(ptrs.data() + r, walk, bpanel, stride, cp + r * ldc, ldc);
            continue;
          }
        }
        K::template run<1>(ptrs.data() + r, walk, bpanel, stride, cp + r * ldc, ldc);
      }
      p += np;
    }
    finish(m0, rows, p0 * panel_width, std::min(pb.n, p1 * panel_width), static_cast<const std::int32_t*>(cb), ldc);
  }
}

}  // namespace int8_detail

// C_i32[m x n] = A_u8[m x k] * B, B packed by pack_b (for the path it names: a path this process
// cannot run is refused).
inline void gemm_u8s8(int m, const std::uint8_t* a, std::ptrdiff_t lda, const PackedB& b, std::int32_t* c,
                      std::ptrdiff_t ldc) {
  HUBBLE_CHECK(m >= 0, "gemm_u8s8: m = ", m, " is negative");
  HUBBLE_CHECK(b.k > 0 && b.n > 0, "gemm_u8s8: B was not packed (use pack_b)");
  HUBBLE_CHECK(a && c, "gemm_u8s8: A or C is a null pointer");
  HUBBLE_CHECK(lda >= b.k && ldc >= b.n, "gemm_u8s8: lda = ", lda, " (needs >= k = ", b.k, ") or ldc = ", ldc,
               " (needs >= n = ", b.n, ") too small");
  check_available(b.path, "gemm_u8s8");
  if (m == 0) return;
  const int k = b.k, k4 = b.k4;
  const std::ptrdiff_t whole_row = 0;
  const AWalk walk{&whole_row, 1, k4};  // rows packed, zero beyond k: A needs no padding
  int8_detail::with_kernel(b.path, [&]<class K>() {
    using AT = typename K::A;
    int8_detail::run_blocks<K>(
        m, b, 1, walk,
        [&](long m0, int rows, const AT** ptrs, AT* buffer) {
          for (int i = 0; i < rows; ++i) {
            const std::uint8_t* src = a + (m0 + i) * lda;
            AT* d = buffer + std::ptrdiff_t(i) * k4;
            for (int p = 0; p < k; ++p) d[p] = AT(src[p]);
            std::fill(d + k, d + k4, AT(0));
            ptrs[i] = d;
          }
        },
        [&](long m0, int rows, int f0, int f1, const std::int32_t* cb, std::ptrdiff_t ldcb) {
          for (int i = 0; i < rows; ++i)
            std::memcpy(c + (m0 + i) * ldc + f0, cb + i * ldcb, sizeof(std::int32_t) * std::size_t(f1 - f0));
        });
  });
}

}  // namespace hubble::kernels::lowp
