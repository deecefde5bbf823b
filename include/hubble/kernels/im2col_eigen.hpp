#pragma once
// kernels::Im2colEigen — convolution as im2col followed by one Eigen GEMM.
//   forward:  col = im2col(x)              (n*oh*ow) x (k*k*c)
//             y   = col * w + 1 b^T         (n*oh*ow) x f
//   backward: dw  = col^T * dy              (k*k*c) x f
//             db  = column sums of dy       f
//             dx  = col2im(dy * w^T)        n x h x w x c
// Eigen runs the products on OpenMP threads; im2col and col2im are parallel loops.
#include "hubble/core/tensor.hpp"
#include "hubble/kernels/im2col.hpp"

namespace hubble::kernels {

struct Im2colEigen {
  static constexpr const char* name = "im2col+eigen";

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    const Eigen::Index rows = Eigen::Index(g.out_pixels()), patch = Eigen::Index(g.patch());
    T* col = ws.get_a(std::size_t(rows) * patch);
    im2col(g, x, col);
    MatrixMap<T> Y(y, rows, g.f);
    Y.noalias() = ConstMatrixMap<T>(col, rows, patch) * ConstMatrixMap<T>(w, patch, g.f);
    Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b, g.f);
  }

  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    const Eigen::Index rows = Eigen::Index(g.out_pixels()), patch = Eigen::Index(g.patch());
    T* col = ws.get_a(std::size_t(rows) * patch);
    ConstMatrixMap<T> DY(dy, rows, g.f);
    if (dw) {
      im2col(g, x, col);  // recomputed: cheaper than keeping every layer's col alive between passes
      MatrixMap<T>(dw, patch, g.f).noalias() = ConstMatrixMap<T>(col, rows, patch).transpose() * DY;
      Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db, g.f) = DY.colwise().sum();
    }
    if (!dx) return;
    T* dcol = col;  // col is no longer needed: reuse it for the column gradient
    MatrixMap<T>(dcol, rows, patch).noalias() = DY * ConstMatrixMap<T>(w, patch, g.f).transpose();
    col2im(g, dcol, dx);
  }
};

}  // namespace hubble::kernels
