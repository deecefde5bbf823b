#pragma once
// ConvGeometry: everything a convolution kernel needs to know about one call.
//
// A convolution kernel variant is a policy type with two static functions:
//   forward (g, x, w, b, y, ws):          y  = conv(x, w) + b
//   backward(g, x, w, dy, dw, db, dx, ws): dw, db, and dx (skipped when dx == nullptr; dw and db
//                                          are skipped when dw == nullptr, e.g. to time dx alone)
// over these layouts (all row-major, NHWC):
//   x  [n][h][w][c]          input batch
//   w  [k][k][c][f]          kernel, i.e. a (k*k*c) x f matrix whose rows follow im2col's patch order
//   b  [f]                   bias
//   y  [n][oh][ow][f]        output batch; equivalently an (n*oh*ow) x f matrix
// Gradients are written, not accumulated. ws is scratch memory the variant may keep between calls.
// Every variant must match kernels::Naive (the reference) to rounding; tests/test_conv_kernels.cpp
// and the benchmarks check that before timing anything.
#include <cstddef>
#include <cstring>
#include <vector>

#include "hubble/core/aligned.hpp"

namespace hubble::kernels {

struct ConvGeometry {
  int n = 0, h = 0, w = 0, c = 0;        // input: batch, height, width, channels
  int k = 1, stride = 1;                 // square kernel side and stride
  int pad_top = 0, pad_left = 0;         // zero padding before the first row / column
  int oh = 0, ow = 0, f = 0;             // output height, width, filters

  std::size_t patch() const { return std::size_t(k) * k * c; }            // im2col columns
  std::size_t out_pixels() const { return std::size_t(n) * oh * ow; }      // im2col rows
  std::size_t in_size() const { return std::size_t(n) * h * w * c; }
  std::size_t out_size() const { return out_pixels() * f; }
  // Floating-point operations of the forward pass: 2 per multiply-add (out_pixels * patch * f
  // multiply-adds). The weight gradient and the input gradient cost the same again each.
  double forward_flops() const { return 2.0 * double(out_pixels()) * double(patch()) * f; }
};

// What Workspace::prepared holds: weights rearranged once for the forward pass.
enum class PreparedWeights {
  none,
  implicit_gemm_panels,  // ImplicitGemm: the weights packed into the micro-kernel's NR-wide panels
  winograd_2x2,          // Winograd F(2x2,3x3): U = G g G^T, one packed matrix per xi
  winograd_4x4,          // Winograd F(4x4,3x3): the same for the 6x6 tiles
  bf16_weight_panels,    // lowp::Bf16: the weights rounded to bf16 and packed in k-pairs
};

// Scratch memory owned by a layer and lent to its kernel. Kept across calls so a training run
// allocates once.
template <class T>
struct Workspace {
  AlignedVector<T> a, b, c;
  T* get_a(std::size_t n) { if (a.size() < n) a.resize(n); return a.data(); }
  T* get_b(std::size_t n) { if (b.size() < n) b.resize(n); return b.data(); }
  T* get_c(std::size_t n) { if (c.size() < n) c.resize(n); return c.data(); }  // e.g. partial sums

  // Weights prepared for the forward pass (packed, Winograd-transformed), kept while the weights
  // do not change, so inference does not redo it on every call. `kind` names the preparation.
  // `layout` tells apart packings of the same kind for different micro-kernels (their NR: the
  // fp32 kernels' AVX2 and AVX-512 copies, kernels/fp32/isa.hpp).
  AlignedVector<T> prepared, prepared_from;
  PreparedWeights prepared_kind = PreparedWeights::none;
  int prepared_layout = 0;
  // True when `prepared` holds preparation `kind` (in `layout`) of exactly these n weights (bit for
  // bit). Checking reads every weight and its copy (368 KB a forward for PaperNet's Winograd
  // layers, about 6% of a batch-1 forward), unless the layer's owner declared its weights constant
  // (set_weights_constant): then one check of an array is trusted until that is switched off.
  bool has_prepared(PreparedWeights kind, const T* w, std::size_t n, int layout = 0) {
    if (prepared_kind != kind || prepared_layout != layout || prepared_from.size() != n) return false;
    if (weights_constant_ && trusted_.array == w) return true;
    if (std::memcmp(w, prepared_from.data(), n * sizeof(T)) != 0) return false;
    if (weights_constant_) trusted_.array = w;
    return true;
  }
  // Records that `kind` of these weights is about to be written to the returned buffer.
  T* prepare(PreparedWeights kind, const T* w, std::size_t n, std::size_t size, int layout = 0) {
    prepared_kind = kind;
    prepared_layout = layout;
    prepared_from.assign(w, w + n);
    trusted_.array = weights_constant_ ? w : nullptr;
    if (prepared.size() < size) prepared.resize(size);
    return prepared.data();
  }
  // On: the owner promises that the weights this workspace's kernel is given do not change until
  // it is switched off again, so has_prepared checks each array once instead of on every call.
  // Either way the next call checks again, so weights changed before the switch are seen.
  void set_weights_constant(bool on) {
    weights_constant_ = on;
    trusted_.array = nullptr;
  }

 private:
  // The weights array last checked while constant. A copy of the workspace (a copied layer, with
  // its own weights) starts untrusted, so it never relies on another layer's check.
  struct Trusted {
    const T* array = nullptr;
    Trusted() = default;
    Trusted(const Trusted&) {}
    Trusted& operator=(const Trusted&) {
      array = nullptr;
      return *this;
    }
  };
  bool weights_constant_ = false;
  Trusted trusted_;
};

}  // namespace hubble::kernels
