#pragma once
// The convolution variant a Conv2D uses when none is named: kernels::Tuned, which picks per layer
// geometry the variant measured fastest on the paper network (docs/kernels.md has the tables and
// the commands that reproduce them):
//   3x3, stride 1, at least 8 output tiles of 4x4 in the batch -> Winograd F(4x4,3x3)
//                                                  (conv2, conv3; conv4 from batch 8 on)
//   everything else                              -> ImplicitGemm (conv1; conv4 below batch 8)
// A Conv2D followed by ReLU is run with the ReLU in the variant's store (forward_relu); one
// followed by ReLU and MaxPool<P> also pools in the same pass (ImplicitGemm: any P; Winograd:
// P = 2 or 4, which divide its 4x4 output tiles).
// Winograd's GEMMs run one row per tile, so with fewer tiles than the micro-kernel has rows most
// of its work is wasted: conv4 (4x4 output, one tile per image) at batch 1 is 1.6x slower than
// ImplicitGemm, at batch 32 1.6x faster. F(4x4,3x3) beat F(2x2,3x3) on every paper layer.
// The choice depends on the geometry only (never on threads or timing), so runs are
// reproducible; a layer with a tiny output may run different arithmetic at batch < 8 than at
// batch >= 8 (results then differ by rounding, ~1e-6 relative). PyTorch-style per-variant
// networks: PaperNetT<T, ConvKernel> takes any single variant instead.
// Every variant is included here so that Conv2D<..., kernels::X> works after any layer header.
#include "hubble/kernels/im2col_eigen.hpp"
#include "hubble/kernels/implicit_gemm.hpp"
#include "hubble/kernels/naive.hpp"
#include "hubble/kernels/packed_gemm.hpp"
#include "hubble/kernels/winograd.hpp"

namespace hubble::kernels {

struct Tuned {
  static constexpr const char* name = "tuned";
  static bool use_winograd(const ConvGeometry& g) {
    return Winograd4x4::applies(g) && long(g.n) * ((g.oh + 3) / 4) * ((g.ow + 3) / 4) >= 8;
  }

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    if (use_winograd(g)) Winograd4x4::forward(g, x, w, b, y, ws);
    else ImplicitGemm::forward(g, x, w, b, y, ws);
  }
  template <class T>
  static void forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    if (use_winograd(g)) Winograd4x4::forward_relu(g, x, w, b, y, ws);
    else ImplicitGemm::forward_relu(g, x, w, b, y, ws);
  }
  // Conv2D + ReLU + MaxPool<P> in one pass: ImplicitGemm pools any P; Winograd F(4x4) pools
  // P = 2 or 4 in its output transform and declines (false) other P, which the network then runs
  // as Conv2D+ReLU followed by the pool.
  template <class T>
  static bool forward_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* b, int P, T* y,
                                   std::uint8_t* argmax, Workspace<T>& ws) {
    if (use_winograd(g)) return Winograd4x4::forward_relu_maxpool(g, x, w, b, P, y, argmax, ws);
    return ImplicitGemm::forward_relu_maxpool(g, x, w, b, P, y, argmax, ws);
  }
  // The same with BatchNorm folded in: y = max(scale * conv(x, w) + shift, 0) (network/fusion.hpp).
  template <class T>
  static void forward_affine_relu(const ConvGeometry& g, const T* x, const T* w, const T* scale, const T* shift, T* y,
                                  Workspace<T>& ws) {
    if (use_winograd(g)) Winograd4x4::forward_affine_relu(g, x, w, scale, shift, y, ws);
    else ImplicitGemm::forward_affine_relu(g, x, w, scale, shift, y, ws);
  }
  template <class T>
  static bool forward_affine_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* scale, const T* shift,
                                          int P, T* y, std::uint8_t* argmax, Workspace<T>& ws) {
    if (use_winograd(g)) return Winograd4x4::forward_affine_relu_maxpool(g, x, w, scale, shift, P, y, argmax, ws);
    return ImplicitGemm::forward_affine_relu_maxpool(g, x, w, scale, shift, P, y, argmax, ws);
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
