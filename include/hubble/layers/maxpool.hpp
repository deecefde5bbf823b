#pragma once
// MaxPool<Size, Stride = Size>: the maximum over each Size x Size window, per channel.
//   x [n, H, W, C] -> y [n, OH, OW, C],  OH = (H - Size) / Stride + 1 (no padding; a leftover
//   row or column is dropped, as in Keras: 29 -> 14)
//   forward:  y[n,oy,ox,c] = max over the window of x;  remembers which input won (argmax)
//   backward: the gradient goes to the winner only: dx[argmax] += dy, zero elsewhere
//             (ties: the first maximum in row-major window order wins, as in PyTorch)
#include <cstdint>
#include <limits>

#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T, int P, int S>
class MaxPoolLayer : public ParameterFreeLayer {
  static_assert(P > 0 && S > 0, "MaxPool: size and stride must be positive");
  static_assert(P <= In::h && P <= In::w, "MaxPool: window larger than its input (see the Shape<H,W,C> in 'required from')");

 public:
  using in_shape = In;
  using out_shape = Shape<(In::h - P) / S + 1, (In::w - P) / S + 1, In::c>;
  static constexpr const char* kind = "MaxPool";
  static std::string spec() { return "MaxPool<" + std::to_string(P) + "," + std::to_string(S) + ">"; }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, "MaxPool");
    const int n = x.batch();
    y.template resize_for<out_shape>(n);
    argmax_.resize(y.size());
    constexpr int OH = out_shape::h, OW = out_shape::w, C = In::c;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; ++b)
      for (int oy = 0; oy < OH; ++oy)
        for (int ox = 0; ox < OW; ++ox)
          for (int c = 0; c < C; ++c) {
            T best = -std::numeric_limits<T>::infinity();
            std::uint32_t arg = 0;
            for (int py = 0; py < P; ++py)
              for (int px = 0; px < P; ++px) {
                const std::uint32_t i = std::uint32_t(((std::size_t(b) * In::h + oy * S + py) * In::w + ox * S + px) * C + c);
                if (x[i] > best || (py == 0 && px == 0)) { best = x[i]; arg = i; }
              }
            const std::size_t o = ((std::size_t(b) * OH + oy) * OW + ox) * C + c;
            y[o] = best;
            argmax_[o] = arg;
          }
  }
  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    dx->fill(T(0));
    const std::size_t per_sample = out_shape::size;
    // Windows may overlap when Stride < Size, so each thread owns whole samples.
#pragma omp parallel for schedule(static)
    for (int b = 0; b < x.batch(); ++b)
      for (std::size_t o = b * per_sample; o < (b + 1) * per_sample; ++o) (*dx)[argmax_[o]] += dy[o];
  }

 private:
  std::vector<std::uint32_t> argmax_;
};

template <int Size, int Stride = Size>
struct MaxPool {
  template <class In, class T>
  using bind = MaxPoolLayer<In, T, Size, Stride>;
};

}  // namespace hubble
