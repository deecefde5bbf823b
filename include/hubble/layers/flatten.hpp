#pragma once
// Flatten: [n, H, W, C] -> [n, H*W*C] in NHWC order (h, then w, then c). The data is already
// contiguous, so forward and backward are copies.
#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T>
class FlattenLayer : public ParameterFreeLayer {
 public:
  using in_shape = In;
  using out_shape = Shape<1, 1, int(In::size)>;
  static constexpr const char* kind = "Flatten";
  static std::string spec() { return "Flatten"; }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, "Flatten");
    y.template resize_for<out_shape>(x.batch());
    std::copy(x.data(), x.data() + x.size(), y.data());
  }
  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    std::copy(dy.data(), dy.data() + dy.size(), dx->data());
  }
};

struct Flatten {
  template <class In, class T>
  using bind = FlattenLayer<In, T>;
};

}  // namespace hubble
