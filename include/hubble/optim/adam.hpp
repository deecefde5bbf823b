#pragma once
// Adam (Kingma & Ba 2015, Algorithm 1 — the form PyTorch implements):
//   m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
//   m^ = m / (1 - b1^t)            v^ = v / (1 - b2^t)
//   w -= lr * ( m^ / (sqrt(v^) + eps) + weight_decay * w )      (decoupled decay, AdamW; 0 = off)
// eps defaults to 1e-7, Keras' value (the paper trained with Keras); PyTorch's is 1e-8. Keras
// adds eps to the uncorrected sqrt(v) and folds the corrections into the learning rate, which is
// this form with an effective eps / sqrt(1 - b2^t): 3.2e-6 at step 1, 1.26e-7 at step 1000, within
// 1% of eps after ~3900 steps. So Keras' early steps are smaller for small gradients: at step 1 by
// 0.3% for a gradient of 1e-3 and 3% for 1e-4 (docs/learn/6-adam.md computes them); for gradients
// far above eps and after a few thousand steps the two forms agree.
#include <cmath>
#include <string>
#include <vector>

#include "hubble/optim/optimizer_state.hpp"

namespace hubble {

template <class T>
class Adam : public OptimizerState<T> {
 public:
  struct Options {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-7, weight_decay = 0.0;
  };
  Adam() : Adam(Options{}) {}
  explicit Adam(Options o) : OptimizerState<T>("adam", 2), opt_(o) {}

  double learning_rate() const { return opt_.lr; }
  void set_learning_rate(double lr) { opt_.lr = lr; }
  const Options& options() const { return opt_; }

  void step(std::vector<ParamRef<T>>& params) {
    this->prepare(params);
    const long long t = ++this->steps;
    const double c1 = 1.0 - std::pow(opt_.beta1, double(t)), c2 = 1.0 - std::pow(opt_.beta2, double(t));
    const T b1 = T(opt_.beta1), b2 = T(opt_.beta2), lr = T(opt_.lr), eps = T(opt_.eps), wd = T(opt_.weight_decay);
    const T inv_c1 = T(1.0 / c1), inv_sqrt_c2 = T(1.0 / std::sqrt(c2));
    for (std::size_t p = 0; p < params.size(); ++p) {
      T* w = params[p].value;
      const T* g = params[p].grad;
      T* m = this->slot(p, 0);
      T* v = this->slot(p, 1);
      const std::ptrdiff_t n = std::ptrdiff_t(params[p].size);
// Clang does not vectorise std::sqrt while it may set errno (-fmath-errno, its default) and says
// so for an `omp simd` loop (-Wpass-failed), which a -Werror build cannot take: no simd there.
// The if names `parallel`: a plain if also turns the simd off, and small tensors ran scalar.
#if defined(__clang__)
#pragma omp parallel for schedule(static) if (n > 65536)
#else
#pragma omp parallel for simd schedule(static) if (parallel : n > 65536)
#endif
      for (std::ptrdiff_t i = 0; i < n; ++i) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * ((m[i] * inv_c1) / (std::sqrt(v[i]) * inv_sqrt_c2 + eps) + wd * w[i]);
      }
    }
  }

 private:
  Options opt_;
};

}  // namespace hubble
