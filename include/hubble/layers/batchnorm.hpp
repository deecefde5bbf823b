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
//
// BatchNormLayer<In, T, Group>: channels c = p * Group + j (j < Group) share one set of statistics
// and parameters p, and the means above run over the M = n*H*W*Group values of the group. Group 1
// is BatchNorm (bit for bit the per-channel layer); Group 8 is D4BatchNorm, for D4 feature maps
// (d4_conv.hpp): the 8 orientation channels of a field share them, so rotating or mirroring the
// input permutes the field's channels without changing its statistics (equivariance kept).
#include <cmath>
#include <utility>

#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T, int Group = 1>
class BatchNormLayer {
  static_assert(Group == 1 || Group == 8, "BatchNormLayer: Group is 1 (BatchNorm) or 8 (D4BatchNorm)");
  static_assert(In::c % Group == 0,
                "D4BatchNorm: input channels must be a multiple of 8 (a D4 feature map: 8 orientations per field)");
  static constexpr int C = In::c;
  static constexpr int P = C / Group;  // statistics and parameters: one per group of channels

 public:
  using in_shape = In;
  using out_shape = In;
  static constexpr std::size_t parameter_count = 2 * std::size_t(P);
  static constexpr bool is_activation = false;
  static constexpr const char* kind = Group == 1 ? "BatchNorm" : "D4BatchNorm";
  // PyTorch's momentum (0.1 in its convention): Keras' 0.99 needs thousands of steps before the
  // moving statistics forget their initial values, too slow for small data sets. eps is Keras'.
  static constexpr double momentum = 0.9, eps = 1e-3;
  static std::string spec() { return kind; }

  BatchNormLayer()
      : gamma_(P, T(1)), beta_(P, T(0)), dgamma_(P), dbeta_(P), moving_mean_(P, T(0)), moving_var_(P, T(1)),
        mean_(P), inv_std_(P) {}

  void initialize(Rng&, Init) {
    std::fill(gamma_.begin(), gamma_.end(), T(1));
    std::fill(beta_.begin(), beta_.end(), T(0));
    std::fill(moving_mean_.begin(), moving_mean_.end(), T(0));
    std::fill(moving_var_.begin(), moving_var_.end(), T(1));
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode mode) {
    check_input<In>(x, kind);
    y.template resize_for<out_shape>(x.batch());
    const std::size_t m = x.size() / C;
    training_ = mode == Mode::train;
    if (training_) {
      // Per-group sums in double, in a fixed order (deterministic, and stable for large M).
      std::vector<double> sum(P, 0.0), sq(P, 0.0);
      for (std::size_t i = 0; i < m; ++i)
        for (int c = 0; c < C; ++c) { const double v = x[i * C + c]; sum[c / Group] += v; sq[c / Group] += v * v; }
      const double count = double(m) * Group;
      for (int p = 0; p < P; ++p) {
        const double mu = sum[p] / count, var = std::max(sq[p] / count - mu * mu, 0.0);
        mean_[p] = T(mu);
        inv_std_[p] = T(1.0 / std::sqrt(var + eps));
        const double unbiased = m * Group > 1 ? var * count / (count - 1) : var;
        moving_mean_[p] = T(momentum * moving_mean_[p] + (1 - momentum) * mu);
        moving_var_[p] = T(momentum * moving_var_[p] + (1 - momentum) * unbiased);
      }
    } else {
      for (int p = 0; p < P; ++p) { mean_[p] = moving_mean_[p]; inv_std_[p] = T(1.0 / std::sqrt(double(moving_var_[p]) + eps)); }
    }
    const std::ptrdiff_t rows = std::ptrdiff_t(m);
#pragma omp parallel for schedule(static) if (rows > 4096)
    for (std::ptrdiff_t i = 0; i < rows; ++i)
      for (int c = 0; c < C; ++c) {
        const int p = c / Group;
        y[i * C + c] = gamma_[p] * (x[i * C + c] - mean_[p]) * inv_std_[p] + beta_[p];
      }
  }

  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    const std::size_t m = x.size() / C;
    std::vector<double> sum_dy(P, 0.0), sum_dy_xhat(P, 0.0);
    for (std::size_t i = 0; i < m; ++i)
      for (int c = 0; c < C; ++c) {
        const int p = c / Group;
        const double xhat = double(x[i * C + c] - mean_[p]) * inv_std_[p];
        sum_dy[p] += dy[i * C + c];
        sum_dy_xhat[p] += dy[i * C + c] * xhat;
      }
    for (int p = 0; p < P; ++p) { dgamma_[p] = T(sum_dy_xhat[p]); dbeta_[p] = T(sum_dy[p]); }
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    const std::ptrdiff_t rows = std::ptrdiff_t(m);
    const double count = double(m) * Group;
#pragma omp parallel for schedule(static) if (rows > 4096)
    for (std::ptrdiff_t i = 0; i < rows; ++i)
      for (int c = 0; c < C; ++c) {
        const int p = c / Group;
        const T scale = gamma_[p] * inv_std_[p];
        if (!training_) { (*dx)[i * C + c] = scale * dy[i * C + c]; continue; }
        const T xhat = (x[i * C + c] - mean_[p]) * inv_std_[p];
        (*dx)[i * C + c] = scale * (dy[i * C + c] - T(sum_dy[p] / count) - xhat * T(sum_dy_xhat[p] / count));
      }
  }

  // BatchNorm at inference after a layer whose output is z + b (b: its bias per channel) is an
  // affine map of z per channel:
  //   gamma * (z + b - moving_mean) / sqrt(moving_variance + eps) + beta = scale * z + shift,
  //   scale = gamma / sqrt(moving_variance + eps),  shift = scale * (b - moving_mean) + beta
  // computed in double from the current parameters and statistics on every call (C values: no
  // cache to go stale). Returns {scale, shift}, C values each, valid until the next call; bias may
  // be nullptr (b = 0). network/fusion.hpp runs Conv2D + BatchNorm + ReLU at inference as one
  // pass with them.
  std::pair<const T*, const T*> fold(const T* bias) {
    fold_scale_.resize(C);
    fold_shift_.resize(C);
    for (int c = 0; c < C; ++c) {
      const int p = c / Group;
      const double s = double(gamma_[p]) / std::sqrt(double(moving_var_[p]) + eps);
      fold_scale_[c] = T(s);
      fold_shift_[c] = T(s * ((bias ? double(bias[c]) : 0.0) - double(moving_mean_[p])) + double(beta_[p]));
    }
    return {fold_scale_.data(), fold_shift_.data()};
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
  AlignedVector<T> fold_scale_, fold_shift_;  // fold()'s results
  bool training_ = false;
};

struct BatchNorm {
  template <class In, class T>
  using bind = BatchNormLayer<In, T>;
};

// BatchNorm for D4 feature maps (8 * F channels, channel = field * 8 + orientation): one mean,
// variance, gamma and beta per field, shared by its 8 orientations. 2 * F parameters.
struct D4BatchNorm {
  template <class In, class T>
  using bind = BatchNormLayer<In, T, 8>;
};

}  // namespace hubble
