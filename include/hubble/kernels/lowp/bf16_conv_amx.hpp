#pragma once
// The bf16 convolution (bf16_conv.hpp) on AMX with operands read in the tiles' own layout:
//   direct_forward           y = conv(x, w) + b (ReLU, 2 x 2 pool): A tiles loaded straight from
//                            the padded input by a strided TILELOADD, no packing at all (also
//                            the input gradient at stride 1: input_gradient in bf16_conv.hpp);
//   direct_weight_gradient   dw^T = dy^T * col: dy transposed once, col's B tiles built by one
//                            permute per pixel pair and block of 16 patch positions.
// Both fall back to the packed path (bf16_conv.hpp) where their shape conditions fail.
//
// ---- the forward ----
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
#include "hubble/kernels/pixel_walker.hpp"

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
// pairs, B tiles 6, 7 bp pair rows x 16 filters. 16 pairs are the GEMM's full tiles, the same
// table, so moving between the two kernels reloads nothing.
inline const amx::TileConfig& direct_tile_config(int bp) {
  if (bp == 16) return amx::full_tiles();
  static const std::array<amx::TileConfig, 16> configs = [] {
    std::array<amx::TileConfig, 16> out{};
    for (int p = 1; p < 16; ++p) {
      out[std::size_t(p)].bytes_per_row[4] = out[std::size_t(p)].bytes_per_row[5] = std::uint16_t(4 * p);
      out[std::size_t(p)].rows[6] = out[std::size_t(p)].rows[7] = std::uint8_t(p);
    }
    return out;
  }();
  return configs[std::size_t(bp)];
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
    const int col0 = panel * gemm_nr;
    const bf16_detail::PanelEpilogue e =
        bf16_detail::panel_epilogue(std::min(gemm_nr, g.f - col0), d.bias ? d.bias + col0 : nullptr, d.relu);
    const std::size_t f = std::size_t(g.f);
    if (!d.pool) {
      for (int r = 0; r < (two ? 32 : 16); ++r) {
        const int oy = oy0 + r / 16, ox = ox0 + r % 16;
        float* out =
            d.y + ((std::size_t(img) * std::size_t(g.oh) + std::size_t(oy)) * std::size_t(g.ow) + std::size_t(ox)) * f +
            std::size_t(col0);
        bf16_detail::finish_row(e, _mm512_load_ps(&sums[r][0]), _mm512_load_ps(&sums[r][16]), out);
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
        const int row_of[4] = {2 * i, 2 * i + 1, 16 + 2 * i, 17 + 2 * i};
        __m512 best = bf16_detail::finish(e, _mm512_load_ps(&sums[row_of[0]][16 * half]), half);
        __m512i arg = _mm512_setzero_si512();
        for (int q = 1; q < 4; ++q) {
          const __m512 v = bf16_detail::finish(e, _mm512_load_ps(&sums[row_of[q]][16 * half]), half);
          const __mmask16 greater = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, greater, v);
          arg = _mm512_mask_mov_epi32(arg, greater, _mm512_set1_epi32(q));
        }
        _mm512_mask_storeu_ps(d.y + at + std::size_t(16 * half), e.mask[half], best);
        _mm512_mask_cvtepi32_storeu_epi8(d.argmax + at + std::size_t(16 * half), e.mask[half], arg);
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

// ---- the weight gradient, transposed ------------------------------------------------------------
// dw^T [f x K] = dy^T [f x P] * col [P x K], both with pixels as the summed dimension, in pairs:
//   A (dy^T)  rows are filters: {dy[2p][j], dy[2p+1][j]} at row j, pair p, made once per call
//             from dy (16 x 16 pair transposes in registers; zero past P), stored tile by tile
//             (dyt_tile: 1 KB each, so a tile load reads one contiguous block, not 16 rows a
//             whole dy^T row apart); db's partial sums are taken on the way;
//   B (col)   16 patch positions of 16 pixel pairs: row p holds {x[2p][q], x[2p+1][q]} for
//             q in the block: two 16-value runs of the padded input, interleaved by one
//             permute, straight into the tile's layout (no panels, no transposes).
// so the gathers are per pixel pair and block, not per patch position, and dy is transposed
// once rather than packed for every block of rows. Positions are blocks of 16 along the widened
// kernel rows (run_k a multiple of 16: conv1's 16, conv2's 96, ...). The sum over P is cut into
// chunks of dw_direct_chunk_pairs fixed by the shape; each chunk's sums go to `partials` and
// are added in order afterwards, so the result does not depend on the number of threads.
inline constexpr int dw_direct_chunk_pairs = 1024;  // pixels summed per chunk / 2
inline constexpr int dw_direct_sub_pairs = 256;     // pairs whose B rows are built at a time
inline constexpr int dw_direct_group_blocks = 8;    // position blocks per task, at most

inline bool direct_dw_applies(const ConvGeometry& g, int run_k) { return run_k % 16 == 0 && g.f % 16 == 0; }
inline int direct_dw_pairs16(const ConvGeometry& g) {  // pixel pairs, rounded up to whole tiles
  return int((g.out_pixels() + 31) / 32 * 16);
}
// Where the A tile of filters jt*16 .. +15 and pairs pb*16 .. +15 starts (ft = f / 16 tiles a row).
inline std::size_t dyt_tile(int pb, int jt, int ft) {
  return (std::size_t(pb) * std::size_t(ft) + std::size_t(jt)) * 256;
}
inline std::size_t direct_dw_partials(const ConvGeometry& g, int run_k) {  // the chunks' dw sums
  const int chunks = (direct_dw_pairs16(g) + dw_direct_chunk_pairs - 1) / dw_direct_chunk_pairs;
  return std::size_t(chunks) * std::size_t(g.k) * std::size_t(run_k) * std::size_t(g.f);
}
// Floats of `partials` direct_weight_gradient needs: the chunks' dw sums, then db's per tile.
inline std::size_t direct_dw_scratch(const ConvGeometry& g, int run_k) {
  return direct_dw_partials(g, run_k) + std::size_t(direct_dw_pairs16(g) / 16) * std::size_t(g.f);
}

#if HUBBLE_BF16_X86 && HUBBLE_AMX
// Rows r of v (16 lanes of 32 bits each) become columns: v[i] lane j <- v[j] lane i. (The
// zero-masked forms with full masks: GCC 12 warns that the plain ones read an undefined source.)
__attribute__((target("avx512f"))) inline void transpose_16x16_epi32(__m512i v[16]) {
  const __mmask16 all = 0xFFFF;
  const __mmask8 all8 = 0xFF;
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_epi32(all, v[i], v[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_epi32(all, v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    v[i] = _mm512_maskz_unpacklo_epi64(all8, t[i], t[i + 2]);
    v[i + 1] = _mm512_maskz_unpackhi_epi64(all8, t[i], t[i + 2]);
    v[i + 2] = _mm512_maskz_unpacklo_epi64(all8, t[i + 1], t[i + 3]);
    v[i + 3] = _mm512_maskz_unpackhi_epi64(all8, t[i + 1], t[i + 3]);
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_maskz_shuffle_i32x4(all, v[h + i], v[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_maskz_shuffle_i32x4(all, v[h + i], v[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    v[i] = _mm512_maskz_shuffle_i32x4(all, t[i], t[i + 8], 0x88);
    v[i + 8] = _mm512_maskz_shuffle_i32x4(all, t[i], t[i + 8], 0xdd);
  }
}

// Words {a[j], b[j]}, j < 16, from the first 16 bf16 values of a and of b.
__attribute__((target("avx512f,avx512bw"))) inline __m512i interleave_words(__m512i a, __m512i b) {
  const __m512i order = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37,
                                         5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  return _mm512_permutex2var_epi16(a, order, b);
}
// 16 bf16 values from `at` (32 bytes), in the low half of a register; zeros when `inside` is false.
__attribute__((target("avx512f,avx512bw"))) inline __m512i load_run(const bfloat16* at, bool inside) {
  return inside ? _mm512_maskz_loadu_epi16(__mmask32(0xFFFF), at) : _mm512_setzero_si512();
}

// The A tile (16 x 16 pair words, row j = filter j0 + j) of pairs p0 .. p0+15 from dy [P x f]
// (fp32, rounded to nearest even) into `tile`, and into db_sum the fp32 sum of those 32 pixels'
// dy for the 16 filters, pixel by pixel in order.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void transpose_dy_tile(const float* dy, long P,
                                                                                              int f, int p0, int j0,
                                                                                              PairWord* tile,
                                                                                              float* db_sum) {
  __m512i v[16];
  __m512 sum = _mm512_setzero_ps();
  for (int p = 0; p < 16; ++p) {
    const long l = 2 * long(p0 + p);
    const __m512 even =
        l < P ? _mm512_loadu_ps(dy + std::size_t(l) * std::size_t(f) + std::size_t(j0)) : _mm512_setzero_ps();
    const __m512 odd =
        l + 1 < P ? _mm512_loadu_ps(dy + std::size_t(l + 1) * std::size_t(f) + std::size_t(j0)) : _mm512_setzero_ps();
    sum = _mm512_add_ps(_mm512_add_ps(sum, even), odd);
    const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even));  // even: words 0-15, odd: 16-31
    v[p] = interleave_words(both, _mm512_maskz_alignr_epi32(__mmask16(0xFFFF), both, both, 8));  // odd to 0-15
  }
  transpose_16x16_epi32(v);
  for (int j = 0; j < 16; ++j) _mm512_store_si512(tile + std::size_t(j) * 16, v[j]);
  _mm512_storeu_ps(db_sum, sum);
}

// One task: chunk `chunk` of pixel pairs, position blocks b0 .. b1-1, all filters; the sums go
// to partials [chunk][K][f].
__attribute__((target("avx512f,avx512bw,avx512vl,amx-tile,amx-bf16"))) inline void direct_dw_task(
    const ConvGeometry& g, const bfloat16* xp, int hp, int wp, int run_k, const PairWord* dyt, int chunk, int b0,
    int b1, float* partials) {
  amx::configure_tiles();
  const int nb = b1 - b0, ft = g.f / 16, pairs16 = direct_dw_pairs16(g);
  const int q0 = chunk * dw_direct_chunk_pairs, q1 = std::min(pairs16, q0 + dw_direct_chunk_pairs);
  const long P = long(g.out_pixels());
  static thread_local AlignedVector<float> acc_buffer;
  static thread_local AlignedVector<std::uint32_t> col_buffer;
  const std::size_t acc_words = std::size_t(nb) * std::size_t(ft) * 256,
                    col_block = std::size_t(dw_direct_sub_pairs) * 16;
  if (acc_buffer.size() < acc_words) acc_buffer.resize(acc_words);
  if (col_buffer.size() < std::size_t(nb) * col_block) col_buffer.resize(std::size_t(nb) * col_block);
  float* acc = acc_buffer.data();  // tile (b, jt) at (b * ft + jt) * 256: [16 filters][16 positions]
  PairWord* col = col_buffer.data();
  std::fill(acc, acc + acc_words, 0.f);
  const std::size_t c = std::size_t(g.c), row = std::size_t(wp) * c;
  for (int s0 = q0; s0 < q1; s0 += dw_direct_sub_pairs) {
    const int np = std::min(dw_direct_sub_pairs, q1 - s0);  // a multiple of 16
    PixelWalker at(2 * s0, 1, g.oh, g.ow);
    for (int p = 0; p < np; ++p) {  // B rows: pixel pair s0 + p, every block
      const long l = 2 * long(s0 + p);
      std::size_t base[2] = {0, 0};
      bool inside[2] = {false, false};
      for (int e = 0; e < 2; ++e) {
        inside[e] = l + e < P;
        if (inside[e])
          base[e] = ((std::size_t(at.img) * std::size_t(hp) + std::size_t(at.oy() * g.stride)) * std::size_t(wp) +
                     std::size_t(at.ox() * g.stride)) *
                    c;
        at.next();
      }
      for (int b = 0; b < nb; ++b) {
        const int q = (b0 + b) * 16, ky = q / run_k;
        const std::size_t off = std::size_t(ky) * row + std::size_t(q % run_k);
        _mm512_store_si512(
            col + std::size_t(b) * col_block + std::size_t(p) * 16,
            interleave_words(load_run(xp + base[0] + off, inside[0]), load_run(xp + base[1] + off, inside[1])));
      }
    }
    for (int b = 0; b < nb; b += 2)
      for (int jt = 0; jt < ft; jt += 2) {
        const bool two_b = b + 1 < nb, two_j = jt + 1 < ft;
        float* c00 = acc + (std::size_t(b) * std::size_t(ft) + std::size_t(jt)) * 256;
        float* c01 = c00 + 256;                    // filters jt + 1, block b
        float* c10 = c00 + std::size_t(ft) * 256;  // filters jt, block b + 1
        float* c11 = c10 + 256;
        _tile_loadd(0, c00, 64);
        if (two_j) _tile_loadd(1, c01, 64);
        if (two_b) _tile_loadd(2, c10, 64);
        if (two_b && two_j) _tile_loadd(3, c11, 64);
        for (int p = 0; p < np; p += 16) {
          const PairWord* a = dyt + dyt_tile((s0 + p) / 16, jt, ft);
          const PairWord* bb = col + std::size_t(b) * col_block + std::size_t(p) * 16;
          _tile_loadd(4, a, 64);
          _tile_loadd(6, bb, 64);
          _tile_dpbf16ps(0, 4, 6);
          if (two_j) {
            _tile_loadd(5, a + 256, 64);
            _tile_dpbf16ps(1, 5, 6);
          }
          if (two_b) {
            _tile_loadd(7, bb + col_block, 64);
            _tile_dpbf16ps(2, 4, 7);
            if (two_j) _tile_dpbf16ps(3, 5, 7);
          }
        }
        _tile_stored(0, c00, 64);
        if (two_j) _tile_stored(1, c01, 64);
        if (two_b) _tile_stored(2, c10, 64);
        if (two_b && two_j) _tile_stored(3, c11, 64);
      }
  }
  // partials [chunk][q][j] = acc tile (b, jt) [j % 16][q % 16]
  const int K = g.k * run_k;
  float* out = partials + std::size_t(chunk) * std::size_t(K) * std::size_t(g.f);
  for (int b = 0; b < nb; ++b)
    for (int jt = 0; jt < ft; ++jt) {
      const float* tile = acc + (std::size_t(b) * std::size_t(ft) + std::size_t(jt)) * 256;
      for (int qq = 0; qq < 16; ++qq)
        for (int jj = 0; jj < 16; ++jj)
          out[std::size_t((b0 + b) * 16 + qq) * std::size_t(g.f) + std::size_t(jt * 16 + jj)] = tile[jj * 16 + qq];
    }
}
#endif

// dw_k [K x f] (K = k * run_k, the widened rows included) = col^T * dy, and db (unless null) =
// column sums of dy, on AMX. Requires direct_dw_applies and the amx_bf16 path; dyt: f *
// direct_dw_pairs16(g) words of scratch (64-byte aligned), partials: direct_dw_scratch(g, run_k)
// floats.
inline void direct_weight_gradient([[maybe_unused]] const ConvGeometry& g, [[maybe_unused]] const bfloat16* xp,
                                   [[maybe_unused]] int hp, [[maybe_unused]] int wp, [[maybe_unused]] int run_k,
                                   [[maybe_unused]] const float* dy, [[maybe_unused]] PairWord* dyt,
                                   [[maybe_unused]] float* partials, [[maybe_unused]] float* dw_k,
                                   [[maybe_unused]] float* db) {
#if HUBBLE_BF16_X86 && HUBBLE_AMX
  const int pairs16 = direct_dw_pairs16(g), ft = g.f / 16, K = g.k * run_k, pair_blocks = pairs16 / 16;
  const long P = long(g.out_pixels());
  const long dy_tiles = long(pair_blocks) * ft;
  const bool parallel = double(P) * double(K) * g.f >= gemm_parallel_min_work;
  // db: each tile's 32-pixel sums (after the chunk partials), then added block by block in order.
  float* db_sums = partials + direct_dw_partials(g, run_k);
#pragma omp parallel for schedule(static) if (parallel && dy_tiles > 1)
  for (long t = 0; t < dy_tiles; ++t) {
    const int pb = int(t / ft), jt = int(t % ft);
    transpose_dy_tile(dy, P, g.f, pb * 16, jt * 16, dyt + dyt_tile(pb, jt, ft),
                      db_sums + std::size_t(pb) * std::size_t(g.f) + std::size_t(jt) * 16);
  }
  if (db) {
    std::fill(db, db + g.f, 0.f);
    for (int pb = 0; pb < pair_blocks; ++pb)
      for (int j = 0; j < g.f; ++j) db[j] += db_sums[std::size_t(pb) * std::size_t(g.f) + std::size_t(j)];
  }
  const int chunks = (pairs16 + dw_direct_chunk_pairs - 1) / dw_direct_chunk_pairs, blocks = K / 16;
  const int groups = (blocks + dw_direct_group_blocks - 1) / dw_direct_group_blocks,
            per_group = (blocks + groups - 1) / groups;
  const long tasks = long(chunks) * groups;
#pragma omp parallel for schedule(static) if (parallel && tasks > 1)
  for (long t = 0; t < tasks; ++t) {
    const int chunk = int(t / groups), b0 = int(t % groups) * per_group, b1 = std::min(blocks, b0 + per_group);
    direct_dw_task(g, xp, hp, wp, run_k, dyt, chunk, b0, b1, partials);
  }
  // dw_k = chunk 0 + chunk 1 + ... in this order
  const std::size_t words = std::size_t(K) * std::size_t(g.f);
#pragma omp parallel for schedule(static) if (parallel && words > 16384)
  for (long i = 0; i < long(words); ++i) {
    float v = 0;
    for (int ch = 0; ch < chunks; ++ch) v += partials[std::size_t(ch) * words + std::size_t(i)];
    dw_k[i] = v;
  }
#else
  throw Error("lowp::Bf16: the direct AMX weight gradient needs an x86-64 build");
#endif
}

}  // namespace hubble::kernels::lowp::bf16_conv_detail
