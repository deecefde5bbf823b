#pragma once
// Conv2D<Filters, Kernel, Stride = 1, Options...>: 2-D convolution over NHWC batches.
// Options, in any order: a padding (Valid — the default — or Same) and a kernel variant
// (kernels::Naive, kernels::Im2colEigen, ... ; kernels::Default when none is named).
//
//   x [n, H, W, C]  ->  y [n, OH, OW, F],   y = conv(x, w) + b
//   w [K, K, C, F] (a (K*K*C) x F matrix),  b [F]
//   valid: OH = (H - K) / S + 1             same: OH = ceil(H / S), zero padding split as
//                                           TensorFlow does (the extra row/column at the end)
// The maths of forward and backward lives in the kernel variants (hubble/kernels/).
#include <cstdint>
#include <type_traits>
#include <vector>

#include "hubble/kernels/default.hpp"
#include "hubble/layers/activations.hpp"
#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

struct Valid { static constexpr const char* name = "valid"; };
struct Same { static constexpr const char* name = "same"; };

namespace detail {
template <class T> constexpr bool is_padding = std::is_same_v<T, Valid> || std::is_same_v<T, Same>;
// Variants that can apply a per-channel affine map before the ReLU (a folded BatchNorm).
template <class Kernel, class T>
concept has_affine_relu = requires(const kernels::ConvGeometry& g, const T* p, T* q, kernels::Workspace<T>& ws) {
  Kernel::forward_affine_relu(g, p, p, p, p, q, ws);
};
template <class Default, bool Want, class... Opts> struct pick_option { using type = Default; };
template <class Default, bool Want, class O, class... Opts>
struct pick_option<Default, Want, O, Opts...> {
  using type = std::conditional_t<is_padding<O> == Want, O, typename pick_option<Default, Want, Opts...>::type>;
};
}  // namespace detail

template <class In, class T, int F, int K, int S, class Pad, class Kernel>
class Conv2DLayer {
  static constexpr bool same = std::is_same_v<Pad, Same>;
  static constexpr int OH = same ? (In::h + S - 1) / S : (In::h - K) / S + 1;
  static constexpr int OW = same ? (In::w + S - 1) / S : (In::w - K) / S + 1;
  static constexpr int pad_h = same ? ((OH - 1) * S + K - In::h > 0 ? (OH - 1) * S + K - In::h : 0) : 0;
  static constexpr int pad_w = same ? ((OW - 1) * S + K - In::w > 0 ? (OW - 1) * S + K - In::w : 0) : 0;
  static_assert(F > 0 && K > 0 && S > 0, "Conv2D: filters, kernel and stride must be positive");
  static_assert(same || (K <= In::h && K <= In::w), "Conv2D: kernel larger than its input (see the Shape<H,W,C> in 'required from')");

 public:
  using in_shape = In;
  using out_shape = Shape<OH, OW, F>;
  using kernel = Kernel;
  static constexpr std::size_t weight_count = std::size_t(K) * K * In::c * F;
  static constexpr std::size_t parameter_count = weight_count + F;
  static constexpr bool is_activation = false;
  static constexpr const char* kind = "Conv2D";
  static std::string spec() {
    return "Conv2D<" + std::to_string(F) + "," + std::to_string(K) + "," + std::to_string(S) + "," + Pad::name + ">";
  }

  Conv2DLayer() : w_(weight_count), b_(F), dw_(weight_count), db_(F) {}

  void initialize(Rng& rng, Init init) {
    init_uniform_weights(w_.data(), w_.size(), double(K * K * In::c), double(K * K * F), init, rng);
    std::fill(b_.begin(), b_.end(), T(0));
  }

  kernels::ConvGeometry geometry(int n) const {
    return {n, In::h, In::w, In::c, K, S, pad_h / 2, pad_w / 2, OH, OW, F};
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, "Conv2D");
    y.template resize_for<out_shape>(x.batch());
    Kernel::forward(geometry(x.batch()), x.data(), w_.data(), b_.data(), y.data(), ws_);
  }
  // y = max(conv(x, w) + b, 0): the Conv2D and the ReLU after it in one pass (Network fuses the
  // pair). Variants with a forward_relu apply the max in their store; others get a second pass.
  void forward_relu(const Tensor<T>& x, Tensor<T>& y) {
    check_input<In>(x, "Conv2D");
    y.template resize_for<out_shape>(x.batch());
    if constexpr (requires { Kernel::forward_relu(geometry(1), x.data(), w_.data(), b_.data(), y.data(), ws_); }) {
      Kernel::forward_relu(geometry(x.batch()), x.data(), w_.data(), b_.data(), y.data(), ws_);
    } else {
      Kernel::forward(geometry(x.batch()), x.data(), w_.data(), b_.data(), y.data(), ws_);
      activation::ReLU::forward(y.data(), y.data(), y.size(), std::size_t(F));
    }
  }
  // y = maxpool_P(max(conv(x, w) + b, 0)) with the pool's window positions in argmax: this
  // layer, the ReLU and a MaxPool<P, P> after it in one pass (Network fuses the triple), for
  // variants that can (Kernel::forward_relu_maxpool). Returns false, having computed nothing,
  // when the variant cannot for this geometry.
  template <int P>
  bool forward_relu_maxpool(const Tensor<T>& x, Tensor<T>& y, std::vector<std::uint8_t>& argmax) {
    if constexpr (requires(std::uint8_t* a) { Kernel::forward_relu_maxpool(geometry(1), x.data(), w_.data(), b_.data(), P, y.data(), a, ws_); }) {
      check_input<In>(x, "Conv2D");
      y.template resize_for<Shape<OH / P, OW / P, F>>(x.batch());
      argmax.resize(y.size());
      return Kernel::forward_relu_maxpool(geometry(x.batch()), x.data(), w_.data(), b_.data(), P, y.data(), argmax.data(), ws_);
    } else {
      return false;
    }
  }
  // y = max(scale * conv(x, w) + shift, 0) per output channel, and with a MaxPool<P, P> after it
  // (returning false, having computed nothing, where the variant cannot pool): this layer, a
  // BatchNorm at inference folded into it (scale, shift: BatchNormLayer::fold), and a ReLU in
  // one pass. Only for variants with forward_affine_relu (network/fusion.hpp asks).
  void forward_affine_relu(const Tensor<T>& x, Tensor<T>& y, const T* scale, const T* shift)
    requires detail::has_affine_relu<Kernel, T>
  {
    check_input<In>(x, "Conv2D");
    y.template resize_for<out_shape>(x.batch());
    Kernel::forward_affine_relu(geometry(x.batch()), x.data(), w_.data(), scale, shift, y.data(), ws_);
  }
  template <int P>
  bool forward_affine_relu_maxpool(const Tensor<T>& x, Tensor<T>& y, std::vector<std::uint8_t>& argmax, const T* scale,
                                   const T* shift)
    requires detail::has_affine_relu<Kernel, T>
  {
    if constexpr (requires(std::uint8_t* a) {
                    Kernel::forward_affine_relu_maxpool(geometry(1), x.data(), w_.data(), scale, shift, P, y.data(), a, ws_);
                  }) {
      check_input<In>(x, "Conv2D");
      y.template resize_for<Shape<OH / P, OW / P, F>>(x.batch());
      argmax.resize(y.size());
      return Kernel::forward_affine_relu_maxpool(geometry(x.batch()), x.data(), w_.data(), scale, shift, P, y.data(),
                                                 argmax.data(), ws_);
    } else {
      return false;
    }
  }
  // Needs x only: y (the second argument) may be empty when the forward pass was fused.
  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    if (dx) dx->template resize_for<In>(x.batch());
    Kernel::backward(geometry(x.batch()), x.data(), w_.data(), dy.data(), dw_.data(), db_.data(),
                     dx ? dx->data() : nullptr, ws_);
  }
  template <class Fn>
  void for_each_parameter(Fn&& f) {
    f("kernel", w_.data(), dw_.data(), w_.size());
    f("bias", b_.data(), db_.data(), b_.size());
  }
  // A promise that w does not change until switched off (Network::set_weights_constant).
  void set_weights_constant(bool on) { ws_.set_weights_constant(on); }
  // The raw arrays (w [K][K][C][F], b [F]) and the gradients of the last backward(), for layers
  // that fill this one's filter bank from parameters of their own (D4Lift, D4Conv in d4_conv.hpp).
  T* weights() { return w_.data(); }
  T* biases() { return b_.data(); }
  const T* weights() const { return w_.data(); }
  const T* weight_gradients() const { return dw_.data(); }
  const T* bias_gradients() const { return db_.data(); }

 private:
  AlignedVector<T> w_, b_, dw_, db_;
  kernels::Workspace<T> ws_;
};

template <int Filters, int Kernel, int Stride = 1, class... Options>
struct Conv2D {
  static_assert(sizeof...(Options) <= 2, "Conv2D: at most one padding and one kernel variant");
  using padding = typename detail::pick_option<Valid, true, Options...>::type;
  using kernel = typename detail::pick_option<kernels::Default, false, Options...>::type;
  template <class In, class T>
  using bind = Conv2DLayer<In, T, Filters, Kernel, Stride, padding, kernel>;
};

}  // namespace hubble
