#pragma once
// BatchNorm: normalises each channel over the batch (and, for images, over every pixel), then
// scales and shifts it:  y = gamma * xhat + beta,  xhat = (x - mu) / sqrt(var + eps).
//   train: mu, var = mean and (biased) variance of the channel over the M = n*H*W values;
//          moving_mean = momentum * moving_mean + (1 - momentum) * mu    (momentum 0.9, as
//          PyTorch; likewise moving_variance with the unbiased variance)
//   eval:  mu, var = moving_mean, moving_variance
//   backward (train), per channel with means over the M values:
//          dgamma = sum dy * xhat,   dbeta = sum dy,
//          dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat))
//   backward (eval): dx = gamma / sqrt(var + eps) * dy
// The moving statistics are not trained; they are "buffers" (for_each_buffer) that checkpoints save.
#include <cmath>

#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T>
class BatchNormLayer {
  static constexpr int C = In::c;

 public:
  using in_shape = In;
  using out_shape = In;
  static constexpr std::size_t parameter_count = 2 * std::size_t(C);
  static constexpr bool is_activation = false;
  static constexpr const char* kind = "BatchNorm";
  // PyTorch's momentum (0.1 in its convention): Keras' 0.99 needs thousands of steps before the
  // moving statistics forget their initial values, too slow for small data sets. eps is Keras'.
  static constexpr double momentum = 0.9, eps = 1e-3;
  static std::string spec() { return "BatchNorm"; }

  BatchNormLayer()
      : gamma_(C, T(1)), beta_(C, T(0)), dgamma_(C), dbeta_(C), moving_mean_(C, T(0)), moving_var_(C, T(1)),
        mean_(C), inv_std_(C) {}

  void initialize(Rng&, Init) {
    std::fill(gamma_.begin(), gamma_.end(), T(1));
    std::fill(beta_.begin(), beta_.end(), T(0));
    std::fill(moving_mean_.begin(), moving_mean_.end(), T(0));
    std::fill(moving_var_.begin(), moving_var_.end(), T(1));
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode mode) {
    check_input<In>(x, "BatchNorm");
    y.template resize_for<out_shape>(x.batch());
    const std::size_t m = x.size() / C;
    training_ = mode == Mode::train;
    if (training_) {
      // Per-channel sums in double, in a fixed order (deterministic, and stable for large M).
      std::vector<double> sum(C, 0.0), sq(C, 0.0);
      for (std::size_t i = 0; i < m; ++i)
        for (int c = 0; c < C; ++c) { const double v = x[i * C + c]; sum[c] += v; sq[c] += v * v; }
      const double count = double(m);
      for (int c = 0; c < C; ++c) {
        const double mu = sum[c] / count, var = std::max(sq[c] / count - mu * mu, 0.0);
        mean_[c] = T(mu);
        inv_std_[c] = T(1.0 / std::sqrt(var + eps));
        const double unbiased = m > 1 ? var * count / (count - 1) : var;
        moving_mean_[c] = T(momentum * moving_mean_[c] + (1 - momentum) * mu);
        moving_var_[c] = T(momentum * moving_var_[c] + (1 - momentum) * unbiased);
      }
    } else {
      for (int c = 0; c < C; ++c) { mean_[c] = moving_mean_[c]; inv_std_[c] = T(1.0 / std::sqrt(double(moving_var_[c]) + eps)); }
    }
    const std::ptrdiff_t rows = std::ptrdiff_t(m);
#pragma omp parallel for schedule(static) if (rows > 4096)
    for (std::ptrdiff_t i = 0; i < rows; ++i)
      for (int c = 0; c < C; ++c) y[i * C + c] = gamma_[c] * (x[i * C + c] - mean_[c]) * inv_std_[c] + beta_[c];
  }

  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    const std::size_t m = x.size() / C;
    std::vector<double> sum_dy(C, 0.0), sum_dy_xhat(C, 0.0);
    for (std::size_t i = 0; i < m; ++i)
      for (int c = 0; c < C; ++c) {
        const double xhat = double(x[i * C + c] - mean_[c]) * inv_std_[c];
        sum_dy[c] += dy[i * C + c];
        sum_dy_xhat[c] += dy[i * C + c] * xhat;
      }
    for (int c = 0; c < C; ++c) { dgamma_[c] = T(sum_dy_xhat[c]); dbeta_[c] = T(sum_dy[c]); }
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    const std::ptrdiff_t rows = std::ptrdiff_t(m);
    const double count = double(m);
#pragma omp parallel for schedule(static) if (rows > 4096)
    for (std::ptrdiff_t i = 0; i < rows; ++i)
      for (int c = 0; c < C; ++c) {
        const T scale = gamma_[c] * inv_std_[c];
        if (!training_) { (*dx)[i * C + c] = scale * dy[i * C + c]; continue; }
        const T xhat = (x[i * C + c] - mean_[c]) * inv_std_[c];
        (*dx)[i * C + c] = scale * (dy[i * C + c] - T(sum_dy[c] / count) - xhat * T(sum_dy_xhat[c] / count));
      }
  }

  template <class F>
  void for_each_parameter(F&& f) {
    f("gamma", gamma_.data(), dgamma_.data(), gamma_.size());
    f("beta", beta_.data(), dbeta_.data(), beta_.size());
  }
  // Non-trainable state that must be saved with the weights.
  template <class F>
  void for_each_buffer(F&& f) {
    f("moving_mean", moving_mean_.data(), moving_mean_.size());
    f("moving_variance", moving_var_.data(), moving_var_.size());
  }

 private:
  AlignedVector<T> gamma_, beta_, dgamma_, dbeta_, moving_mean_, moving_var_, mean_, inv_std_;
  bool training_ = false;
};

struct BatchNorm {
  template <class In, class T>
  using bind = BatchNormLayer<In, T>;
};

}  // namespace hubble
