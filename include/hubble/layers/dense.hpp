#pragma once
// Dense<Units>: fully connected layer on flat inputs.
//   x [n, I] -> y [n, U]:   y = x W + 1 b^T          W [I, U], b [U]
//   backward:  dW = x^T dy    db = column sums of dy    dx = dy W^T
#include "hubble/kernels/gemm.hpp"
#include "hubble/layers/layer_abstract.hpp"

namespace hubble {

template <class In, class T, int U>
class DenseLayer {
  static_assert(U > 0, "Dense: units must be positive");
  static_assert(In::is_flat, "Dense: input is not flat, put Flatten before Dense (see the Shape<H,W,C> in 'required from')");
  static constexpr int I = In::c;

 public:
  using in_shape = In;
  using out_shape = Shape<1, 1, U>;
  static constexpr std::size_t parameter_count = std::size_t(I) * U + U;
  static constexpr bool is_activation = false;
  static constexpr const char* kind = "Dense";
  static std::string spec() { return "Dense<" + std::to_string(U) + ">"; }

  DenseLayer() : w_(std::size_t(I) * U), b_(U), dw_(w_.size()), db_(U) {}

  void initialize(Rng& rng, Init init) {
    init_uniform_weights(w_.data(), w_.size(), double(I), double(U), init, rng);
    std::fill(b_.begin(), b_.end(), T(0));
  }
  void forward(const Tensor<T>& x, Tensor<T>& y, Mode) {
    check_input<In>(x, "Dense");
    y.template resize_for<out_shape>(x.batch());
    // hubble's gemm, with the bias added as each tile is stored; at a small batch it reads W in
    // place, split over the threads by columns (gemm_body.inl, few_rows_gemm).
    kernels::gemm::Epilogue<T> ep;
    ep.bias = b_.data();
    kernels::gemm::gemm(kernels::gemm::Trans::no, kernels::gemm::Trans::no, int(x.batch()), U, I, x.data(), I,
                        w_.data(), U, y.data(), U, ep);
  }
  void backward(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx) {
    MatrixMap<T>(dw_.data(), I, U).noalias() = x.matrix().transpose() * dy.matrix();
    Eigen::Map<Eigen::Matrix<T, 1, U>>(db_.data()) = dy.matrix().colwise().sum();
    if (!dx) return;
    dx->template resize_for<In>(x.batch());
    dx->matrix().noalias() = dy.matrix() * weights().transpose();
  }
  template <class Fn>
  void for_each_parameter(Fn&& f) {
    f("kernel", w_.data(), dw_.data(), w_.size());
    f("bias", b_.data(), db_.data(), b_.size());
  }

 private:
  ConstMatrixMap<T> weights() const { return {w_.data(), I, U}; }
  AlignedVector<T> w_, b_, dw_, db_;
};

template <int Units>
struct Dense {
  template <class In, class T>
  using bind = DenseLayer<In, T, Units>;
};

}  // namespace hubble
