#pragma once
// D4Lift<Fields, Kernel, Stride = 1, Options...> and D4Conv<Fields, Kernel, Stride = 1, Options...>:
// convolutions that commute with the 8 rotations and mirrors of the square (group convolutions for
// the dihedral group D4; conventions and group notation in d4.hpp). Options are Conv2D's: a
// padding (Valid, the default, or Same) and a kernel variant (kernels::Default when none is named).
//
// D4Lift: image -> D4 feature map.       x [n, H, W, C]  ->  y [n, OH, OW, 8 * Fields]
//   compact parameters  w [K][K][C][Fields] (Conv2D's layout), b [Fields]
//   y[f, g] = conv(x, g . w_f) + b_f      (channel f * 8 + g; one bias per field)
// D4Conv: D4 feature map -> D4 feature map.   x [n, H, W, 8 * Cf]  ->  y [n, OH, OW, 8 * Fields]
//   compact parameters  w [K][K][8 * Cf][Fields]  (input channel c * 8 + h), b [Fields]
//   y[f, g] = b_f + sum_{c, h} conv(x[c, h], g . w[f][c][g^-1 h])       (g^-1 h = compose(h, inverse(g)))
//
// Why that index (the derivation). With conv(t . x, w) = t . conv(x, t^-1 . w) (substitute the
// summation offset u = t v in the cross-correlation; exact under the size rule below) and the input
// transforming as (t . X)[c, h] = t . X[c, t^-1 h]:
//   y'[f, g] = sum_{c,h} conv(t . X[c, t^-1 h], g . w[f][c][g^-1 h])
//            = t . sum_{c,h} conv(X[c, t^-1 h], (t^-1 g) . w[f][c][g^-1 h])
//            = t . sum_{c,h'} conv(X[c, h'], g' . w[f][c][g'^-1 h'])     with h' = t^-1 h, g' = t^-1 g
//            = t . y[f, t^-1 g]                                           (so g^-1 h = g'^-1 h')
// i.e. D4Conv(t . X) = t . D4Conv(X) in the same representation as its input, and likewise
// D4Lift(t . x) = t . D4Lift(x) (C plain channels: drop h). tests/test_d4.cpp checks both for all 8 t.
//
// How: the layer holds a plain Conv2DLayer with 8 * Fields filters (the expanded filter bank
//   W[ky][kx][c*8 + h][f*8 + g] = (g . w[f][c][g^-1 h])[ky][kx],   B[f*8 + g] = b[f])
// and refills W, B from the compact w, b at every forward, so every kernel variant (Naive,
// Im2colEigen, ImplicitGemm, Winograd, ...) and the Conv2D+ReLU(+MaxPool) fusion apply unchanged.
// Backward runs the plain layer's backward (dx and the expanded dW, dB) and folds the gradients
// back: every compact weight w[j] appears in exactly 8 places of W (one per g), so by the chain rule
// through that weight sharing dL/dw[j] = sum over those 8 places of dL/dW, i.e.
//   dw[f][c][h'] = sum_g g^-1 . dW[f*8 + g][c*8 + g h']     and   db[f] = sum_g dB[f*8 + g].
// Cost over a Conv2D of 8 * Fields filters: the expansion and the fold, both O(weights), not O(pixels).
//
// Exactness (the size rule): rotating commutes with the convolution only when the output grid is
// centred in the input: square inputs and (H - K) % Stride == 0 for Valid; for Same, when the
// padding is symmetric ((OH - 1) * Stride + K - H even and >= 0, e.g. stride 1 with an odd kernel).
// A following MaxPool<2> needs an even side. Other sizes compile and train, but the symmetry is
// only approximate (a pixel row is dropped on one side only); this is not a static_assert.
//
// Initialisation: Glorot- (or He-) uniform over the compact weights with the fans of the expanded
// convolution, fan_in = K*K*C_in (C_in: input channels, 8 * Cf for D4Conv) and fan_out =
// K*K*8*Fields, so the expanded bank has Conv2D's scale for a layer of that shape; biases 0.
#include <cstdint>
#include <string>
#include <vector>

#include "hubble/layers/conv2d.hpp"
#include "hubble/layers/d4.hpp"

namespace hubble {

template <class In, class T, int Fields, int K, int S, class Pad, class Kernel, bool Lifting>
class D4ConvLayer {
  static_assert(Fields > 0, "D4Conv: the number of fields must be positive");
  static_assert(Lifting || In::c % d4::order == 0,
                "D4Conv: input channels must be a multiple of 8 (a D4 feature map, 8 orientations per field); "
                "start the network with D4Lift");
  static constexpr int group_in = Lifting ? 1 : d4::order;  // orientations per input field
  static constexpr int C = In::c;
  using Expanded = Conv2DLayer<In, T, d4::order * Fields, K, S, Pad, Kernel>;

 public:
  using in_shape = In;
  using out_shape = typename Expanded::out_shape;
  using kernel = Kernel;
  static constexpr int fields = Fields;
  static constexpr std::size_t weight_count = std::size_t(K) * K * C * Fields;
  static constexpr std::size_t parameter_count = weight_count + Fields;
  static constexpr bool is_activation = false;
  static constexpr const char* kind = Lifting ? "D4Lift" : "D4Conv";
  static std::string spec() {
    return std::string(kind) + "<" + std::to_string(Fields) + "," + std::to_string(K) + "," + std::to_string(S) + "," +
           Pad::name + ">";
  }
  // Checkpoints store the compact kernel as [kh, kw, in, fields] (parameter_shape.hpp).
  static std::vector<std::size_t> parameter_shape(const std::string& suffix, std::size_t n) {
    if (suffix == "kernel") return {std::size_t(K), std::size_t(K), std::size_t(C), std::size_t(Fields)};
    return {n};
  }

  D4ConvLayer() : w_(weight_count), b_(Fields), dw_(weight_count), db_(Fields) {}

  void initialize(Rng& rng, Init init) {
    init_uniform_weights(w_.data(), w_.size(), double(K * K * C), double(K * K * d4::order * Fields), init, rng);
    std::fill(b_.begin(), b_.end(), T(0));
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode mode) {
    check_input<In>(x, kind);
    expand();
    expanded_.forward(x, y, mode);
  }
  // Fusion (network/fusion.hpp) with a following ReLU (and MaxPool), as Conv2D.
  void forward_relu(const Tensor<T>& x, Tensor<T>& y) {
    check_input<In>(x, kind);
    expand();
    expanded_.forward_relu(x, y);
  }
  template <int P>
  bool forward_relu_maxpool(const Tensor<T>& x, Tensor<T>& y, std::vector<std::uint8_t>& argmax) {
    check_input<In>(x, kind);
    expand();
    return expanded_.template forward_relu_maxpool<P>(x, y, argmax);
  }
  // Needs x only (y may be empty after a fused forward). Uses the filter bank of the last forward.
  void backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx) {
    expanded_.backward(x, y, dy, dx);
    fold_gradients();
  }

  template <class Fn>
  void for_each_parameter(Fn&& f) {
    f("kernel", w_.data(), dw_.data(), w_.size());
    f("bias", b_.data(), db_.data(), b_.size());
  }

  // The bank is refilled on every forward, with the same values while the compact weights are constant.
  void set_weights_constant(bool on) { expanded_.set_weights_constant(on); }
  // The plain convolution that runs the expanded bank (its weights are those of the last forward).
  const Expanded& expanded() const { return expanded_; }
  // Fills the expanded bank from the compact parameters (forward does it; exposed for inspection).
  void expand() {
    const std::vector<std::uint32_t>& where = placement();
    T* W = expanded_.weights();
    for (std::size_t j = 0; j < weight_count; ++j)
      for (int g = 0; g < d4::order; ++g) W[where[j * d4::order + g]] = w_[j];
    T* B = expanded_.biases();
    for (int f = 0; f < Fields; ++f)
      for (int g = 0; g < d4::order; ++g) B[f * d4::order + g] = b_[f];
  }

 private:
  // dw[j] = sum over the 8 expanded copies of w[j] of dW (in g order, so deterministic).
  void fold_gradients() {
    const std::vector<std::uint32_t>& where = placement();
    const T* dW = expanded_.weight_gradients();
    for (std::size_t j = 0; j < weight_count; ++j) {
      T sum = T(0);
      for (int g = 0; g < d4::order; ++g) sum += dW[where[j * d4::order + g]];
      dw_[j] = sum;
    }
    const T* dB = expanded_.bias_gradients();
    for (int f = 0; f < Fields; ++f) {
      T sum = T(0);
      for (int g = 0; g < d4::order; ++g) sum += dB[f * d4::order + g];
      db_[f] = sum;
    }
  }

  // placement()[j * 8 + g] = the index in W of the copy of compact weight j in orientation g.
  // Built once per layer type from the definition of W above: for every expanded entry
  // (ky, kx, c*8 + h, f*8 + g) the compact entry it copies is (g . w)[ky][kx], i.e. w at the
  // source pixel of (ky, kx) under g (d4::source_of), input channel c*8 + g^-1 h, field f.
  static const std::vector<std::uint32_t>& placement() {
    static const std::vector<std::uint32_t> table = [] {
      static_assert(weight_count * d4::order < (std::size_t(1) << 32), "D4Conv: filter bank too large");
      std::vector<std::uint32_t> t(weight_count * d4::order);
      constexpr int FE = d4::order * Fields;  // expanded filters
      for (int g = 0; g < d4::order; ++g) {
        const int g_inv = d4::inverse(g);
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) {
            const d4::Source s = d4::source_of(d4::Dihedral(g), K, ky, kx);
            for (int ci = 0; ci < C; ++ci) {
              // Input channel ci = c * group_in + h reads compact channel c * group_in + g^-1 h.
              const int c = ci / group_in, h = ci % group_in;
              const int src_ci = Lifting ? ci : c * group_in + d4::product(g_inv, h);
              for (int f = 0; f < Fields; ++f) {
                const std::size_t e = ((std::size_t(ky) * K + kx) * C + ci) * FE + f * d4::order + g;
                const std::size_t j = ((std::size_t(s.y) * K + s.x) * C + src_ci) * Fields + f;
                t[j * d4::order + g] = std::uint32_t(e);
              }
            }
          }
      }
      return t;
    }();
    return table;
  }

  AlignedVector<T> w_, b_, dw_, db_;  // compact parameters and their gradients
  Expanded expanded_;                 // the filter bank of 8 * Fields filters and its scratch
};

// D4Lift<Fields, Kernel, Stride = 1, Options...>: image (C channels) -> D4 feature map of
// 8 * Fields channels. Fields * K * K * C weights + Fields biases.
template <int Fields, int Kernel, int Stride = 1, class... Options>
struct D4Lift {
  static_assert(sizeof...(Options) <= 2, "D4Lift: at most one padding and one kernel variant");
  using padding = typename detail::pick_option<Valid, true, Options...>::type;
  using kernel = typename detail::pick_option<kernels::Default, false, Options...>::type;
  template <class In, class T>
  using bind = D4ConvLayer<In, T, Fields, Kernel, Stride, padding, kernel, true>;
};

// D4Conv<Fields, Kernel, Stride = 1, Options...>: D4 feature map (8 * Cf channels) -> D4 feature
// map of 8 * Fields channels. Fields * Cf * 8 * K * K weights + Fields biases.
template <int Fields, int Kernel, int Stride = 1, class... Options>
struct D4Conv {
  static_assert(sizeof...(Options) <= 2, "D4Conv: at most one padding and one kernel variant");
  using padding = typename detail::pick_option<Valid, true, Options...>::type;
  using kernel = typename detail::pick_option<kernels::Default, false, Options...>::type;
  template <class In, class T>
  using bind = D4ConvLayer<In, T, Fields, Kernel, Stride, padding, kernel, false>;
};

}  // namespace hubble
