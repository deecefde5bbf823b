#pragma once
// kernels::Winograd — Winograd's minimal filtering F(2x2, 3x3) for 3x3, stride-1 convolutions
// (Lavin & Gray 2016); every other shape is handed to ImplicitGemm.
//
// A 2x2 block of outputs needs a 4x4 tile d of the input. With
//     B^T = [1  0 -1  0]      G = [ 1    0    0 ]      A^T = [1  1  1  0]
//           [0  1  1  0]          [1/2  1/2  1/2]            [0  1 -1 -1]
//           [0 -1  1  0]          [1/2 -1/2  1/2]
//           [0  1  0 -1]          [ 0    0    1 ]
//   forward:  Y = A^T [ sum_c (G g_cf G^T) .* (B^T d_c B) ] A          (per tile, per filter f)
// i.e. for each of the 16 positions xi of the 4x4 "Winograd domain", one matrix product
//     M_xi[tile][f] = sum_c V_xi[tile][c] * U_xi[c][f],   V = B^T d B,  U = G g G^T
// 16 products of (tiles x c)(c x f) replace the direct (4 tiles x 9c)(9c x f): 2.25x fewer
// multiplications, paid for by the cheap adds of the transforms.
//   weights:  dg_cf = G^T [ sum_tiles V_c .* (A dY_f A^T) ] G           (the adjoint of the above)
//             i.e. 16 products (c x tiles)(tiles x f), then the 4x4 -> 3x3 transform.
//   input:    dx = full correlation of dy with the kernel rotated 180 degrees and c <-> f swapped:
//             the forward algorithm again, on dy with padding k-1-pad. Where the input is much
//             larger than the output (conv4: 36 vs 16 pixels) that multiplies mostly zeros, so
//             dx goes to ImplicitGemm's col2im path when h*w > 1.6 oh*ow.
// Tiles are processed in blocks sized so that a block's V and M (16 x tiles x channels) stay in
// L2; the 16 products run on gemm.hpp's micro-kernel. The weight gradient sums its tiles in parts
// fixed by the shape, added in order (reproducible for any thread count). In float the result
// differs from direct convolution by a few ulps times the transform's growth (measured ~1e-6
// relative on the paper layers).
#include <algorithm>
#include <vector>

#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/gemm.hpp"
#include "hubble/kernels/implicit_gemm.hpp"

namespace hubble::kernels {

namespace winograd_detail {

// A 3x3 stride-1 correlation: input [n][h][w][cin] read at (2ty + i - pad_top, 2tx + j - pad_left)
// for tile (ty, tx), zero outside; output [n][oh][ow][cout].
struct Problem {
  int n, h, w, cin;
  int pad_top, pad_left;
  int oh, ow, cout;
  int tiles_h() const { return (oh + 1) / 2; }
  int tiles_w() const { return (ow + 1) / 2; }
  long tiles() const { return long(n) * tiles_h() * tiles_w(); }
};

// Tiles per block: V (16 x tb x cin) and M or dY~ (16 x tb x cout) within ~512 KiB, a multiple of
// MR, at most KC (the weight gradient reduces over a block in one k block).
template <class T>
int tiles_per_block(const Problem& p) {
  constexpr int MR = gemm::Microkernel<T>::MR, KC = gemm::Blocking<T>::KC;
  const long per_tile = 16L * (p.cin + p.cout) * long(sizeof(T));
  const int tb = int(std::clamp<long>((512L * 1024) / per_tile, MR, std::min(192, KC)));
  return std::max(MR, tb / MR * MR);
}

// The 16 input pointers of tile t (zeros where the tile hangs over the border).
template <class T>
void tile_pointers(const Problem& p, const T* x, long t, const T* zeros, const T* ptr[16]) {
  const int tw = p.tiles_w(), th = p.tiles_h();
  const int b = int(t / (long(th) * tw)), rem = int(t % (long(th) * tw)), ty = rem / tw, tx = rem % tw;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int iy = 2 * ty + i - p.pad_top, ix = 2 * tx + j - p.pad_left;
      ptr[i * 4 + j] = (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w)
                           ? zeros
                           : x + ((std::ptrdiff_t(b) * p.h + iy) * p.w + ix) * p.cin;
    }
}

// V = B^T d B for one tile, all channels at once (vectorised over c); v[xi] + c is the output.
template <class T>
inline void input_transform(const T* const d[16], int c_count, T* const v[16], std::ptrdiff_t voff) {
#pragma omp simd
  for (int c = 0; c < c_count; ++c) {
    T t[4][4];
    for (int j = 0; j < 4; ++j) {
      const T d0 = d[j][c], d1 = d[4 + j][c], d2 = d[8 + j][c], d3 = d[12 + j][c];
      t[0][j] = d0 - d2;
      t[1][j] = d1 + d2;
      t[2][j] = d2 - d1;
      t[3][j] = d1 - d3;
    }
    for (int i = 0; i < 4; ++i) {
      v[i * 4 + 0][voff + c] = t[i][0] - t[i][2];
      v[i * 4 + 1][voff + c] = t[i][1] + t[i][2];
      v[i * 4 + 2][voff + c] = t[i][2] - t[i][1];
      v[i * 4 + 3][voff + c] = t[i][1] - t[i][3];
    }
  }
}

// U = G g G^T for every (c, f), written in gemm's packed-B layout, one matrix per xi.
template <class T>
void transform_weights(int cin, int cout, const T* g /* [3][3][cin][cout] */, T* packed /* 16 x packed_b_size */) {
  const std::size_t per = gemm::packed_b_size<T>(cin, cout);
  std::vector<T> u(std::size_t(16) * cin * cout);
  const std::size_t cf = std::size_t(cin) * cout;
#pragma omp parallel for schedule(static) if (cf > 4096)
  for (long i = 0; i < long(cf); ++i) {
    T w[3][3];
    for (int ky = 0; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx) w[ky][kx] = g[(ky * 3 + kx) * cf + i];
    T gg[4][3];  // G g
    for (int j = 0; j < 3; ++j) {
      gg[0][j] = w[0][j];
      gg[1][j] = T(0.5) * (w[0][j] + w[1][j] + w[2][j]);
      gg[2][j] = T(0.5) * (w[0][j] - w[1][j] + w[2][j]);
      gg[3][j] = w[2][j];
    }
    for (int r = 0; r < 4; ++r) {  // (G g) G^T
      u[(r * 4 + 0) * cf + i] = gg[r][0];
      u[(r * 4 + 1) * cf + i] = T(0.5) * (gg[r][0] + gg[r][1] + gg[r][2]);
      u[(r * 4 + 2) * cf + i] = T(0.5) * (gg[r][0] - gg[r][1] + gg[r][2]);
      u[(r * 4 + 3) * cf + i] = gg[r][2];
    }
  }
  for (int xi = 0; xi < 16; ++xi) {
    const T* m = u.data() + xi * cf;
    gemm::pack_b_panels<T>(cin, cout, [&](int c, int f) { return m[std::size_t(c) * cout + f]; }, packed + xi * per);
  }
}

// y = winograd(x, U) + bias, U from transform_weights.
template <class T>
void convolve(const Problem& p, const T* x, const T* u, const T* bias, T* y) {
  const int tb = tiles_per_block<T>(p);
  const long tiles = p.tiles(), blocks = (tiles + tb - 1) / tb;
  const std::size_t per_u = gemm::packed_b_size<T>(p.cin, p.cout);
  const int tw = p.tiles_w(), th = p.tiles_h();
  // Few tiles (small images, batch 1): also split the output channels between tasks.
  constexpr int NR = gemm::Microkernel<T>::NR;
  const int npan = (p.cout + NR - 1) / NR;
  int groups = 1;
  while (blocks * groups < 2L * max_threads() && groups < npan) ++groups;
  const long tasks = blocks * groups;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (long task = 0; task < tasks; ++task) {
    const long blk = task / groups;
    const int grp = int(task % groups), jp0 = npan * grp / groups, jp1 = npan * (grp + 1) / groups;
    const int f0 = jp0 * NR, f1 = std::min(p.cout, jp1 * NR);
    const long t0 = blk * tb;
    const int nt = int(std::min<long>(tb, tiles - t0));
    T* v = thread_scratch<T, 4>(std::size_t(16) * tb * p.cin);
    T* m = thread_scratch<T, 5>(std::size_t(16) * tb * p.cout);
    T* zeros = thread_scratch<T, 6>(std::size_t(p.cin) + p.cout);
    std::fill(zeros, zeros + p.cin + p.cout, T(0));
    T* junk = zeros + p.cin;  // where outputs beyond the image are written
    T* vx[16];
    for (int xi = 0; xi < 16; ++xi) vx[xi] = v + std::size_t(xi) * tb * p.cin;
    for (int t = 0; t < nt; ++t) {
      const T* d[16];
      tile_pointers(p, x, t0 + t, zeros, d);
      input_transform(d, p.cin, vx, std::ptrdiff_t(t) * p.cin);
    }
    for (int xi = 0; xi < 16; ++xi)
      gemm::rows_times_packed(nt, p.cout, p.cin, vx[xi], p.cin, u + xi * per_u, m + std::size_t(xi) * tb * p.cout, p.cout,
                              gemm::Epilogue<T>{}, jp0, jp1);
    for (int t = 0; t < nt; ++t) {  // Y = A^T M A, vectorised over f
      const long tt = t0 + t;
      const int b = int(tt / (long(th) * tw)), rem = int(tt % (long(th) * tw)), ty = rem / tw, tx = rem % tw;
      T* out[4];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          const int oy = 2 * ty + i, ox = 2 * tx + j;
          out[i * 2 + j] = oy < p.oh && ox < p.ow ? y + ((std::ptrdiff_t(b) * p.oh + oy) * p.ow + ox) * p.cout : junk;
        }
      const T* mt = m + std::size_t(t) * p.cout;
      const std::size_t stride = std::size_t(tb) * p.cout;
#pragma omp simd
      for (int f = f0; f < f1; ++f) {
        T r[2][4];
        for (int j = 0; j < 4; ++j) {
          const T m0 = mt[(0 * 4 + j) * stride + f], m1 = mt[(1 * 4 + j) * stride + f];
          const T m2 = mt[(2 * 4 + j) * stride + f], m3 = mt[(3 * 4 + j) * stride + f];
          r[0][j] = m0 + m1 + m2;
          r[1][j] = m1 - m2 - m3;
        }
        const T bf = bias ? bias[f] : T(0);
        for (int i = 0; i < 2; ++i) {
          out[i * 2 + 0][f] = r[i][0] + r[i][1] + r[i][2] + bf;
          out[i * 2 + 1][f] = r[i][1] - r[i][2] - r[i][3] + bf;
        }
      }
    }
  }
}

// dw = G^T [ sum_tiles V .* (A dY A^T) ] G over the tiles of x and dy; db is not computed here.
template <class T>
void weight_gradient(const Problem& p, const T* x, const T* dy, T* dw, Workspace<T>& ws) {
  using U = gemm::Microkernel<T>;
  constexpr int MR = U::MR, NR = U::NR;
  const int tb = tiles_per_block<T>(p);
  const long tiles = p.tiles(), blocks = (tiles + tb - 1) / tb;
  const int cin = p.cin, cout = p.cout, npan = (cout + NR - 1) / NR, mtiles = (cin + MR - 1) / MR;
  const std::size_t cf = std::size_t(cin) * cout;
  // Parts: a function of the shape only (reproducible sums).
  const int parts = int(std::clamp<long>(blocks / 4, 1, 4));
  T* acc = ws.get_c(std::size_t(parts) * 16 * cf);  // [part][xi][cin][cout]
  const int tw = p.tiles_w(), th = p.tiles_h();
  int groups = 1;  // xi groups per part, for load balance only (the sums keep their order)
  while (parts * groups < 2 * max_threads() && groups < 16) groups *= 2;
#pragma omp parallel for schedule(static) if (parts * groups > 1)
  for (int task = 0; task < parts * groups; ++task) {
    const int part = task / groups, grp = task % groups;
    const int xi0 = 16 * grp / groups, xi1 = 16 * (grp + 1) / groups;
    const long b0 = blocks * part / parts, b1 = blocks * (part + 1) / parts;
    T* v = thread_scratch<T, 4>(std::size_t(16) * tb * cin);
    T* yp = thread_scratch<T, 5>(std::size_t(16) * tb * npan * NR);  // dY~ in packed-B layout
    T* zeros = thread_scratch<T, 6>(std::size_t(cin) + cout);
    std::fill(zeros, zeros + cin + cout, T(0));
    T* vx[16];
    for (int xi = 0; xi < 16; ++xi) vx[xi] = v + std::size_t(xi) * tb * cin;
    T* accp = acc + std::size_t(part) * 16 * cf;
    for (long blk = b0; blk < b1; ++blk) {
      const long t0 = blk * tb;
      const int nt = int(std::min<long>(tb, tiles - t0));
      for (int t = 0; t < nt; ++t) {
        const T* d[16];
        tile_pointers(p, x, t0 + t, zeros, d);
        input_transform(d, cin, vx, std::ptrdiff_t(t) * cin);
        // dY~ = A dY A^T (2x2 -> 4x4), written as row t of each xi's packed panels.
        const long tt = t0 + t;
        const int b = int(tt / (long(th) * tw)), rem = int(tt % (long(th) * tw)), ty = rem / tw, tx = rem % tw;
        const T* g[4];
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j) {
            const int oy = 2 * ty + i, ox = 2 * tx + j;
            g[i * 2 + j] = oy < p.oh && ox < p.ow ? dy + ((std::ptrdiff_t(b) * p.oh + oy) * p.ow + ox) * cout : zeros + cin;
          }
        for (int jp = 0; jp < npan; ++jp) {
          const int width = std::min(NR, cout - jp * NR);
          T* dst = yp + (std::size_t(jp) * tb + t) * NR;
          const std::size_t xs = std::size_t(npan) * tb * NR;  // distance between xi matrices
#pragma omp simd
          for (int j = 0; j < NR; ++j) {
            const int f = jp * NR + std::min(j, width - 1);
            const T keep = j < width ? T(1) : T(0);
            const T a0 = g[0][f] * keep, a1 = g[1][f] * keep, a2 = g[2][f] * keep, a3 = g[3][f] * keep;
            // rows: s = A dY  (s0 = row0, s1 = row0 + row1, s2 = row0 - row1, s3 = -row1)
            const T s[4][2] = {{a0, a1}, {a0 + a2, a1 + a3}, {a0 - a2, a1 - a3}, {-a2, -a3}};
            for (int i = 0; i < 4; ++i) {
              dst[(i * 4 + 0) * xs + j] = s[i][0];
              dst[(i * 4 + 1) * xs + j] = s[i][0] + s[i][1];
              dst[(i * 4 + 2) * xs + j] = s[i][0] - s[i][1];
              dst[(i * 4 + 3) * xs + j] = -s[i][1];
            }
          }
        }
      }
      // acc_xi[c][f] += sum_t V_xi[t][c] dY~_xi[t][f]: A = V_xi^T read in place (step cin).
      gemm::Epilogue<T> ep;
      ep.accumulate = blk > b0;
      const std::ptrdiff_t zero_off = 0;
      for (int xi = xi0; xi < xi1; ++xi) {
        const T* panel0 = yp + std::size_t(xi) * npan * tb * NR;
        for (int it = 0; it < mtiles; ++it) {
          const T* rows[MR];
          for (int r = 0; r < MR; ++r) rows[r] = vx[xi] + std::min(it * MR + r, cin - 1);
          const gemm::APanel<T> a{rows, &zero_off, 1, nt, cin};
          for (int jp = 0; jp < npan; ++jp)
            U::run(a, panel0 + std::size_t(jp) * tb * NR, accp + std::size_t(xi) * cf + std::size_t(it) * MR * cout + jp * NR,
                   cout, std::min(MR, cin - it * MR), std::min(NR, cout - jp * NR), ep);
        }
      }
    }
  }
  // Sum the parts in order, then dg = G^T M G.
#pragma omp parallel for schedule(static) if (cf > 4096)
  for (long i = 0; i < long(cf); ++i) {
    T m[4][4];
    for (int xi = 0; xi < 16; ++xi) {
      T s = acc[xi * cf + i];
      for (int q = 1; q < parts; ++q) s += acc[(std::size_t(q) * 16 + xi) * cf + i];
      m[xi / 4][xi % 4] = s;
    }
    T q[3][4];  // G^T M
    for (int j = 0; j < 4; ++j) {
      q[0][j] = m[0][j] + T(0.5) * (m[1][j] + m[2][j]);
      q[1][j] = T(0.5) * (m[1][j] - m[2][j]);
      q[2][j] = T(0.5) * (m[1][j] + m[2][j]) + m[3][j];
    }
    for (int r = 0; r < 3; ++r) {  // (G^T M) G
      dw[(r * 3 + 0) * cf + i] = q[r][0] + T(0.5) * (q[r][1] + q[r][2]);
      dw[(r * 3 + 1) * cf + i] = T(0.5) * (q[r][1] - q[r][2]);
      dw[(r * 3 + 2) * cf + i] = T(0.5) * (q[r][1] + q[r][2]) + q[r][3];
    }
  }
}

}  // namespace winograd_detail

struct Winograd {
  static constexpr const char* name = "winograd";

  static bool applies(const ConvGeometry& g) { return g.k == 3 && g.stride == 1; }
  // The input gradient multiplies the zero border of dy too; past this ratio col2im is cheaper.
  static bool input_gradient_applies(const ConvGeometry& g) {
    return applies(g) && double(g.h) * g.w <= 1.6 * double(g.oh) * g.ow;
  }

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    if (!applies(g)) return ImplicitGemm::forward(g, x, w, b, y, ws);
    const std::size_t per = gemm::packed_b_size<T>(g.c, g.f);
    T* u = ws.get_b(16 * per);
    winograd_detail::transform_weights(g.c, g.f, w, u);
    const winograd_detail::Problem p{g.n, g.h, g.w, g.c, g.pad_top, g.pad_left, g.oh, g.ow, g.f};
    winograd_detail::convolve(p, x, u, b, y);
  }

  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    if (!applies(g)) return ImplicitGemm::backward(g, x, w, dy, dw, db, dx, ws);
    if (dw) {
      const winograd_detail::Problem p{g.n, g.h, g.w, g.c, g.pad_top, g.pad_left, g.oh, g.ow, g.f};
      winograd_detail::weight_gradient(p, x, dy, dw, ws);
      gemm::column_sums(dy, long(g.out_pixels()), g.f, db);
    }
    if (!dx) return;
    if (!input_gradient_applies(g)) return ImplicitGemm::backward(g, x, w, dy, (T*)nullptr, (T*)nullptr, dx, ws);
    // dx = correlation of dy (padded by 2 - pad) with w rotated 180 degrees, c and f swapped.
    const std::size_t per = gemm::packed_b_size<T>(g.f, g.c);
    T* u = ws.get_b(16 * per);
    const std::size_t cf = std::size_t(g.c) * g.f;
    T* wr = ws.get_a(9 * cf);  // [ky][kx][f][c]
    for (int ky = 0; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx)
        for (int c = 0; c < g.c; ++c)
          for (int f = 0; f < g.f; ++f) wr[(ky * 3 + kx) * cf + std::size_t(f) * g.c + c] = w[((2 - ky) * 3 + (2 - kx)) * cf + std::size_t(c) * g.f + f];
    winograd_detail::transform_weights(g.f, g.c, wr, u);
    const winograd_detail::Problem p{g.n, g.oh, g.ow, g.f, 2 - g.pad_top, 2 - g.pad_left, g.h, g.w, g.c};
    winograd_detail::convolve(p, dy, u, (const T*)nullptr, dx);
  }
};

}  // namespace hubble::kernels
