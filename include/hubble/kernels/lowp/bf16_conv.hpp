#pragma once
// lowp::Bf16 — a convolution variant that multiplies in bfloat16 and adds in fp32.
//
//   Conv2D<32, 5, 2, Same, kernels::lowp::Bf16>      fp32 in, fp32 out, bf16 products inside
//
// It follows the policy interface of conv_geometry.hpp (forward, forward_relu, backward over the
// NHWC layouts x [n][h][w][c], w [k][k][c][f], y [n][oh][ow][f]) on float buffers, so a Conv2D
// takes it like any other variant, for inference and for training with fp32 master weights (the
// layer keeps w, dw in fp32; only the products are rounded). Every product is of two bf16-rounded
// operands and is summed in fp32 by bf16_gemm.hpp, whose paths (avx512_bf16 VDPBF16PS, avx2 and
// generic FMA) are picked at run time: chosen_bf16_path() says which, force_bf16_path() or
// ForcedBf16Path pick a lower one.
//
// The three products, as im2col matrices (P = n*oh*ow output pixels, K = k*k*c):
//   forward  y [P x f]  = col [P x K] * w [K x f] + b             (ReLU in the store: forward_relu;
//                                                                  then MaxPool<P>: forward_relu_maxpool)
//   weights  dw [K x f] = col^T [K x P] * dy [P x f],  db = column sums of dy (fp32)
//   input    dcol [P x K] = dy [P x f] * w^T [f x K];  dx = col2im(dcol) (fp32 sums)
// How the bf16 operands are made:
//   x is rounded to bf16 once, into a zero-padded copy xp [n][hp][wp][c] (hp = (oh-1)*s + k): each
//   input value is converted once rather than once per window it falls in (k^2/s^2 times: 6.25x for
//   conv1), and each output pixel's patch is then gathered from xp straight into the micro-kernel's
//   A panel, pair by pair (an implicit GEMM: no col matrix), or on amx_bf16 into tile rows, one
//   copy per kernel row; an odd kernel row is widened by one value against a zero weight, so that
//   no pair straddles two rows (forward; the weight gradient widens it too). On amx_bf16, where
//   the shapes allow, the forward loads its tiles straight from xp, the weight gradient builds
//   its tiles from xp and a transposed dy, and at stride 1 the input gradient runs as that
//   forward over padded dy (bf16_conv_amx.hpp).
//   w is packed once into B panels and kept in the layer's Workspace while the weights do not
//   change (compared bit for bit, as the fp32 variants do), so inference packs it once.
//   dy is rounded when packed: into B panels for dw, and row by row into A panels for dx.
//
// Accuracy against the fp32 convolution (kernels::Naive). Rounding an operand to bf16 changes it
// by at most u = 2^-8 relative, so a product a*b by at most (1+u)^2 - 1 = 2u + u^2 = 2^-7 + 2^-16
// (0.78%) relative. Summed over K terms with fp32 accumulation (gamma_K ~ K 2^-24, negligible beside
// it), |y_bf16 - y_fp32| <= (2u + gamma_K) * sum_l |x_l w_l|: a bound on the error relative to
// the sum of absolute products, not to y, which cancellation can make small. The same holds for
// dw (K -> P terms) and dx (K -> f*ceil(k/s)^2 terms per input). tests/test_bf16_kernels.cpp
// checks the bound element by element; on the paper's layers the worst error is 0.04 to 0.3 of it
// (bench_bf16 prints the ratios).
//
// Determinism: each output element is summed by one thread in a fixed order; dw's sum over P is
// cut into chunks fixed by the shape (not the thread count) and added in order; db and col2im add
// in a fixed order. Results do not depend on OMP_NUM_THREADS (checked by the tests).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/lowp/bf16_conv_amx.hpp"
#include "hubble/kernels/lowp/bf16_gemm.hpp"

namespace hubble::kernels::lowp {

// Workspace::prepared holds the weights packed into bf16 pair panels.
inline constexpr PreparedWeights bf16_weight_panels = PreparedWeights::bf16_weight_panels;

namespace bf16_conv_detail {

inline constexpr int dw_chunk_pairs = 1024;  // dw's k (pixel) chunk: 2048 pixels, fixed by the shape

inline void check_geometry(const ConvGeometry& g, const char* what) {
  HUBBLE_CHECK(g.n > 0 && g.h > 0 && g.w > 0 && g.c > 0 && g.f > 0 && g.oh > 0 && g.ow > 0, "lowp::Bf16::", what,
               ": every size must be positive (n ", g.n, ", h ", g.h, ", w ", g.w, ", c ", g.c, ", oh ", g.oh, ", ow ",
               g.ow, ", f ", g.f, ")");
  HUBBLE_CHECK(g.k > 0 && g.stride > 0, "lowp::Bf16::", what, ": kernel ", g.k, " and stride ", g.stride,
               " must be positive");
  HUBBLE_CHECK(g.pad_top >= 0 && g.pad_left >= 0 && g.pad_top < g.k && g.pad_left < g.k, "lowp::Bf16::", what,
               ": padding (", g.pad_top, ", ", g.pad_left, ") must be in [0, kernel ", g.k, ")");
  HUBBLE_CHECK((g.oh - 1) * g.stride - g.pad_top < g.h && (g.ow - 1) * g.stride - g.pad_left < g.w,
               "lowp::Bf16::", what, ": output ", g.oh, " x ", g.ow, " reaches past the padded ", g.h, " x ", g.w,
               " input");
}

// The padded bf16 copy of x: xp [n][hp][wp][c], hp = (oh-1)*s + k, wp = (ow-1)*s + k, zero outside x.
struct PaddedInput {
  const bfloat16* data;
  int hp, wp;
};
// `slot` is the Workspace buffer it goes in (&Workspace<float>::get_a unless that one is in use).
inline PaddedInput pad_and_round(const ConvGeometry& g, const float* x, Workspace<float>& ws, ConvertPath path,
                                 float* (Workspace<float>::*slot)(std::size_t) = &Workspace<float>::get_a) {
  const int hp = (g.oh - 1) * g.stride + g.k, wp = (g.ow - 1) * g.stride + g.k;
  const std::size_t count = std::size_t(g.n) * std::size_t(hp) * std::size_t(wp) * std::size_t(g.c);
  auto* xp = reinterpret_cast<bfloat16*>((ws.*slot)(count / 2 + 1));
  const std::size_t row = std::size_t(wp) * std::size_t(g.c);
  const int copy_w = std::min(g.w, wp - g.pad_left);  // input columns inside the padded width
  const long rows = long(g.n) * hp;
#pragma omp parallel for schedule(static) if (rows > 16 && count > (std::size_t(1) << 16))
  for (long r = 0; r < rows; ++r) {
    bfloat16* dst = xp + std::size_t(r) * row;
    const int img = int(r / hp), iy = int(r % hp) - g.pad_top;
    if (iy < 0 || iy >= g.h) {
      std::fill(dst, dst + row, bfloat16{});
      continue;
    }
    const std::size_t left = std::size_t(g.pad_left) * std::size_t(g.c), body = std::size_t(copy_w) * std::size_t(g.c);
    std::fill(dst, dst + left, bfloat16{});
    to_bf16(x + (std::size_t(img) * std::size_t(g.h) + std::size_t(iy)) * std::size_t(g.w) * std::size_t(g.c),
            dst + left, body, path);
    std::fill(dst + left + body, dst + row, bfloat16{});
  }
  return {xp, hp, wp};
}

inline ConvertPath convert_path_for(Bf16Path p) {
  if (p == Bf16Path::avx512_bf16) return ConvertPath::avx512_bf16;
  return p == Bf16Path::amx_bf16 ? convert_path() : ConvertPath::portable;  // AMX: VCVTNE2PS2BF16 if there
}

// Max-pooling fused into the forward: P x P windows, stride P, of max(conv + b, 0), the window
// position (py * P + px) of each maximum (the first on ties, as MaxPoolLayer) in argmax.
struct PoolPlan {
  int p = 0;                       // window side; 0: no pooling
  std::uint8_t* argmax = nullptr;  // [n][oh/p][ow/p][f]
};
// Pooling needs whole windows in each GEMM row block (gemm_mc = 64 rows): P = 1, 2, 4 or 8.
inline bool can_pool(const ConvGeometry& g, int p) {
  return p >= 1 && gemm_mc % (p * p) == 0 && g.oh / p >= 1 && g.ow / p >= 1;
}

// y = conv(x, w) + b (then max(., 0) if relu): A rows are output pixels, gathered from xp as k
// runs of k*c bf16 each (ky = 0..k-1). With pooling, the rows run window by window (row i is
// position i % P^2 of window i / P^2; the last row or column of windows that does not fit is not
// computed), each task's block is kept in a per-thread buffer, and y is the pooled output.
inline void forward(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y,
                    Workspace<float>& ws, bool relu, PoolPlan pool = {}) {
  check_geometry(g, pool.p ? "forward_relu_maxpool" : relu ? "forward_relu" : "forward");
  HUBBLE_CHECK(x && w && y, "lowp::Bf16::forward: null x, w or y");
  const Bf16Path path = active_bf16_path();
  // Patch value l = (ky, kx, ci) of a window lies in run ky (k*c contiguous values, wp*c apart in
  // xp). The pairs are read from xp straight into the A panel, one 32-bit load each (copying the
  // runs into a line first and reading pairs back stalled on store forwarding). With an odd run
  // (conv1: 5 x 3 = 15 values) a pair would straddle two runs and be built value by value, which
  // was most of conv1's forward; such runs are widened by one value instead, multiplied by a zero
  // weight row: the GEMM's k is k * (run + 1) (80 for conv1's 75). That value is the next one in
  // xp (pad_and_round leaves 2 values of slack after the last row), finite for a finite input, so
  // it adds exactly 0.
  const int run = g.k * g.c, run_k = run + run % 2, K = g.k * run_k;
  const std::size_t nw = g.patch() * std::size_t(g.f), words = packed_b_words(K, g.f);
  if (!ws.has_prepared(bf16_weight_panels, w, nw)) {  // packed once; kept while w does not change
    auto* panels = reinterpret_cast<PairWord*>(ws.prepare(bf16_weight_panels, w, nw, words));
    if (run_k == run) {
      pack_b_rows(K, g.f, w, std::size_t(g.f), panels, convert_path_for(path));
    } else {  // w [k][run][f] -> [k][run + 1][f], the added row zero
      std::vector<float> widened(std::size_t(K) * std::size_t(g.f), 0.0f);
      for (int ky = 0; ky < g.k; ++ky)
        std::copy(w + std::size_t(ky) * std::size_t(run) * std::size_t(g.f),
                  w + std::size_t(ky + 1) * std::size_t(run) * std::size_t(g.f),
                  widened.begin() + std::ptrdiff_t(std::size_t(ky) * std::size_t(run_k) * std::size_t(g.f)));
      pack_b_rows(K, g.f, widened.data(), std::size_t(g.f), panels, convert_path_for(path));
    }
  }
  const PackedBView wb{reinterpret_cast<const PairWord*>(ws.prepared.data()), K, g.f};
  const PaddedInput xp = pad_and_round(g, x, ws, convert_path_for(path));
  if (path == Bf16Path::amx_bf16 && direct_applies(g, run_k, pool.p))  // tiles loaded from xp, no packing
    return direct_forward(
        {g, xp.data, xp.hp, xp.wp, run_k, direct_block_pairs(run_k), wb, b, relu, pool.p, y, pool.argmax});
  const int side = pool.p ? pool.p : 1, window = side * side;  // 1 x 1 windows: no pooling
  const int ph = g.oh / side, pw = g.ow / side;
  const int rows_total = g.n * ph * pw * window;
  std::vector<std::uint32_t> offset(static_cast<std::size_t>(K / 2));  // where pair p starts
  for (int p = 0; p < K / 2; ++p) offset[std::size_t(p)] = std::uint32_t((2 * p / run_k) * xp.wp * g.c + 2 * p % run_k);
  auto pack_tile_rows = [&](TileRows, int row0, int rows, int, int, PairWord* at, int lda) {  // amx_bf16
    // Row r holds pixel r's pairs in order: its k kernel rows of run_k values, one copy each
    // (all K / 2 pairs: the forward never splits k, so p0 = 0 and p1 = K / 2).
    PixelWalker at_pixel(row0, side, ph, pw);
    for (int r = 0; r < rows; ++r, at_pixel.next()) {
      const bfloat16* patch =
          xp.data + ((std::size_t(at_pixel.img) * std::size_t(xp.hp) + std::size_t(at_pixel.oy() * g.stride)) *
                         std::size_t(xp.wp) +
                     std::size_t(at_pixel.ox() * g.stride)) *
                        std::size_t(g.c);
      auto* dst = reinterpret_cast<bfloat16*>(at + std::ptrdiff_t(r) * lda);
      for (int ky = 0; ky < g.k; ++ky)
        std::memcpy(dst + std::size_t(ky) * std::size_t(run_k),
                    patch + std::size_t(ky) * std::size_t(xp.wp) * std::size_t(g.c),
                    std::size_t(run_k) * sizeof(bfloat16));
    }
  };
  auto pack_panels = [&](int row0, int rows, int, int p1, PairWord* ap) {  // no k-split here: p0 = 0
    // Locals, not captures: the panel's stores may alias (PairWord), which would reload captures.
    const std::uint32_t* off = offset.data();
    const int pairs = p1;
    PixelWalker at(row0, side, ph, pw);
    for (int r = 0; r < gemm_mr; ++r) {
      PairWord* dst = ap + r;
      if (r >= rows) {
        for (int p = 0; p < pairs; ++p) dst[std::size_t(p) * gemm_mr] = 0;
        continue;
      }
      const bfloat16* patch =
          xp.data + ((std::size_t(at.img) * std::size_t(xp.hp) + std::size_t(at.oy() * g.stride)) * std::size_t(xp.wp) +
                     std::size_t(at.ox() * g.stride)) *
                        std::size_t(g.c);
      at.next();
      for (int p = 0; p < pairs; ++p) {
        std::uint32_t pair;
        std::memcpy(&pair, patch + off[p], sizeof pair);
        dst[std::size_t(p) * gemm_mr] = pair;
      }
    }
  };
  Overloaded pack_rows{pack_panels, pack_tile_rows};
  if (!pool.p) return gemm_bf16_packed(rows_total, wb, pack_rows, y, std::size_t(g.f), Epilogue{b, relu}, path);
  const int f = g.f;
  gemm_bf16_packed(rows_total, wb, pack_rows, nullptr, 0, Epilogue{b, relu}, path, 0, nullptr,
                   [&](int row0, int rows, int col0, int col1, const float* block) {
                     for (int wi = 0; wi < rows / window; ++wi) {
                       const float* v = block + std::size_t(wi) * std::size_t(window) * std::size_t(f);
                       const std::size_t dst = (std::size_t(row0 / window) + std::size_t(wi)) * std::size_t(f);
                       for (int j = col0; j < col1; ++j) {
                         float best = v[j];
                         int arg = 0;
                         for (int q = 1; q < window; ++q)
                           if (v[std::size_t(q) * std::size_t(f) + std::size_t(j)] > best) {
                             best = v[std::size_t(q) * std::size_t(f) + std::size_t(j)];
                             arg = q;
                           }
                         y[dst + std::size_t(j)] = best;
                         pool.argmax[dst + std::size_t(j)] = std::uint8_t(arg);
                       }
                     }
                   });
}

// dw_k [K x f] (widened rows included) = col^T * dy through gemm_bf16_packed, on every path (on
// amx_bf16 where direct_weight_gradient does not apply). A rows are patch positions q = (ky, kx,
// ci), its k the output pixels: ap pairs two consecutive pixels' values at q. With the widened
// rows every block of 8 rows lies in one kernel row, 8 consecutive values of each pixel's window:
// the vector gather below. dy is packed into B panels.
inline void packed_weight_gradient(const ConvGeometry& g, const PaddedInput& xp, int run_k, const float* dy,
                                   float* dw_k, Workspace<float>& ws, Bf16Path path) {
  const int K = g.k * run_k, P = int(g.out_pixels()), f = g.f;
  auto* dy_panels = reinterpret_cast<PairWord*>(ws.get_b(packed_b_words(P, f)));
  pack_b_rows(P, f, dy, std::size_t(f), dy_panels, convert_path_for(path));
  const PackedBView dyb{dy_panels, P, f};
  const std::size_t partial_words = gemm_partials_size(K, f, P, dw_chunk_pairs);
  float* partials = partial_words ? ws.get_c(partial_words) : nullptr;
  const std::size_t c = std::size_t(g.c), wp = std::size_t(xp.wp);
  auto window_base = [&](const PixelWalker& at) {  // where output pixel `at`'s window starts in xp
    return ((std::size_t(at.img) * std::size_t(xp.hp) + std::size_t(at.oy() * g.stride)) * wp +
            std::size_t(at.ox() * g.stride)) *
           c;
  };
  gemm_bf16_packed(
      K, dyb,
      [&](int q0, int rows, int p0, int p1, PairWord* ap) {
        std::size_t offset[gemm_mr] = {};
        for (int r = 0; r < rows; ++r) {  // row q = (ky, position in the widened kernel row)
          const int q = q0 + r;
          offset[r] = std::size_t(q / run_k) * wp * c + std::size_t(q % run_k);
        }
        PixelWalker at(2 * p0, 1, g.oh, g.ow);
#if HUBBLE_BF16_X86
        // The usual case (c a multiple of 8): the 8 patch positions are 8 consecutive channels, 16
        // bytes in each pixel's window; interleaving two pixels' 16 bytes word by word (SSE2
        // unpack) gives the 8 pairs in order.
        bool consecutive = rows == gemm_mr;
        for (int r = 1; r < gemm_mr; ++r) consecutive = consecutive && offset[r] == offset[0] + std::size_t(r);
        if (consecutive) {
          for (int p = p0; p < p1; ++p) {
            PairWord* dst = ap + std::size_t(p - p0) * gemm_mr;
            const __m128i even =
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(xp.data + window_base(at) + offset[0]));
            at.next();
            const __m128i odd =
                2 * p + 1 < P ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(xp.data + window_base(at) + offset[0]))
                              : _mm_setzero_si128();
            at.next();
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(even, odd));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 4), _mm_unpackhi_epi16(even, odd));
          }
          return;
        }
#endif
        for (int p = p0; p < p1; ++p) {
          PairWord* dst = ap + std::size_t(p - p0) * gemm_mr;
          const bfloat16* w0 = xp.data + window_base(at);
          at.next();
          const bfloat16* w1 = 2 * p + 1 < P ? xp.data + window_base(at) : nullptr;
          at.next();
          for (int r = 0; r < gemm_mr; ++r)
            dst[r] = r < rows ? make_pair_word(w0[offset[r]].bits, w1 ? w1[offset[r]].bits : std::uint16_t(0)) : 0;
        }
      },
      dw_k, std::size_t(f), Epilogue{}, path, dw_chunk_pairs, partials);
}

// db[j] = sum over pixels of dy[l][j], in fp32: chunks of 4096 pixels fixed by the shape, added in order.
inline void column_sums(int P, int f, const float* dy, float* db, Workspace<float>& ws) {
  constexpr int db_chunk = 4096;
  const int chunks = (P + db_chunk - 1) / db_chunk;
  float* sums = ws.get_c(std::size_t(chunks) * std::size_t(f));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int ch = 0; ch < chunks; ++ch) {
    float* s = sums + std::size_t(ch) * std::size_t(f);
    std::fill(s, s + f, 0.f);
    for (int l = ch * db_chunk; l < std::min(P, (ch + 1) * db_chunk); ++l)
      for (int j = 0; j < f; ++j) s[j] += dy[std::size_t(l) * std::size_t(f) + std::size_t(j)];
  }
  for (int j = 0; j < f; ++j) {
    float total = 0;
    for (int ch = 0; ch < chunks; ++ch) total += sums[std::size_t(ch) * std::size_t(f) + std::size_t(j)];
    db[j] = total;
  }
}

// dw [K x f] = col^T * dy and db = column sums of dy. Odd kernel rows are widened by one position
// as in forward (conv1: 75 -> 80 rows); the added rows' gradients are computed and dropped.
inline void weight_gradient(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db,
                            Workspace<float>& ws, Bf16Path path) {
  const int run = g.k * g.c, run_k = run + run % 2, K = g.k * run_k, f = g.f;
  std::vector<float> widened_dw(run_k == run ? 0 : std::size_t(K) * std::size_t(f));
  float* dw_k = run_k == run ? dw : widened_dw.data();
  const PaddedInput xp = pad_and_round(g, x, ws, convert_path_for(path));
  if (path == Bf16Path::amx_bf16 && direct_dw_applies(g, run_k)) {  // dy transposed (db on the way), B tiles from xp
    auto* dyt = reinterpret_cast<PairWord*>(ws.get_b(std::size_t(f) * std::size_t(direct_dw_pairs16(g))));
    direct_weight_gradient(g, xp.data, xp.hp, xp.wp, run_k, dy, dyt, ws.get_c(direct_dw_scratch(g, run_k)), dw_k, db);
  } else {
    packed_weight_gradient(g, xp, run_k, dy, dw_k, ws, path);
    if (db) column_sums(int(g.out_pixels()), f, dy, db, ws);
  }
  if (run_k != run)  // drop the widened rows
    for (int ky = 0; ky < g.k; ++ky)
      std::copy(dw_k + std::size_t(ky) * std::size_t(run_k) * std::size_t(f),
                dw_k + (std::size_t(ky) * std::size_t(run_k) + std::size_t(run)) * std::size_t(f),
                dw + std::size_t(ky) * std::size_t(run) * std::size_t(f));
}

// dx = col2im(dy * w^T), a few images at a time: dcol of about 1 MB (one image at least) stays in
// the L2 cache between the GEMM that writes it and col2im (measured: conv2 at batch 16, one
// thread, 3.5 -> 1.9 ms against 32 MB chunks in quick runs on a shared machine). A rows are output
// pixels with k = f: each dy row rounded to bf16 as it is packed.
inline void input_gradient(const ConvGeometry& g, const float* w, const float* dy, float* dx, Workspace<float>& ws,
                           Bf16Path path) {
  if (path == Bf16Path::amx_bf16 && g.stride == 1) {
    // Stride 1: dx is the forward convolution of dy, padded by k - 1 - pad, with the kernel turned
    // by 180 degrees and its c and f swapped:
    //   dx[iy][ix][ci] = sum over (ky', kx', j) of dyp[iy + ky'][ix + kx'][j] * w[k-1-ky'][k-1-kx'][ci][j]
    // (dyp[r] = dy[r - (k - 1 - pad_top)], zero outside): on AMX the direct forward runs it with no
    // dcol matrix and no col2im.
    const ConvGeometry t{g.n, g.oh, g.ow, g.f, g.k, 1, g.k - 1 - g.pad_top, g.k - 1 - g.pad_left, g.h, g.w, g.c};
    const int run_t = g.k * g.f, run_k = run_t + run_t % 2;
    if (direct_applies(t, run_k, 0)) {
      const int K = g.k * run_k;
      auto* panels = reinterpret_cast<PairWord*>(ws.get_b(packed_b_words(K, g.c)));
      pack_b(
          K, g.c,
          [&](int l, int ci) {  // row l = (ky', position in the widened run: kx' * f + j)
            const int ky = l / run_k, q = l % run_k;
            if (q >= run_t) return 0.f;
            const int kx = q / g.f, j = q % g.f;
            return w[((std::size_t(g.k - 1 - ky) * std::size_t(g.k) + std::size_t(g.k - 1 - kx)) * std::size_t(g.c) +
                      std::size_t(ci)) *
                         std::size_t(g.f) +
                     std::size_t(j)];
          },
          panels);
      const PaddedInput dyp = pad_and_round(t, dy, ws, convert_path_for(path), &Workspace<float>::get_c);
      return direct_forward({t, dyp.data, dyp.hp, dyp.wp, run_k, direct_block_pairs(run_k), PackedBView{panels, K, g.c},
                             nullptr, false, 0, dx, nullptr});
    }
  }
  const int K = int(g.patch()), f = g.f, pixels_per_image = g.oh * g.ow;
  auto* wt_panels = reinterpret_cast<PairWord*>(ws.get_b(packed_b_words(f, K)));
  pack_b(
      f, K, [&](int l, int j) { return w[std::size_t(j) * std::size_t(f) + std::size_t(l)]; }, wt_panels);
  const PackedBView wtb{wt_panels, f, K};
  const std::size_t per_image = std::size_t(pixels_per_image) * std::size_t(K);
  const int images_per_chunk = int(std::clamp<std::size_t>((std::size_t(256) << 10) / per_image, 1, std::size_t(g.n)));
  float* dcol = ws.get_c(per_image * std::size_t(images_per_chunk));
  const ConvertPath cpath = convert_path_for(path);
  const std::size_t c = std::size_t(g.c);
  for (int first = 0; first < g.n; first += images_per_chunk) {
    const int images = std::min(images_per_chunk, g.n - first);
    const float* dy_chunk = dy + std::size_t(first) * std::size_t(pixels_per_image) * std::size_t(f);
    gemm_bf16_packed(
        images * pixels_per_image, wtb,
        [&](int row0, int rows, int p0, int p1, PairWord* ap) {
          pack_rows_from_lines(row0, rows, p0, p1, ap, [&](int pixel, bfloat16* line) -> const bfloat16* {
            const int upto = std::min(f, 2 * p1);
            to_bf16(dy_chunk + std::size_t(pixel) * std::size_t(f), line, std::size_t(upto), cpath);
            for (int l = upto; l < 2 * p1; ++l) line[l] = bfloat16{};
            return line;
          });
        },
        dcol, std::size_t(K), Epilogue{}, path);
    // col2im as a gather: dx[img, iy, ix, :] = sum over (ky, kx), ky then kx ascending, of
    // dcol[(img, oy, ox)][(ky, kx, :)] where oy*s + ky - pad_top = iy and ox*s + kx - pad_left = ix.
    // Each thread owns whole rows of dx, so the order of the additions never changes. For each
    // (ky, kx) the ox that land inside the row are a range: no division per pixel.
    const long rows = long(images) * g.h;
#pragma omp parallel for schedule(static) if (rows > 1 && per_image * std::size_t(images) > (std::size_t(1) << 16))
    for (long r = 0; r < rows; ++r) {
      const int img = int(r / g.h), iy = int(r % g.h);
      float* out_row = dx + ((std::size_t(first + img) * std::size_t(g.h) + std::size_t(iy)) * std::size_t(g.w)) * c;
      std::fill(out_row, out_row + std::size_t(g.w) * c, 0.f);
      for (int ky = 0; ky < g.k; ++ky) {
        const int yy = iy + g.pad_top - ky;
        if (yy < 0 || yy % g.stride != 0 || yy / g.stride >= g.oh) continue;
        const float* dcol_row =
            dcol + (std::size_t(img) * std::size_t(pixels_per_image) + std::size_t(yy / g.stride) * std::size_t(g.ow)) *
                       std::size_t(K);
        for (int kx = 0; kx < g.k; ++kx) {
          const int first_ix = kx - g.pad_left;  // ix of ox = 0; ix = first_ix + ox * s
          const int ox0 = first_ix >= 0 ? 0 : (-first_ix + g.stride - 1) / g.stride;
          const int last = g.w - 1 - first_ix;  // the largest ox * s that stays inside
          const int ox1 = last < 0 ? 0 : std::min(g.ow, last / g.stride + 1);
          for (int ox = ox0; ox < ox1; ++ox) {
            float* out = out_row + std::size_t(first_ix + ox * g.stride) * c;
            const float* src = dcol_row + std::size_t(ox) * std::size_t(K) +
                               (std::size_t(ky) * std::size_t(g.k) + std::size_t(kx)) * c;
            for (std::size_t ci = 0; ci < c; ++ci) out[ci] += src[ci];
          }
        }
      }
    }
  }
}

}  // namespace bf16_conv_detail

struct Bf16 {
  static constexpr const char* name = "bf16";

  // A Conv2D of another element type (double) finds this overload and gets a message, not a
  // page of failed candidates.
  template <class T>
  static void forward(const ConvGeometry&, const T*, const T*, const T*, T*, Workspace<T>&) {
    static_assert(std::is_same_v<T, float>, "lowp::Bf16 is a kernel for float networks (bf16 products, fp32 sums)");
  }
  template <class T>
  static void backward(const ConvGeometry&, const T*, const T*, const T*, T*, T*, T*, Workspace<T>&) {
    static_assert(std::is_same_v<T, float>, "lowp::Bf16 is a kernel for float networks (bf16 products, fp32 sums)");
  }

  // y = conv(x, w) + b, bf16 products, fp32 sums.
  static void forward(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y,
                      Workspace<float>& ws) {
    bf16_conv_detail::forward(g, x, w, b, y, ws, false);
  }
  // y = max(conv(x, w) + b, 0): the ReLU in the micro-kernel's store.
  static void forward_relu(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y,
                           Workspace<float>& ws) {
    bf16_conv_detail::forward(g, x, w, b, y, ws, true);
  }
  // y = maxpool_P(max(conv(x, w) + b, 0)) and the window position (py * P + px) of each maximum:
  // Conv2D, ReLU and MaxPool<P> in one pass, the convolution's output never stored. y is
  // [n][oh/P][ow/P][f]. Returns false, having computed nothing, unless P is 1, 2, 4 or 8.
  static bool forward_relu_maxpool(const ConvGeometry& g, const float* x, const float* w, const float* b, int P,
                                   float* y, std::uint8_t* argmax, Workspace<float>& ws) {
    if (!bf16_conv_detail::can_pool(g, P)) return false;
    HUBBLE_CHECK(argmax != nullptr, "lowp::Bf16::forward_relu_maxpool: null argmax");
    bf16_conv_detail::forward(g, x, w, b, y, ws, true, {P, argmax});
    return true;
  }
  // dw, db (skipped when dw is null) and dx (skipped when null), written not accumulated, fp32.
  static void backward(const ConvGeometry& g, const float* x, const float* w, const float* dy, float* dw, float* db,
                       float* dx, Workspace<float>& ws) {
    bf16_conv_detail::check_geometry(g, "backward");
    HUBBLE_CHECK(x && w && dy, "lowp::Bf16::backward: null x, w or dy");
    const Bf16Path path = active_bf16_path();
    if (dw) bf16_conv_detail::weight_gradient(g, x, dy, dw, db, ws, path);
    if (dx) bf16_conv_detail::input_gradient(g, w, dy, dx, ws, path);
  }
};

}  // namespace hubble::kernels::lowp
