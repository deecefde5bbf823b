#pragma once
// GlobalAvgPool: the mean of each channel over all pixels.
//   x [n, H, W, C] -> y [n, C]:  y[n,c] = 1/(H*W) * sum_{h,w} x[n,h,w,c]
//   backward: dx[n,h,w,c] = dy[n,c] / (H*W)
#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T>
class GlobalAvgPoolLayer : public ParameterFreeLayer {
  static constexpr int P = In::h * In::w, C = In::c;

 public:
  using in_shape = In;
  using out_shape = Shape<1, 1, C>;
  static constexpr const char* kind = "GlobalAvgPool";
  static std::string spec() { return "GlobalAvgPool"; }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, "GlobalAvgPool");
    y.template resize_for<out_shape>(x.batch());
    for (int n = 0; n < x.batch(); ++n) {
      const T* xn = x.sample(n);
      T* yn = y.sample(n);
      std::fill(yn, yn + C, T(0));
      for (int p = 0; p < P; ++p)
        for (int c = 0; c < C; ++c) yn[c] += xn[p * C + c];
      for (int c = 0; c < C; ++c) yn[c] /= T(P);
    }
  }
  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    for (int n = 0; n < x.batch(); ++n)
      for (int p = 0; p < P; ++p)
        for (int c = 0; c < C; ++c) dx->sample(n)[p * C + c] = dy.sample(n)[c] / T(P);
  }
};

struct GlobalAvgPool {
  template <class In, class T>
  using bind = GlobalAvgPoolLayer<In, T>;
};

}  // namespace hubble
