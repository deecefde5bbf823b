#pragma once
// The bf16 convolution's forward on AMX without packing A: each tile of 16 output pixels is
// loaded straight from the padded bf16 input with a row stride (a strided TILELOADD).
//
// Why it works. In the padded input xp [n][hp][wp][c], output pixel (oy, ox)'s patch values for
// kernel row ky are one contiguous run of k*c values starting at ((oy*s + ky)*wp + ox*s)*c; the
// next pixel's run starts s*c values later. So 16 pixels of one output row, for pairs
// [2*b0, 2*b0 + 2*bp) of that run, are a 16-row tile whose rows are s*c*2 bytes apart: TILELOADD
// takes exactly that stride. The weights are the forward's B panels (bf16_conv.hpp), whose pair
// rows are in the same (ky, run) order. Per 16 pixels and 16 filters:
//   C [16 px][16 f] += sum over ky, blocks b:  A_ky,b [16 px][bp pairs] * B_ky,b [bp pairs][16 f]
// which is bf16_conv.hpp's forward GEMM with its k cut into k*run/(2*bp) blocks; no A panels, no
// gather, no transposes. Blocks are 16 pairs (the whole tile width) when the run's pairs are a
// multiple of 16 (conv2..4: 48, 96, 192), or the whole run when it is at most 16 pairs (conv1:
// 16 values after widening, 8 pairs; the tiles are then configured bp pairs wide).
//
// Jobs are two output rows (oy, oy + 1) x 16 columns: four C tiles (2 rows x 32 filters), so
// each B tile is used twice. With P = 2 pooling the two rows are one row of pooling windows and
// the 32 x 32 sums are pooled before they leave the thread. A row's last tile starts at ow - 16
// (overlapping the one before: the overlap is computed twice, to the same bits), so it needs
// ow >= 16 (after dropping the column a 2 x 2 pool leaves out); narrower layers take the packed
// path. Each output is summed by one thread in a fixed order: results do not depend on the
// number of threads.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/lowp/bf16_gemm.hpp"

namespace hubble::kernels::lowp::bf16_conv_detail {

// What the direct forward needs: the padded input, the packed weights (K = k * run_k rows in
// (ky, run) order, panels of gemm_nr filters), the epilogue and where the output goes.
struct DirectForward {
  ConvGeometry g;
  const bfloat16* xp;
  int hp, wp;
  int run_k;        // values per kernel row, widened to even
  int block_pairs;  // pairs per tile block (direct_block_pairs)
  PackedBView w;
  const float* bias;
  bool relu;
  int pool;  // 0: y [n][oh][ow][f]; 2: y [n][oh/2][ow/2][f] with argmax, 2 x 2 windows
  float* y;
  std::uint8_t* argmax;
};

// Pairs per block for runs of run_k values: 16, or the whole run when it is shorter; 0 when
// neither divides the run.
inline int direct_block_pairs(int run_k) {
  const int pairs = run_k / 2;
  if (pairs <= 16) return pairs;
  return pairs % 16 == 0 ? 16 : 0;
}
inline bool direct_applies(const ConvGeometry& g, int run_k, int pool) {
  if (pool != 0 && pool != 2) return false;
  const int cols = pool ? g.ow / 2 * 2 : g.ow, rows = pool ? g.oh / 2 * 2 : g.oh;
  return cols >= 16 && rows >= 1 && direct_block_pairs(run_k) > 0;
}

#if HUBBLE_BF16_X86 && HUBBLE_AMX
// Tile shapes for blocks of bp pairs: C tiles 0..3 16 x 16 fp32, A tiles 4, 5 16 rows x bp
// pairs, B tiles 6, 7 bp pair rows x 16 filters.
inline const amx::TileConfig& direct_tile_config(int bp) {
  static const std::array<amx::TileConfig, 17> configs = [] {
    std::array<amx::TileConfig, 17> out{};
    for (int p = 1; p <= 16; ++p) {
      out[std::size_t(p)].bytes_per_row[4] = out[std::size_t(p)].bytes_per_row[5] = std::uint16_t(4 * p);
      out[std::size_t(p)].rows[6] = out[std::size_t(p)].rows[7] = std::uint8_t(p);
    }
    return out;
  }();
  return configs[std::size_t(bp)];
}

// The bias and ReLU, as the packed path's epilogue does them (VMAXPS(v, 0): NaN and -0 give +0).
__attribute__((target("avx512f"))) inline __m512 direct_epilogue(__m512 v, __m512 bias, bool relu) {
  v = _mm512_add_ps(v, bias);
  return relu ? _mm512_maskz_max_ps(__mmask16(0xFFFF), v, _mm512_setzero_ps()) : v;  // maskz: no undefined source
}

// One job: output rows oy0 (and oy0 + 1 when `two`) of image img, columns ox0 .. ox0 + 15.
__attribute__((target("avx512f,avx512bw,avx512vl,amx-tile,amx-bf16"))) inline void direct_job(const DirectForward& d,
                                                                                              int img, int oy0,
                                                                                              bool two, int ox0) {
  const ConvGeometry& g = d.g;
  amx::load_config(direct_tile_config(d.block_pairs));
  const std::size_t c = std::size_t(g.c), wp = std::size_t(d.wp);
  const bfloat16* a0 =
      d.xp +
      ((std::size_t(img) * std::size_t(d.hp) + std::size_t(oy0 * g.stride)) * wp + std::size_t(ox0 * g.stride)) * c;
  const bfloat16* a1 = a0 + std::size_t(g.stride) * wp * c;
  const long a_stride = long(g.stride) * g.c * long(sizeof(bfloat16));
  const int bp = d.block_pairs, blocks = d.run_k / (2 * bp);
  alignas(64) float sums[32][32];
  for (int panel = 0; panel < d.w.panels(); ++panel) {
    const PairWord* bpanel = d.w.data + std::size_t(panel) * d.w.panel_stride();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int ky = 0; ky < g.k; ++ky)
      for (int blk = 0; blk < blocks; ++blk) {
        const std::size_t a_off = std::size_t(ky) * wp * c + std::size_t(blk) * std::size_t(2 * bp);
        const PairWord* bk = bpanel + (std::size_t(ky) * std::size_t(d.run_k / 2) + std::size_t(blk * bp)) * gemm_nr;
        _tile_loadd(6, bk, gemm_nr * 4);
        _tile_loadd(7, bk + 16, gemm_nr * 4);
        _tile_loadd(4, a0 + a_off, a_stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
          _tile_loadd(5, a1 + a_off, a_stride);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
    _tile_stored(0, &sums[0][0], 32 * 4);
    _tile_stored(1, &sums[0][16], 32 * 4);
    if (two) {
      _tile_stored(2, &sums[16][0], 32 * 4);
      _tile_stored(3, &sums[16][16], 32 * 4);
    }
    const int col0 = panel * gemm_nr, cols = std::min(gemm_nr, g.f - col0);
    const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0);
    const __m512 bias0 = d.bias ? _mm512_maskz_loadu_ps(m0, d.bias + col0) : _mm512_setzero_ps();
    const __m512 bias1 = d.bias ? _mm512_maskz_loadu_ps(m1, d.bias + col0 + 16) : _mm512_setzero_ps();
    const std::size_t f = std::size_t(g.f);
    if (!d.pool) {
      for (int r = 0; r < (two ? 32 : 16); ++r) {
        const int oy = oy0 + r / 16, ox = ox0 + r % 16;
        float* out =
            d.y + ((std::size_t(img) * std::size_t(g.oh) + std::size_t(oy)) * std::size_t(g.ow) + std::size_t(ox)) * f +
            std::size_t(col0);
        _mm512_mask_storeu_ps(out, m0, direct_epilogue(_mm512_load_ps(&sums[r][0]), bias0, d.relu));
        _mm512_mask_storeu_ps(out + 16, m1, direct_epilogue(_mm512_load_ps(&sums[r][16]), bias1, d.relu));
      }
      continue;
    }
    // 2 x 2 windows: positions q = 0 (row oy0, even column), 1 (odd column), 2, 3 (row oy0 + 1);
    // the first maximum wins ties, as MaxPoolLayer and the packed path.
    const int ph = g.oh / 2, pw = g.ow / 2, py = oy0 / 2;
    for (int i = 0; i < 8; ++i) {
      const int px = ox0 / 2 + i;
      const std::size_t at =
          ((std::size_t(img) * std::size_t(ph) + std::size_t(py)) * std::size_t(pw) + std::size_t(px)) * f +
          std::size_t(col0);
      for (int half = 0; half < 2; ++half) {
        const __m512 bias = half ? bias1 : bias0;
        const int row_of[4] = {2 * i, 2 * i + 1, 16 + 2 * i, 17 + 2 * i};
        __m512 best = direct_epilogue(_mm512_load_ps(&sums[row_of[0]][16 * half]), bias, d.relu);
        __m512i arg = _mm512_setzero_si512();
        for (int q = 1; q < 4; ++q) {
          const __m512 v = direct_epilogue(_mm512_load_ps(&sums[row_of[q]][16 * half]), bias, d.relu);
          const __mmask16 greater = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, greater, v);
          arg = _mm512_mask_mov_epi32(arg, greater, _mm512_set1_epi32(q));
        }
        const __mmask16 m = half ? m1 : m0;
        _mm512_mask_storeu_ps(d.y + at + std::size_t(16 * half), m, best);
        _mm512_mask_cvtepi32_storeu_epi8(d.argmax + at + std::size_t(16 * half), m, arg);
      }
    }
  }
}
#endif

// Runs every job (requires direct_applies and the amx_bf16 path): two output rows x 16 columns.
inline void direct_forward([[maybe_unused]] const DirectForward& d) {
#if HUBBLE_BF16_X86 && HUBBLE_AMX
  const ConvGeometry& g = d.g;
  const int rows = d.pool ? g.oh / 2 * 2 : g.oh, cols = d.pool ? g.ow / 2 * 2 : g.ow;
  const int tiles_per_row = (cols + 15) / 16, row_pairs = (rows + 1) / 2;
  const long jobs = long(g.n) * row_pairs * tiles_per_row;
  const double work = double(g.n) * g.oh * g.ow * double(g.patch()) * g.f;
#pragma omp parallel for schedule(static) if (jobs > 1 && work >= gemm_parallel_min_work)
  for (long t = 0; t < jobs; ++t) {
    const int tile = int(t % tiles_per_row), pair = int(t / tiles_per_row % row_pairs),
              img = int(t / tiles_per_row / row_pairs);
    const int oy0 = 2 * pair, ox0 = std::min(16 * tile, cols - 16);
    direct_job(d, img, oy0, oy0 + 1 < rows, ox0);
  }
#else
  throw Error("lowp::Bf16: the direct AMX forward needs an x86-64 build");
#endif
}

}  // namespace hubble::kernels::lowp::bf16_conv_detail
