#pragma once
// RMSprop (Keras' defaults: rho 0.9, eps 1e-7; the paper tried it before Adam):
//   s = rho s + (1 - rho) g^2;   w -= lr * g / (sqrt(s) + eps)
#include <cmath>

#include "hubble/optim/optimizer_state.hpp"

namespace hubble {

template <class T>
class RMSprop : public OptimizerState<T> {
 public:
  struct Options {
    double lr = 1e-3, rho = 0.9, eps = 1e-7;
  };
  RMSprop() : RMSprop(Options{}) {}
  explicit RMSprop(Options o) : OptimizerState<T>("rmsprop", 1), opt_(o) {}
  double learning_rate() const { return opt_.lr; }
  void set_learning_rate(double lr) { opt_.lr = lr; }

  void step(std::vector<ParamRef<T>>& params) {
    this->prepare(params);
    ++this->steps;
    const T lr = T(opt_.lr), rho = T(opt_.rho), eps = T(opt_.eps);
    for (std::size_t p = 0; p < params.size(); ++p) {
      T* w = params[p].value;
      const T* g = params[p].grad;
      T* s = this->slot(p, 0);
      for (std::size_t i = 0; i < params[p].size; ++i) {
        s[i] = rho * s[i] + (1 - rho) * g[i] * g[i];
        w[i] -= lr * g[i] / (std::sqrt(s[i]) + eps);
      }
    }
  }

 private:
  Options opt_;
};

}  // namespace hubble
