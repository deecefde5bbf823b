#pragma once
// Activations: a stateless policy (the maths) wrapped in a parameter-free layer.
//   ReLU:    y = max(x, 0)                         dx = dy * [y > 0]
//   Softmax: y_i = exp(x_i - max x) / sum_j exp(x_j - max x)   per sample, over channels
//            dx_i = y_i * (dy_i - sum_j dy_j y_j)
// A network that ends in Softmax is trained with the fused softmax-cross-entropy gradient
// (network/loss.hpp), so Softmax::backward runs only when something else sits on top of it.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <string>

#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

namespace activation {

struct ReLU {
  static constexpr const char* kind = "ReLU";
  template <class T>
  static void forward(const T* x, T* y, std::size_t n, std::size_t) {
    for_each_element(n, [&](std::size_t i) { y[i] = x[i] > T(0) ? x[i] : T(0); });
  }
  template <class T>
  static void backward(const T*, const T* y, const T* dy, T* dx, std::size_t n, std::size_t) {
    for_each_element(n, [&](std::size_t i) { dx[i] = y[i] > T(0) ? dy[i] : T(0); });
  }

 private:
  // Small tensors run outside any parallel region: even one with a false `if` clause costs
  // libgomp a team start (1-3 us on these machines), more than a 256-unit Dense layer's ReLU.
  template <class F>
  static void for_each_element(std::size_t n, F&& f) {
    if (n <= 32768) {
#pragma omp simd
      for (std::size_t i = 0; i < n; ++i) f(i);
      return;
    }
#pragma omp parallel for simd schedule(static)
    for (std::size_t i = 0; i < n; ++i) f(i);
  }
};

struct Softmax {
  static constexpr const char* kind = "Softmax";
  // `group` is the number of channels of one sample's distribution.
  template <class T>
  static void forward(const T* x, T* y, std::size_t n, std::size_t group) {
    for (std::size_t s = 0; s < n; s += group) {
      const T m = *std::max_element(x + s, x + s + group);
      T sum = 0;
      for (std::size_t i = s; i < s + group; ++i) sum += (y[i] = std::exp(x[i] - m));
      for (std::size_t i = s; i < s + group; ++i) y[i] /= sum;
    }
  }
  template <class T>
  static void backward(const T*, const T* y, const T* dy, T* dx, std::size_t n, std::size_t group) {
    for (std::size_t s = 0; s < n; s += group) {
      T dot = 0;
      for (std::size_t i = s; i < s + group; ++i) dot += dy[i] * y[i];
      for (std::size_t i = s; i < s + group; ++i) dx[i] = y[i] * (dy[i] - dot);
    }
  }
};

}  // namespace activation

template <class In, class T, class Policy>
class ActivationLayer : public ParameterFreeLayer {
 public:
  using in_shape = In;
  using out_shape = In;
  using policy = Policy;
  static constexpr bool is_activation = true;
  static constexpr const char* kind = Policy::kind;
  // What Network::architecture() (and so every checkpoint) records: the policy's own spec()
  // when it has one (a policy with a parameter must spell it out), else its kind.
  static std::string spec() {
    if constexpr (requires { { Policy::spec() } -> std::convertible_to<std::string>; }) return Policy::spec();
    else return Policy::kind;
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, Policy::kind);
    y.template resize_for<out_shape>(x.batch());
    Policy::forward(x.data(), y.data(), x.size(), std::size_t(In::c));
  }
  void backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx) {
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    Policy::backward(x.data(), y.data(), dy.data(), dx->data(), x.size(), std::size_t(In::c));
  }
};

template <class Policy>
struct Activation {
  template <class In, class T>
  using bind = ActivationLayer<In, T, Policy>;
};

using ReLU = Activation<activation::ReLU>;
using Softmax = Activation<activation::Softmax>;

}  // namespace hubble
