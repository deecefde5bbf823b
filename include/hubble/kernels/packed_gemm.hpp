#pragma once
// kernels::PackedGemm — im2col followed by hubble's own packed, cache-blocked GEMM (gemm.hpp).
// The same data flow as Im2colEigen, with the bias folded into the GEMM's store:
//   forward:  col = im2col(x)                 (n*oh*ow) x (k*k*c)
//             y   = col * w + b               bias added in the micro-kernel's epilogue
//   backward: dw  = col^T * dy                col^T is read in place by the packing routine
//             db  = column sums of dy         fixed-order partial sums
//             dx  = col2im(dy * w^T)          w^T is read in place by the packing routine
// It materialises the whole im2col matrix (74 MB for conv1 at batch 64); ImplicitGemm does not.
#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/gemm.hpp"
#include "hubble/kernels/im2col.hpp"

namespace hubble::kernels {

struct PackedGemm {
  static constexpr const char* name = "im2col+packed-gemm";

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws,
                      bool relu = false) {
    const int rows = int(g.out_pixels()), patch = int(g.patch());
    T* col = ws.get_a(std::size_t(rows) * patch);
    im2col(g, x, col);
    gemm::Epilogue<T> ep;
    ep.bias = b;
    ep.relu = relu;
    gemm::gemm(gemm::Trans::no, gemm::Trans::no, rows, g.f, patch, col, patch, w, g.f, y, g.f, ep);
  }

  // y = max(conv(x, w) + b, 0): the ReLU is applied in the micro-kernel's store.
  template <class T>
  static void forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    forward(g, x, w, b, y, ws, true);
  }

  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    const int rows = int(g.out_pixels()), patch = int(g.patch());
    T* col = ws.get_a(std::size_t(rows) * patch);
    if (dw) {
      im2col(g, x, col);  // recomputed: cheaper than keeping every layer's col alive between passes
      gemm::gemm(gemm::Trans::yes, gemm::Trans::no, patch, g.f, rows, col, patch, dy, g.f, dw, g.f);
      gemm::column_sums(dy, rows, g.f, db);
    }
    if (!dx) return;
    T* dcol = col;  // col is no longer needed: reuse it for the column gradient
    gemm::gemm(gemm::Trans::no, gemm::Trans::yes, rows, patch, g.f, dy, g.f, w, g.f, dcol, patch);
    col2im(g, dcol, dx);
  }
};

}  // namespace hubble::kernels
