#pragma once
// Three layers defined outside hubble, each following include/hubble/layers/layer_abstract.hpp
// (docs/extending.md walks through them):
//   LeakyReLU     a stateless activation policy, made a layer by hubble::Activation<Policy>
//   AvgPool<P,S>  a parameter-free layer written from scratch: spec + bound layer
//   ChannelScale  a layer with parameters: y = gamma[c] * x + beta[c]
#include <hubble/hubble.hpp>

#include <algorithm>
#include <string>

namespace my {

// ---- LeakyReLU: y = x for x > 0, slope * x otherwise --------------------------------------
//   backward: dx = dy for x > 0, slope * dy otherwise
// The policy sees flat arrays: n values; `group` (channels per pixel) matters only to
// activations that mix channels, like Softmax.
struct LeakyReLUPolicy {
  static constexpr const char* kind = "LeakyReLU";  // summary(), parameter names, checkpoints
  static constexpr double slope = 0.1;
  // Recorded in checkpoints, so a network with another slope refuses these weights.
  static std::string spec() { return "LeakyReLU<" + std::to_string(slope) + ">"; }
  template <class T>
  static void forward(const T* x, T* y, std::size_t n, std::size_t /*group*/) {
    for (std::size_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(slope) * x[i];
  }
  template <class T>
  static void backward(const T* x, const T* /*y*/, const T* dy, T* dx, std::size_t n, std::size_t /*group*/) {
    for (std::size_t i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : T(slope) * dy[i];
  }
};
using LeakyReLU = hubble::Activation<LeakyReLUPolicy>;

// ---- AvgPool<Size, Stride>: the mean of each Size x Size window, per channel ---------------
//   x [n, H, W, C] -> y [n, OH, OW, C],  OH = (H - Size) / Stride + 1
//   forward:  y[o] = 1/Size^2 * sum of the window's inputs
//   backward: every input of window o receives dy[o] / Size^2 (summed where windows overlap)
template <class In, class T, int P, int S>
class AvgPoolLayer : public hubble::ParameterFreeLayer {  // parameter_count = 0, initialize, ...
  static_assert(P > 0 && S > 0, "AvgPool: size and stride must be positive");
  static_assert(P <= In::h && P <= In::w, "AvgPool: window larger than its input (see the Shape<H,W,C> in 'required from')");

 public:
  using in_shape = In;
  using out_shape = hubble::Shape<(In::h - P) / S + 1, (In::w - P) / S + 1, In::c>;
  static constexpr const char* kind = "AvgPool";
  static std::string spec() { return "AvgPool<" + std::to_string(P) + "," + std::to_string(S) + ">"; }

  void forward(const hubble::Tensor<T>& x, hubble::Tensor<T>& y, hubble::Mode) {
    hubble::check_input<In>(x, "AvgPool");
    y.template resize_for<out_shape>(x.batch());
    const T scale = T(1) / T(P * P);
    for (int n = 0; n < x.batch(); ++n)
      for (int oy = 0; oy < out_shape::h; ++oy)
        for (int ox = 0; ox < out_shape::w; ++ox)
          for (int c = 0; c < In::c; ++c) {
            T sum = 0;
            for (int py = 0; py < P; ++py)
              for (int px = 0; px < P; ++px) sum += x(n, oy * S + py, ox * S + px, c);
            y(n, oy, ox, c) = sum * scale;
          }
  }
  void backward(const hubble::Tensor<T>& x, const hubble::Tensor<T>&, const hubble::Tensor<T>& dy,
                hubble::Tensor<T>* dx) {
    if (!dx) return;  // first layer of a network: nobody needs dL/dx
    dx->template resize_for<In>(x.batch());
    dx->fill(T(0));   // overwrite, never accumulate across calls
    const T scale = T(1) / T(P * P);
    for (int n = 0; n < x.batch(); ++n)
      for (int oy = 0; oy < out_shape::h; ++oy)
        for (int ox = 0; ox < out_shape::w; ++ox)
          for (int c = 0; c < In::c; ++c)
            for (int py = 0; py < P; ++py)
              for (int px = 0; px < P; ++px) (*dx)(n, oy * S + py, ox * S + px, c) += dy(n, oy, ox, c) * scale;
  }
};

// The spec: what users write inside Sequential<...>.
template <int Size, int Stride = Size>
struct AvgPool {
  template <class In, class T>
  using bind = AvgPoolLayer<In, T, Size, Stride>;
};

// ---- ChannelScale: a learnable scale and shift per channel ---------------------------------
//   y[n,h,w,c] = gamma[c] * x[n,h,w,c] + beta[c]
//   backward: dgamma[c] = sum_{n,h,w} dy * x,   dbeta[c] = sum_{n,h,w} dy,   dx = dy * gamma[c]
template <class In, class T>
class ChannelScaleLayer {
  static constexpr int C = In::c;

 public:
  using in_shape = In;
  using out_shape = In;
  static constexpr std::size_t parameter_count = 2 * std::size_t(C);
  static constexpr bool is_activation = false;
  static constexpr const char* kind = "ChannelScale";
  static std::string spec() { return "ChannelScale"; }

  ChannelScaleLayer() : gamma_(C), beta_(C), dgamma_(C), dbeta_(C) {}

  void initialize(hubble::Rng&, hubble::Init) {  // identity at the start; draws nothing
    std::fill(gamma_.begin(), gamma_.end(), T(1));
    std::fill(beta_.begin(), beta_.end(), T(0));
  }
  void forward(const hubble::Tensor<T>& x, hubble::Tensor<T>& y, hubble::Mode) {
    hubble::check_input<In>(x, "ChannelScale");
    y.template resize_for<out_shape>(x.batch());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = gamma_[i % C] * x[i] + beta_[i % C];  // NHWC: channel fastest
  }
  void backward(const hubble::Tensor<T>& x, const hubble::Tensor<T>&, const hubble::Tensor<T>& dy,
                hubble::Tensor<T>* dx) {
    std::fill(dgamma_.begin(), dgamma_.end(), T(0));  // gradients are overwritten on every call
    std::fill(dbeta_.begin(), dbeta_.end(), T(0));
    for (std::size_t i = 0; i < x.size(); ++i) {
      dgamma_[i % C] += dy[i] * x[i];
      dbeta_[i % C] += dy[i];
    }
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    for (std::size_t i = 0; i < x.size(); ++i) (*dx)[i] = dy[i] * gamma_[i % C];
  }
  // Names become "channel_scale_1/gamma" in parameters(), optimisers and checkpoints.
  template <class F>
  void for_each_parameter(F&& f) {
    f("gamma", gamma_.data(), dgamma_.data(), gamma_.size());
    f("beta", beta_.data(), dbeta_.data(), beta_.size());
  }

 private:
  hubble::AlignedVector<T> gamma_, beta_, dgamma_, dbeta_;
};

struct ChannelScale {
  template <class In, class T>
  using bind = ChannelScaleLayer<In, T>;
};

}  // namespace my
