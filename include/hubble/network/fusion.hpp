#pragma once
// Layer fusion: which neighbouring layers a Network runs as one pass, decided at compile time
// from the layer types, and the fused steps themselves. network/sequential.hpp runs the plain
// chain (layer by layer) and consults this plan at each index; set_fusion(false) skips it.
//
//   forward:  Conv2D -> ReLU            one pass: the ReLU is the max in the convolution's store
//             Conv2D -> ReLU -> MaxPool<P>  one pass where the variant can pool in its store
//                                           (ImplicitGemm; Winograd where P divides its tile;
//                                           a variant that declines runs conv+ReLU, then the pool)
//   backward: ReLU -> MaxPool           the pool routes dy to each window's winner only where the
//                                       pooled value is positive, which is the ReLU's mask
//   inference (Mode::eval) only:
//             Conv2D -> BatchNorm -> ReLU (-> MaxPool<P>)   one pass: at inference BatchNorm is
//                      an affine map per channel, scale * conv(x, w) + shift (BatchNormLayer::fold),
//                      applied in the convolution's store before the ReLU (and the pool, as above)
// Results are bit for bit those of the separate layers (tests/test_fusion.cpp), except that the
// folded BatchNorm rounds differently (one multiply-add instead of four operations: about 1e-7
// relative, also tested); what changes is
// that the conv's output, the ReLU's output (when pooled in the same pass) and the gradient at
// the ReLU's output are never stored: activation() / activation_gradient() are empty there.
// "Conv2D" and "MaxPool" are what the layers can do, not their names: any layer with
// forward_relu fuses with a following ReLU, any layer with backward_relu takes a ReLU's backward.
#include <array>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "hubble/core/tensor.hpp"
#include "hubble/layers/activations.hpp"
#include "hubble/layers/maxpool.hpp"

namespace hubble {

namespace detail {
template <class L> struct is_relu : std::false_type {};
template <class In, class T> struct is_relu<ActivationLayer<In, T, activation::ReLU>> : std::true_type {};
template <class L, class T>
concept writes_relu_output = requires(L& l, const Tensor<T>& x, Tensor<T>& y) { l.forward_relu(x, y); };
template <class L, class T>
concept masks_relu_gradient = requires(L& l, const Tensor<T>& t, Tensor<T>* d) { l.backward_relu(t, t, t, d); };
template <class L> struct is_window_pool : std::false_type {};  // MaxPool<P, P>: windows that tile the input
template <class In, class T, int P> struct is_window_pool<MaxPoolLayer<In, T, P, P>> : std::true_type {};
template <class L, class T>
concept applies_affine_relu = requires(L& l, const Tensor<T>& x, Tensor<T>& y, const T* p) {
  l.forward_affine_relu(x, y, p, p);
  l.biases();
};
template <class L, class T>
concept folds_at_inference = requires(L& l, const T* bias) { l.fold(bias); };  // BatchNorm
}  // namespace detail

// The plan for a tuple of bound layers: which indices start a fused step.
template <class Layers, class T>
struct FusionPlan {
  static constexpr std::size_t count = std::tuple_size_v<Layers>;
  template <std::size_t I>
  using layer = std::tuple_element_t<I, Layers>;

  // Layer I (a Conv2D, or any layer with forward_relu) writes straight into the ReLU at I + 1.
  template <std::size_t I>
  static constexpr bool conv_relu() {
    if constexpr (I + 1 < count) return detail::writes_relu_output<layer<I>, T> && detail::is_relu<layer<I + 1>>::value;
    else return false;
  }
  // ... and a MaxPool<P, P> at I + 2 may join that pass (if the variant can, decided at run time).
  template <std::size_t I>
  static constexpr bool conv_relu_pool() {
    if constexpr (conv_relu<I>() && I + 2 < count) return detail::is_window_pool<layer<I + 2>>::value;
    else return false;
  }
  // At inference, layer I (a Conv2D whose variant has forward_affine_relu) takes the BatchNorm at
  // I + 1 and the ReLU at I + 2 into its pass ...
  template <std::size_t I>
  static constexpr bool conv_bn_relu() {
    if constexpr (I + 2 < count)
      return detail::applies_affine_relu<layer<I>, T> && detail::folds_at_inference<layer<I + 1>, T> &&
             detail::is_relu<layer<I + 2>>::value;
    else return false;
  }
  // ... and a MaxPool<P, P> at I + 3 (if the variant can, decided at run time).
  template <std::size_t I>
  static constexpr bool conv_bn_relu_pool() {
    if constexpr (conv_bn_relu<I>() && I + 3 < count) return detail::is_window_pool<layer<I + 3>>::value;
    else return false;
  }
  // Whether an inference pass folds any BatchNorm.
  static constexpr bool folds_batchnorm() {
    return []<std::size_t... I>(std::index_sequence<I...>) { return (conv_bn_relu<I>() || ...); }(std::make_index_sequence<count>{});
  }
  // Layer I (a MaxPool, or any layer with backward_relu) runs the backward of the ReLU at I - 1;
  // only when that ReLU's input needs a gradient (I >= 2).
  template <std::size_t I>
  static constexpr bool relu_pool_backward() {
    if constexpr (I >= 2) return detail::masks_relu_gradient<layer<I>, T> && detail::is_relu<layer<I - 1>>::value;
    else return false;
  }
};

namespace fused {

// Forward of layers I, I + 1 (Conv2D, ReLU) and, where the plan and the variant allow, I + 2
// (MaxPool) in one pass. Clears the tensors the pass does not write; returns the index of the
// last layer it ran (I + 1 or I + 2), whose output the chain continues from.
template <class Plan, std::size_t I, class Layers, class T, std::size_t N>
std::size_t forward_conv_relu(Layers& layers, const Tensor<T>& x, std::array<Tensor<T>, N>& acts) {
  static_assert(Plan::template conv_relu<I>());
  acts[I] = Tensor<T>();  // the pre-ReLU output is never stored
  if constexpr (Plan::template conv_relu_pool<I>()) {
    auto& pool = std::get<I + 2>(layers);
    using Pool = typename Plan::template layer<I + 2>;
    if (std::get<I>(layers).template forward_relu_maxpool<Pool::window>(x, acts[I + 2], pool.argmax_for_fusion())) {
      acts[I + 1] = Tensor<T>();  // nor the ReLU's output
      return I + 2;
    }
  }
  std::get<I>(layers).forward_relu(x, acts[I + 1]);
  return I + 1;
}

// Inference forward of layers I, I + 1, I + 2 (Conv2D, BatchNorm, ReLU) and, where the plan and the
// variant allow, I + 3 (MaxPool) in one pass: BatchNorm's affine map is applied in the store.
// Clears the tensors the pass does not write; returns the index of the last layer it ran.
template <class Plan, std::size_t I, class Layers, class T, std::size_t N>
std::size_t forward_conv_bn_relu(Layers& layers, const Tensor<T>& x, std::array<Tensor<T>, N>& acts) {
  static_assert(Plan::template conv_bn_relu<I>());
  auto& conv = std::get<I>(layers);
  const auto [scale, shift] = std::get<I + 1>(layers).fold(conv.biases());
  acts[I] = Tensor<T>();
  acts[I + 1] = Tensor<T>();
  if constexpr (Plan::template conv_bn_relu_pool<I>()) {
    auto& pool = std::get<I + 3>(layers);
    using Pool = typename Plan::template layer<I + 3>;
    if (conv.template forward_affine_relu_maxpool<Pool::window>(x, acts[I + 3], pool.argmax_for_fusion(), scale, shift)) {
      acts[I + 2] = Tensor<T>();
      return I + 3;
    }
  }
  conv.forward_affine_relu(x, acts[I + 2], scale, shift);
  return I + 2;
}

// Backward of the ReLU at I - 1 inside the pool at I: from dy = dLoss/d acts[I] straight to
// dLoss/d acts[I - 2] (the ReLU's input); grads[I - 1] is never stored.
template <class Plan, std::size_t I, class Layers, class T, std::size_t N>
void backward_relu_pool(Layers& layers, const std::array<Tensor<T>, N>& acts, const Tensor<T>& dy,
                        std::array<Tensor<T>, N>& grads) {
  static_assert(Plan::template relu_pool_backward<I>());
  grads[I - 1] = Tensor<T>();
  std::get<I>(layers).backward_relu(acts[I - 1], acts[I], dy, &grads[I - 2]);
}

}  // namespace fused

}  // namespace hubble
