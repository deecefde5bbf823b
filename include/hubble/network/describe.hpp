#pragma once
// describe(net): a network type turned into a plain, run-time list of its layers (kind, shapes,
// hyper-parameters, and pointers to its arrays in hubble's layouts). Code that must walk any
// network without knowing its type at compile time is written against this: ONNX export and
// import (hubble/onnx/onnx.hpp), the quantised inference plan (hubble/lowp/inference_plan.hpp).
//
//   hubble::PaperNet net(1);
//   for (const hubble::LayerDesc& l : hubble::describe(net).layers) std::cout << l.spec << "\n";
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "hubble/hubble.hpp"

namespace hubble {

// One array of a layer, in hubble's layout: "kernel" [K,K,C,F] or [I,U], "bias", "gamma", "beta",
// "moving_mean", "moving_variance".
struct ArrayView {
  std::string name;
  float* data = nullptr;
  std::vector<std::int64_t> shape;
  std::size_t size() const {
    std::size_t n = 1;
    for (auto d : shape) n *= std::size_t(d);
    return n;
  }
};

// One layer. kind: Conv2D, MaxPool, Dense, Flatten, Dropout, ReLU, Softmax,
// BatchNorm, GlobalAvgPool, or anything else (which has no ONNX form).
struct LayerDesc {
  std::string name, kind, spec;  // "conv2d_1", "Conv2D", "Conv2D<32,5,2,valid>"
  int in_h = 0, in_w = 0, in_c = 0, out_h = 0, out_w = 0, out_c = 0;
  int filters = 0, kernel = 0, stride = 0, pool = 0, units = 0;
  bool same = false;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  double rate = 0, eps = 0, momentum = 0;
  std::vector<ArrayView> arrays;
};

struct NetworkDesc {
  int h = 0, w = 0, c = 0;  // Input<H,W,C>
  std::string architecture;
  std::vector<LayerDesc> layers;
};

namespace describe_detail {

template <class L>
struct layer_traits {
  static void fill(LayerDesc&) {}
};
template <class In, class T, int F, int K, int S, class Pad, class Kernel>
struct layer_traits<Conv2DLayer<In, T, F, K, S, Pad, Kernel>> {
  static void fill(LayerDesc& d) {
    using L = Conv2DLayer<In, T, F, K, S, Pad, Kernel>;
    d.filters = F;
    d.kernel = K;
    d.stride = S;
    d.same = std::is_same_v<Pad, Same>;
    // hubble's geometry: total padding split with the extra row/column at the end (TensorFlow's 'same').
    const int ph = std::max((L::out_shape::h - 1) * S + K - In::h, 0),
              pw = std::max((L::out_shape::w - 1) * S + K - In::w, 0);
    if (d.same) {
      d.pad_top = ph / 2;
      d.pad_left = pw / 2;
      d.pad_bottom = ph - ph / 2;
      d.pad_right = pw - pw / 2;
    }
  }
};
template <class In, class T, int P, int S>
struct layer_traits<MaxPoolLayer<In, T, P, S>> {
  static void fill(LayerDesc& d) {
    d.pool = P;
    d.stride = S;
  }
};
template <class In, class T, int U>
struct layer_traits<DenseLayer<In, T, U>> {
  static void fill(LayerDesc& d) { d.units = U; }
};
template <class In, class T, DropoutRate R>
struct layer_traits<DropoutLayer<In, T, R>> {
  static void fill(LayerDesc& d) { d.rate = DropoutLayer<In, T, R>::rate; }
};
template <class In, class T>
struct layer_traits<BatchNormLayer<In, T>> {
  static void fill(LayerDesc& d) {
    d.eps = BatchNormLayer<In, T>::eps;
    d.momentum = BatchNormLayer<In, T>::momentum;
  }
};

}  // namespace describe_detail

// The layers of `net` with pointers to its arrays (valid while net lives).
template <class Net>
NetworkDesc describe(Net& net) {
  static_assert(std::is_same_v<typename Net::scalar, float>, "hubble::describe: float networks only");
  NetworkDesc out;
  using In = typename Net::input_shape;
  out.h = In::h;
  out.w = In::w;
  out.c = In::c;
  out.architecture = Net::architecture();
  const auto& names = Net::layer_names();
  net.for_each_layer([&](auto& layer, std::size_t i) {
    using L = std::remove_cvref_t<decltype(layer)>;
    LayerDesc d;
    d.name = names[i];
    d.kind = L::kind;
    d.spec = L::spec();
    d.in_h = L::in_shape::h;
    d.in_w = L::in_shape::w;
    d.in_c = L::in_shape::c;
    d.out_h = L::out_shape::h;
    d.out_w = L::out_shape::w;
    d.out_c = L::out_shape::c;
    describe_detail::layer_traits<L>::fill(d);
    layer.for_each_parameter([&](const char* suffix, float* v, float*, std::size_t n) {
      ArrayView a{suffix, v, {}};
      const std::string s = suffix;
      if (d.kind == "Conv2D" && s == "kernel") a.shape = {d.kernel, d.kernel, d.in_c, d.filters};
      else if (d.kind == "Dense" && s == "kernel") a.shape = {d.in_c, d.units};
      else a.shape = {std::int64_t(n)};
      HUBBLE_CHECK(a.size() == n, "hubble::describe: ", d.name, "/", s, " holds ", n, " values, not the ", a.size(),
                   " its shape says");
      d.arrays.push_back(a);
    });
    if constexpr (requires { layer.for_each_buffer([](const char*, float*, std::size_t) {}); })
      layer.for_each_buffer([&](const char* suffix, float* v, std::size_t n) {
        d.arrays.push_back({suffix, v, {std::int64_t(n)}});
      });
    out.layers.push_back(std::move(d));
  });
  return out;
}

}  // namespace hubble
