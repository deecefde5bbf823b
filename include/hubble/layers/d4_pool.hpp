#pragma once
// D4GroupPool: D4 feature map -> invariant channels, the maximum over each field's 8 orientations.
//   x [n, H, W, 8 * F]  ->  y [n, H, W, F],   y[., f] = max_g x[., f * 8 + g]
//   backward: the gradient goes to the orientation that won (argmax, as MaxPool): dx[f*8 + g] = dy[f]
//             where g won, 0 for the other 7 (ties: the first maximum, lowest g)
// Why it is invariant: rotating or mirroring the input of a D4 layer moves each channel spatially
// and permutes the 8 channels of a field (d4.hpp: (t . X)[f, g] = t . X[f, t^-1 g]); a maximum over
// all 8 does not see the permutation, so D4GroupPool(t . X) = t . D4GroupPool(X) as plain images.
// A GlobalAvgPool after it then gives features that do not change at all under the 8 transforms.
// The spatial MaxPool<2> and GlobalAvgPool act per channel and are equivariant as they are (MaxPool
// on even sides, so its windows map onto windows).
#include <cstdint>
#include <vector>

#include "hubble/layers/d4.hpp"
#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T>
class D4GroupPoolLayer : public ParameterFreeLayer {
  static_assert(In::c % d4::order == 0,
                "D4GroupPool: input channels must be a multiple of 8 (a D4 feature map, 8 orientations per field)");
  static constexpr int F = In::c / d4::order;

 public:
  using in_shape = In;
  using out_shape = Shape<In::h, In::w, F>;
  static constexpr const char* kind = "D4GroupPool";
  static std::string spec() { return kind; }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, kind);
    y.template resize_for<out_shape>(x.batch());
    argmax_.resize(y.size());
    const std::ptrdiff_t count = std::ptrdiff_t(y.size());
    const T* xs = x.data();
    T* ys = y.data();
    std::uint8_t* am = argmax_.data();
#pragma omp parallel for schedule(static) if (count > 32768)
    for (std::ptrdiff_t i = 0; i < count; ++i) {
      const T* field = xs + std::size_t(i) * d4::order;
      T best = field[0];
      std::uint8_t arg = 0;
      for (int g = 1; g < d4::order; ++g)
        if (field[g] > best) {
          best = field[g];
          arg = std::uint8_t(g);
        }
      ys[i] = best;
      am[i] = arg;
    }
  }
  // Needs the orientations of the last forward only.
  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    const std::ptrdiff_t count = std::ptrdiff_t(dy.size());
    const T* g = dy.data();
    T* d = dx->data();
    const std::uint8_t* am = argmax_.data();
#pragma omp parallel for schedule(static) if (count > 32768)
    for (std::ptrdiff_t i = 0; i < count; ++i)
      for (int o = 0; o < d4::order; ++o) d[std::size_t(i) * d4::order + o] = o == am[i] ? g[i] : T(0);
  }

 private:
  std::vector<std::uint8_t> argmax_;  // winning orientation of each output
};

struct D4GroupPool {
  template <class In, class T>
  using bind = D4GroupPoolLayer<In, T>;
};

}  // namespace hubble
