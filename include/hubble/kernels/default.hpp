#pragma once
// The convolution variant a Conv2D uses when none is named: kernels::Tuned, which picks per
// layer shape the variant measured fastest on the paper network (docs/kernels.md has the tables
// and the commands that reproduce them):
//   3x3, stride 1, output of at least 8x8 pixels -> Winograd F(2x2,3x3)  (conv2, conv3)
//   everything else                               -> ImplicitGemm          (conv1, conv4)
// Below 8x8 outputs Winograd's tiles are too few to amortise its transforms (conv4: 4x4 output,
// Winograd measured 0.6-0.9x ImplicitGemm). The choice depends on the shape only, so a layer
// always runs the same arithmetic, and PaperNetT<T, ConvKernel> keeps working with any variant.
// Every variant is included here so that Conv2D<..., kernels::X> works after any layer header.
#include "hubble/kernels/im2col_eigen.hpp"
#include "hubble/kernels/implicit_gemm.hpp"
#include "hubble/kernels/naive.hpp"
#include "hubble/kernels/packed_gemm.hpp"
#include "hubble/kernels/winograd.hpp"

namespace hubble::kernels {

struct Tuned {
  static constexpr const char* name = "tuned";
  static bool use_winograd(const ConvGeometry& g) { return Winograd::applies(g) && g.oh >= 8 && g.ow >= 8; }

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    if (use_winograd(g)) Winograd::forward(g, x, w, b, y, ws);
    else ImplicitGemm::forward(g, x, w, b, y, ws);
  }
  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    if (use_winograd(g)) Winograd::backward(g, x, w, dy, dw, db, dx, ws);
    else ImplicitGemm::backward(g, x, w, dy, dw, db, dx, ws);
  }
};

using Default = Tuned;

}  // namespace hubble::kernels
