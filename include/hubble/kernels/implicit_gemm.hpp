#pragma once
// kernels::ImplicitGemm — convolution as a matrix product whose im2col matrix is never built.
//
// The GEMM micro-kernel (gemm.hpp) reads its MR rows of A through row pointers and a
// segmented walk over k. For a convolution, row r of the im2col matrix (output pixel p) is
// k segments — one per kernel row ky — of k*c contiguous input values:
//     col[p][(ky*k + kx)*c + ci] = x[n, oy*s + ky, ox*s + kx, ci]
//     -> rows[r] = &x[n, oy*s, ox*s, 0],  seg_off[ky] = ky * W * c,  seg_len = k * c,  step 1
// so the micro-kernel multiplies straight out of the input image (in L1/L2), with no copy.
//   forward:  y  = col * w + b                 A = image rows (as above), B = packed w
//   weights:  dw = col^T * dy                  A row i = one patch position (ky, kx, ci) read at
//                                              every output pixel: rows[r] = &x[0, ky, kx, ci],
//                                              one segment per output row, step s * c (rows
//                                              shorter than 8 pixels: packed on the fly instead);
//                                              B = packed dy; db summed while dy is packed
//   input:    dx = col2im(dy * w^T)            per group of whole samples: the column gradient
//                                              goes to a per-thread buffer (L2), then is scattered.
//             (The alternative, dx = conv(pad(dy), rot180(w)^T), multiplies the k-1 border of
//             zeros too — 2.25x the work for conv4 — and measured slower on every paper layer.)
// Padding is applied by copying the input into a zero-padded buffer once per call, so every
// read in the hot loop is in bounds.  Sums run in a fixed order (the weight gradient is split
// into parts chosen from the shape alone, added in order), so results do not depend on the
// number of threads.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/gemm.hpp"
#include "hubble/kernels/im2col.hpp"

#define HUBBLE_FP32_BODY "hubble/kernels/fp32/implicit_gemm_body.inl"
#include "hubble/kernels/fp32/instantiate.inl"
#undef HUBBLE_FP32_BODY

namespace hubble::kernels {

// The variant the layers name: each call runs the copy fp32_path() picks (fp32/isa.hpp). What
// each function computes is written beside it in fp32/implicit_gemm_body.inl.
struct ImplicitGemm {
  static constexpr const char* name = "implicit-gemm";

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(ImplicitGemm::forward, (g, x, w, b, y, ws));
  }
  template <class T>
  static void forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(ImplicitGemm::forward_relu, (g, x, w, b, y, ws));
  }
  template <class T>
  static bool forward_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* b, int P, T* y,
                                   std::uint8_t* argmax, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(ImplicitGemm::forward_relu_maxpool, (g, x, w, b, P, y, argmax, ws));
  }
  template <class T>
  static void forward_affine_relu(const ConvGeometry& g, const T* x, const T* w, const T* scale, const T* shift, T* y,
                                  Workspace<T>& ws) {
    HUBBLE_FP32_CALL(ImplicitGemm::forward_affine_relu, (g, x, w, scale, shift, y, ws));
  }
  template <class T>
  static bool forward_affine_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* scale,
                                          const T* shift, int P, T* y, std::uint8_t* argmax, Workspace<T>& ws) {
    HUBBLE_FP32_CALL(ImplicitGemm::forward_affine_relu_maxpool, (g, x, w, scale, shift, P, y, argmax, ws));
  }
  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    HUBBLE_FP32_CALL(ImplicitGemm::backward, (g, x, w, dy, dw, db, dx, ws));
  }
};

}  // namespace hubble::kernels
