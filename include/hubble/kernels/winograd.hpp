#pragma once
// kernels::Winograd (F(2x2,3x3)) and kernels::Winograd4x4 (F(4x4,3x3)) — Winograd's minimal
// filtering for 3x3, stride-1 convolutions (Lavin & Gray 2016); every other shape is handed to
// ImplicitGemm.
//
// An m x m block of outputs needs an a x a tile d of the input, a = m + 2. With the constant
// matrices B^T (a x a), G (a x 3) and A^T (m x a) of Basis<m> below,
//   forward:  Y = A^T [ sum_c (G g_cf G^T) .* (B^T d_c B) ] A           (per tile, per filter f)
// i.e. for each of the a*a positions xi of the "Winograd domain", one matrix product
//     M_xi[tile][f] = sum_c V_xi[tile][c] * U_xi[c][f],   V = B^T d B,  U = G g G^T
// a*a products of (tiles x c)(c x f) replace the direct (m*m tiles x 9c)(9c x f): 9m^2/a^2 fewer
// multiplications — 2.25x for F(2x2,3x3), 4x for F(4x4,3x3) — paid for by the transforms' adds.
//   weights:  dg_cf = G^T [ sum_tiles V_c .* (A dY_f A^T) ] G           (the adjoint of the above)
//             i.e. a*a products (c x tiles)(tiles x f), then the a x a -> 3 x 3 transform.
//   input:    dx = full correlation of dy with the kernel rotated 180 degrees and c <-> f swapped:
//             the forward algorithm again, on dy with padding 2 - pad. Where the input is much
//             larger than the output (conv4: 36 vs 16 pixels) that multiplies mostly zeros, so
//             dx goes to ImplicitGemm's col2im path when h*w > 1.6 oh*ow.
// The transforms are written once, generically: each is a product with a constant matrix whose
// coefficients are template arguments, so zero terms vanish and +-1 become adds at compile time;
// they run on whole vectors of channels (NHWC keeps channels contiguous). Tiles are processed in
// blocks sized so that a block's V and M stay in L2; the products run on gemm.hpp's micro-kernel.
// The weight gradient sums its tiles in parts fixed by the shape, added in order (reproducible
// for any thread count). F(4x4,3x3)'s larger coefficients cost accuracy: in float it differs from
// direct convolution by ~1e-5 relative, F(2x2,3x3) by ~1e-6 (tests allow 1e-4).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/gemm.hpp"
#include "hubble/kernels/implicit_gemm.hpp"

#define HUBBLE_FP32_BODY "hubble/kernels/fp32/winograd_body.inl"
#include "hubble/kernels/fp32/instantiate.inl"
#undef HUBBLE_FP32_BODY

namespace hubble::kernels {

// The variants the layers name: each call runs the copy fp32_path() picks (fp32/isa.hpp). What
// each function computes is written beside it in fp32/winograd_body.inl.
template <int M>
struct WinogradT {
  static constexpr const char* name = M == 2 ? "winograd" : "winograd-4x4";
  static bool applies(const ConvGeometry& g) { return portable::WinogradT<M>::applies(g); }
  static bool input_gradient_applies(const ConvGeometry& g) { return portable::WinogradT<M>::input_gradient_applies(g); }

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(WinogradT<M>::forward, (g, x, w, b, y, ws));
  }
  template <class T>
  static void forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(WinogradT<M>::forward_relu, (g, x, w, b, y, ws));
  }
  template <class T>
  static bool forward_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* b, int P, T* y,
                                   std::uint8_t* argmax, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(WinogradT<M>::forward_relu_maxpool, (g, x, w, b, P, y, argmax, ws));
  }
  template <class T>
  static void forward_affine_relu(const ConvGeometry& g, const T* x, const T* w, const T* scale, const T* shift, T* y,
                                  Workspace<T>& ws) {
    HUBBLE_FP32_CALL(WinogradT<M>::forward_affine_relu, (g, x, w, scale, shift, y, ws));
  }
  template <class T>
  static bool forward_affine_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* scale,
                                          const T* shift, int P, T* y, std::uint8_t* argmax, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(WinogradT<M>::forward_affine_relu_maxpool, (g, x, w, scale, shift, P, y, argmax, ws));
  }
  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    HUBBLE_FP32_CALL(WinogradT<M>::backward, (g, x, w, dy, dw, db, dx, ws));
  }
};

using Winograd = WinogradT<2>;
using Winograd4x4 = WinogradT<4>;

}  // namespace hubble::kernels
