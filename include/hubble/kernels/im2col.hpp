#pragma once
// im2col / col2im: the data movement that turns a convolution into one matrix product.
//
// im2col writes, for every output pixel (n, oy, ox), the k*k*c input values under the kernel as
// one row of col:   col[(n*oh + oy)*ow + ox][(ky*k + kx)*c + ci] = x[n, oy*s+ky-pt, ox*s+kx-pl, ci]
// (zero where the window hangs over the padding). Then y = col * w is the convolution.
// col2im is its adjoint: it adds every entry of a column-gradient matrix back onto the input
// position it was copied from, which is exactly dx = col2im(dy * w^T).
#include <algorithm>
#include <cstring>

#include "hubble/kernels/conv_geometry.hpp"

namespace hubble::kernels {

// Copies rows [row_begin, row_end) of the im2col matrix into col (which points at row_begin).
template <class T>
void im2col_rows(const ConvGeometry& g, const T* x, T* col, std::size_t row_begin, std::size_t row_end) {
  const std::size_t patch = g.patch();
  for (std::size_t r = row_begin; r < row_end; ++r) {
    const int n = int(r / (std::size_t(g.oh) * g.ow));
    const int rem = int(r % (std::size_t(g.oh) * g.ow));
    const int oy = rem / g.ow, ox = rem % g.ow;
    T* out = col + (r - row_begin) * patch;
    for (int ky = 0; ky < g.k; ++ky) {
      const int iy = oy * g.stride + ky - g.pad_top;
      for (int kx = 0; kx < g.k; ++kx, out += g.c) {
        const int ix = ox * g.stride + kx - g.pad_left;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) std::fill(out, out + g.c, T(0));
        else std::memcpy(out, x + ((std::size_t(n) * g.h + iy) * g.w + ix) * g.c, sizeof(T) * g.c);
      }
    }
  }
}

template <class T>
void im2col(const ConvGeometry& g, const T* x, T* col) {
  const std::ptrdiff_t rows = std::ptrdiff_t(g.out_pixels());
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t r0 = 0; r0 < rows; r0 += 64)
    im2col_rows(g, x, col + std::size_t(r0) * g.patch(), std::size_t(r0), std::size_t(std::min<std::ptrdiff_t>(r0 + 64, rows)));
}

// dx = col2im(dcol). Parallel over samples: a sample's rows only touch that sample's dx.
template <class T>
void col2im(const ConvGeometry& g, const T* dcol, T* dx) {
  const std::size_t patch = g.patch();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < g.n; ++n) {
    T* dxn = dx + std::size_t(n) * g.h * g.w * g.c;
    std::fill(dxn, dxn + std::size_t(g.h) * g.w * g.c, T(0));
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox) {
        const T* in = dcol + ((std::size_t(n) * g.oh + oy) * g.ow + ox) * patch;
        for (int ky = 0; ky < g.k; ++ky) {
          const int iy = oy * g.stride + ky - g.pad_top;
          for (int kx = 0; kx < g.k; ++kx, in += g.c) {
            const int ix = ox * g.stride + kx - g.pad_left;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            T* out = dxn + (std::size_t(iy) * g.w + ix) * g.c;
            for (int c = 0; c < g.c; ++c) out[c] += in[c];
          }
        }
      }
  }
}

}  // namespace hubble::kernels
