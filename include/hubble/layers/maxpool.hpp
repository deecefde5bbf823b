#pragma once
// MaxPool<Size, Stride = Size>: the maximum over each Size x Size window, per channel.
//   x [n, H, W, C] -> y [n, OH, OW, C],  OH = (H - Size) / Stride + 1 (no padding; a leftover
//   row or column is dropped, as in Keras: 29 -> 14)
//   forward:  y[n,oy,ox,c] = max over the window of x;  remembers which input won (argmax)
//   backward: the gradient goes to the winner only: dx[argmax] += dy, zero elsewhere
//             (ties: the first maximum in row-major window order wins, as in PyTorch)
//   backward_relu: the backward of ReLU -> MaxPool in one pass (Network fuses the pair):
//             dz = dLoss/d(ReLU's input) = dx * [x > 0], and at a winner x > 0 <=> y > 0, so
//             dz[argmax] = y > 0 ? dy : 0, zero elsewhere.  Bit for bit the two-pass result.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T, int P, int S>
class MaxPoolLayer : public ParameterFreeLayer {
  static_assert(P > 0 && S > 0, "MaxPool: size and stride must be positive");
  static_assert(P * P <= 256, "MaxPool: window positions are stored in one byte (size <= 16)");
  static_assert(P <= In::h && P <= In::w, "MaxPool: window larger than its input (see the Shape<H,W,C> in 'required from')");

 public:
  using in_shape = In;
  using out_shape = Shape<(In::h - P) / S + 1, (In::w - P) / S + 1, In::c>;
  static constexpr const char* kind = "MaxPool";
  static constexpr int window = P, stride = S;
  static std::string spec() { return "MaxPool<" + std::to_string(P) + "," + std::to_string(S) + ">"; }

  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, "MaxPool");
    const int n = x.batch();
    y.template resize_for<out_shape>(n);
    argmax_.resize(y.size());
    constexpr int OH = out_shape::h, OW = out_shape::w, C = In::c;
    const T* xs = x.data();
    // One window position per output, all channels at once (vectorised over c).
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < n; ++b)
      for (int oy = 0; oy < OH; ++oy)
        for (int ox = 0; ox < OW; ++ox) {
          const T* win = xs + ((std::size_t(b) * In::h + oy * S) * In::w + ox * S) * C;
          const std::size_t o = ((std::size_t(b) * OH + oy) * OW + ox) * C;
          T* yo = y.data() + o;
          std::uint8_t* ao = argmax_.data() + o;
#pragma omp simd
          for (int c = 0; c < C; ++c) {
            T best = win[c];
            std::uint8_t arg = 0;
            for (int py = 0; py < P; ++py)
              for (int px = 0; px < P; ++px) {
                if (py == 0 && px == 0) continue;
                const T v = win[(std::size_t(py) * In::w + px) * C + c];
                if (v > best) { best = v; arg = std::uint8_t(py * P + px); }
              }
            yo[c] = best;
            ao[c] = arg;
          }
        }
  }
  // Needs y and the window positions only: x may be empty (after a fused forward).
  void backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx) {
    backward_masked<false>(x, y, dy, dx);
  }
  // x = the ReLU's output (unused, may be empty), dz = dLoss/d(the ReLU's input).
  void backward_relu(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dz) {
    backward_masked<true>(x, y, dy, dz);
  }
  // For Conv2D+ReLU+MaxPool fusion: the fused forward writes y and these window positions.
  std::vector<std::uint8_t>& argmax_for_fusion() { return argmax_; }

 private:
  template <bool ReluMask>
  void backward_masked(const Tensor<T>&, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx) {
    if (!dx) return;
    const int n = y.batch();
    dx->template resize_for<In>(n);
    constexpr int OH = out_shape::h, OW = out_shape::w, C = In::c, H = In::h, W = In::w;
    T* d = dx->data();
    const T* g = dy.data();
    const std::uint8_t* am = argmax_.data();
    if constexpr (ReluMask) {  // dy where the pooled value is positive, else 0 (a pass over the small side)
      masked_dy_.resize(dy.size());
      const T* ys = y.data();
      T* m = masked_dy_.data();
      const std::size_t count = dy.size();
#pragma omp parallel for simd schedule(static) if (parallel : count > 32768)
      for (std::size_t i = 0; i < count; ++i) m[i] = ys[i] > T(0) ? g[i] : T(0);
      g = m;
    }
    if constexpr (S >= P) {
      // Windows do not overlap: every input position belongs to at most one window, so dx is
      // written in one pass (the winner gets dy, the rest 0) with no separate zero fill.
#pragma omp parallel for schedule(static) collapse(2)
      for (int b = 0; b < n; ++b)
        for (int iy = 0; iy < H; ++iy) {
          T* row = d + (std::size_t(b) * H + iy) * W * C;
          const int oy = iy / S, py = iy % S;
          if (oy >= OH || py >= P) { std::fill(row, row + std::size_t(W) * C, T(0)); continue; }
          for (int ix = 0; ix < W; ++ix) {
            const int ox = ix / S, px = ix % S;
            T* out = row + std::size_t(ix) * C;
            if (ox >= OW || px >= P) { std::fill(out, out + C, T(0)); continue; }
            const std::uint8_t pos = std::uint8_t(py * P + px);
            const std::size_t o = ((std::size_t(b) * OH + oy) * OW + ox) * C;
#pragma omp simd
            for (int c = 0; c < C; ++c) out[c] = am[o + c] == pos ? g[o + c] : T(0);
          }
        }
    } else {
      dx->fill(T(0));
      // Windows overlap, so each thread owns whole samples.
#pragma omp parallel for schedule(static)
      for (int b = 0; b < n; ++b)
        for (int oy = 0; oy < OH; ++oy)
          for (int ox = 0; ox < OW; ++ox) {
            T* win = d + ((std::size_t(b) * H + oy * S) * W + ox * S) * C;
            const std::size_t o = ((std::size_t(b) * OH + oy) * OW + ox) * C;
            for (int c = 0; c < C; ++c) {
              const int pos = am[o + c];
              win[(std::size_t(pos / P) * W + pos % P) * C + c] += g[o + c];
            }
          }
    }
  }

  std::vector<std::uint8_t> argmax_;  // window position (py * P + px) of each output's maximum
  AlignedVector<T> masked_dy_;         // backward_relu's dy, zero where the ReLU blocked it
};

template <int Size, int Stride = Size>
struct MaxPool {
  template <class In, class T>
  using bind = MaxPoolLayer<In, T, Size, Stride>;
};

}  // namespace hubble
