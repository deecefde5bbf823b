#pragma once
// The shape of every parameter of a network, in the order of Network::parameters():
//   Conv2D kernel [K, K, C_in, F] (kh, kw, in, out), Dense kernel [I, U] (rows in Flatten's
//   (h, w, c) order); every other array (biases, BatchNorm's gamma and beta) is 1-D [n].
// Checkpoints store and check these shapes, so that a kernel written in another layout (PyTorch's
// [out, in, kh, kw]) is refused rather than loaded as garbage. A layer of your own can declare
// its shapes with   static std::vector<std::size_t> parameter_shape(const std::string& suffix, std::size_t n);
#include <cstddef>
#include <string>
#include <vector>

#include "hubble/layers/conv2d.hpp"
#include "hubble/layers/dense.hpp"

namespace hubble {

namespace detail {
template <class L>
struct param_shape_of {
  static std::vector<std::size_t> get(const std::string& suffix, std::size_t n) {
    if constexpr (requires { L::parameter_shape(suffix, n); }) return L::parameter_shape(suffix, n);
    else return {n};
  }
};
template <class In, class T, int F, int K, int S, class Pad, class Kernel>
struct param_shape_of<Conv2DLayer<In, T, F, K, S, Pad, Kernel>> {
  static std::vector<std::size_t> get(const std::string& suffix, std::size_t n) {
    if (suffix == "kernel") return {std::size_t(K), std::size_t(K), std::size_t(In::c), std::size_t(F)};
    return {n};
  }
};
template <class In, class T, int U>
struct param_shape_of<DenseLayer<In, T, U>> {
  static std::vector<std::size_t> get(const std::string& suffix, std::size_t n) {
    if (suffix == "kernel") return {std::size_t(In::c), std::size_t(U)};
    return {n};
  }
};
}  // namespace detail

// One shape per entry of net.parameters(), same order.
template <class Net>
std::vector<std::vector<std::size_t>> parameter_shapes(Net& net) {
  std::vector<std::vector<std::size_t>> out;
  net.for_each_layer([&](auto& layer, std::size_t) {
    using L = std::remove_cvref_t<decltype(layer)>;
    layer.for_each_parameter([&](const char* suffix, auto*, auto*, std::size_t n) {
      out.push_back(detail::param_shape_of<L>::get(suffix, n));
    });
  });
  return out;
}

inline std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

}  // namespace hubble
