#pragma once
// kernels::Naive — direct convolution, written as the definition reads. The reference every
// other variant is validated against; slow on purpose (no blocking, no vector tricks).
//
//   y[n,oy,ox,f] = b[f] + sum_{ky,kx,c} x[n, oy*s+ky-pt, ox*s+kx-pl, c] * w[ky,kx,c,f]
//   dw[ky,kx,c,f] = sum_{n,oy,ox} x[n, oy*s+ky-pt, ox*s+kx-pl, c] * dy[n,oy,ox,f]
//   db[f]         = sum_{n,oy,ox} dy[n,oy,ox,f]
//   dx[n,iy,ix,c] = sum over (oy,ox,ky,kx) with oy*s+ky-pt = iy, ox*s+kx-pl = ix of w[ky,kx,c,f] * dy[n,oy,ox,f]
// Out-of-range input positions are the zero padding.
#include <algorithm>

#include "hubble/kernels/conv_geometry.hpp"

namespace hubble::kernels {

struct Naive {
  static constexpr const char* name = "naive";

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>&) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < g.n; ++n)
      for (int oy = 0; oy < g.oh; ++oy)
        for (int ox = 0; ox < g.ow; ++ox)
          for (int f = 0; f < g.f; ++f) {
            T acc = b[f];
            for (int ky = 0; ky < g.k; ++ky)
              for (int kx = 0; kx < g.k; ++kx) {
                const int iy = oy * g.stride + ky - g.pad_top, ix = ox * g.stride + kx - g.pad_left;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                for (int c = 0; c < g.c; ++c)
                  acc += x[((std::size_t(n) * g.h + iy) * g.w + ix) * g.c + c] *
                         w[((std::size_t(ky) * g.k + kx) * g.c + c) * g.f + f];
              }
            y[((std::size_t(n) * g.oh + oy) * g.ow + ox) * g.f + f] = acc;
          }
  }

  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>&) {
    if (dw) std::fill(dw, dw + g.patch() * g.f, T(0));
    if (db) std::fill(db, db + g.f, T(0));
    if (dx) std::fill(dx, dx + g.in_size(), T(0));
    for (int n = 0; n < g.n; ++n)
      for (int oy = 0; oy < g.oh; ++oy)
        for (int ox = 0; ox < g.ow; ++ox)
          for (int f = 0; f < g.f; ++f) {
            const T d = dy[((std::size_t(n) * g.oh + oy) * g.ow + ox) * g.f + f];
            if (db) db[f] += d;
            for (int ky = 0; ky < g.k; ++ky)
              for (int kx = 0; kx < g.k; ++kx) {
                const int iy = oy * g.stride + ky - g.pad_top, ix = ox * g.stride + kx - g.pad_left;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                for (int c = 0; c < g.c; ++c) {
                  const std::size_t xi = ((std::size_t(n) * g.h + iy) * g.w + ix) * g.c + c;
                  const std::size_t wi = ((std::size_t(ky) * g.k + kx) * g.c + c) * g.f + f;
                  if (dw) dw[wi] += x[xi] * d;
                  if (dx) dx[xi] += w[wi] * d;
                }
              }
          }
  }
};

}  // namespace hubble::kernels
