#pragma once
// Dropout<Rate>: inverted dropout. In train mode each activation is kept with probability
// 1 - Rate and scaled by 1 / (1 - Rate), so eval mode is the identity and needs no rescaling.
//   train: m_i ~ Bernoulli(1 - Rate) / (1 - Rate),  y = x * m,  dx = dy * m
//   eval:  y = x,                                   dx = dy
// The mask stream is the layer's own Rng, seeded by the network and saved in checkpoints.
#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

namespace detail {
inline void dropout_rate_must_have_at_most_six_decimals() {}  // not constexpr: calling it stops compilation
}  // namespace detail

// The rate as a template argument: Dropout<0.25>. Held in millionths because Clang before 18
// rejects `double` template arguments; value() is the same double as the literal (an exact
// integer divided by 1e6, rounded once), so behaviour is unchanged.
struct DropoutRate {
  long long millionths;
  consteval DropoutRate(double rate) : millionths(rate < 0 ? -1 : (long long)(rate * 1e6 + 0.5)) {
    const double off = rate * 1e6 - double(millionths);
    if (rate >= 0 && (off > 1e-6 || off < -1e-6)) detail::dropout_rate_must_have_at_most_six_decimals();
  }
  constexpr double value() const { return double(millionths) / 1e6; }
};

template <class In, class T, DropoutRate R>
class DropoutLayer : public ParameterFreeLayer {
  static constexpr double Rate = R.value();
  static_assert(Rate >= 0.0 && Rate < 1.0, "Dropout: rate must be in [0, 1)");

 public:
  using in_shape = In;
  using out_shape = In;
  static constexpr const char* kind = "Dropout";
  static constexpr double rate = Rate;
  static std::string spec() { return "Dropout<" + std::to_string(Rate) + ">"; }

  void initialize(Rng& rng, Init) { rng_ = rng.split(0xD0); }
  void forward(const Tensor<T>& x, Tensor<T>& y, Mode mode) {
    check_input<In>(x, "Dropout");
    y.template resize_for<out_shape>(x.batch());
    training_ = mode == Mode::train && Rate > 0.0;
    if (!training_) { std::copy(x.data(), x.data() + x.size(), y.data()); return; }
    mask_.resize(x.size());
    const T keep_scale = T(1.0 / (1.0 - Rate));
    for (std::size_t i = 0; i < x.size(); ++i) {
      mask_[i] = rng_.uniform() >= Rate ? keep_scale : T(0);
      y[i] = x[i] * mask_[i];
    }
  }
  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    if (!training_) { std::copy(dy.data(), dy.data() + dy.size(), dx->data()); return; }
    for (std::size_t i = 0; i < dy.size(); ++i) (*dx)[i] = dy[i] * mask_[i];
  }
  Rng& rng() { return rng_; }

 private:
  Rng rng_;
  std::vector<T> mask_;
  bool training_ = false;
};

template <DropoutRate Rate>
struct Dropout {
  template <class In, class T>
  using bind = DropoutLayer<In, T, Rate>;
};

}  // namespace hubble
