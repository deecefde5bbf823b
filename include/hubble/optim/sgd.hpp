#pragma once
// SGD with momentum (PyTorch's form):  v = mu v + g;   w -= lr * (nesterov ? g + mu v : v)
// With mu = 0 it is plain gradient descent.
#include "hubble/optim/optimizer_state.hpp"

namespace hubble {

template <class T>
class SGD : public OptimizerState<T> {
 public:
  struct Options {
    double lr = 0.01, momentum = 0.9;
    bool nesterov = false;
  };
  SGD() : SGD(Options{}) {}
  explicit SGD(Options o) : OptimizerState<T>("sgd", 1), opt_(o) {}
  double learning_rate() const { return opt_.lr; }
  void set_learning_rate(double lr) { opt_.lr = lr; }

  void step(std::vector<ParamRef<T>>& params) {
    this->prepare(params);
    ++this->steps;
    const T lr = T(opt_.lr), mu = T(opt_.momentum);
    for (std::size_t p = 0; p < params.size(); ++p) {
      T* w = params[p].value;
      const T* g = params[p].grad;
      T* v = this->slot(p, 0);
      for (std::size_t i = 0; i < params[p].size; ++i) {
        v[i] = mu * v[i] + g[i];
        w[i] -= lr * (opt_.nesterov ? g[i] + mu * v[i] : v[i]);
      }
    }
  }

 private:
  Options opt_;
};

}  // namespace hubble
