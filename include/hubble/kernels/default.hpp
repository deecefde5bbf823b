#pragma once
// The convolution variant a Conv2D uses when none is named: kernels::Tuned, which picks per layer
// shape the variant measured fastest on the paper network (docs/kernels.md has the tables and the
// commands that reproduce them):
//   3x3, stride 1, output >= 8x8  -> Winograd F(4x4,3x3)   (conv2, conv3)
//   everything else               -> ImplicitGemm          (conv1, conv4)
// Below 8x8 outputs Winograd's tiles are too few to amortise its transforms (conv4: 4x4 output,
// Winograd measured 0.4-0.9x ImplicitGemm); F(4x4,3x3) beat F(2x2,3x3) on conv2 and conv3 in every
// pass. The choice depends on the shape only, so a layer always runs the same arithmetic;
// PaperNetT<T, ConvKernel> takes any single variant instead.
// Every variant is included here so that Conv2D<..., kernels::X> works after any layer header.
#include "hubble/kernels/im2col_eigen.hpp"
#include "hubble/kernels/implicit_gemm.hpp"
#include "hubble/kernels/naive.hpp"
#include "hubble/kernels/packed_gemm.hpp"
#include "hubble/kernels/winograd.hpp"

namespace hubble::kernels {

struct Tuned {
  static constexpr const char* name = "tuned";
  static bool use_winograd(const ConvGeometry& g) { return Winograd4x4::applies(g) && g.oh >= 8 && g.ow >= 8; }

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    if (use_winograd(g)) Winograd4x4::forward(g, x, w, b, y, ws);
    else ImplicitGemm::forward(g, x, w, b, y, ws);
  }
  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    if (use_winograd(g)) Winograd4x4::backward(g, x, w, dy, dw, db, dx, ws);
    else ImplicitGemm::backward(g, x, w, dy, dw, db, dx, ws);
  }
};

using Default = Tuned;

}  // namespace hubble::kernels
