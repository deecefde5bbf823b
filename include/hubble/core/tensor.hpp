#pragma once
// Tensor<T>: a batch of samples stored contiguously in NHWC order (sample, row, column,
// channel; channel fastest). Shapes are checked by the layers against their compile-time
// Shape; the tensor itself only knows its runtime dimensions.
#include <Eigen/Core>

#include <array>
#include <cstddef>
#include <vector>

#include "hubble/core/aligned.hpp"
#include "hubble/core/error.hpp"

namespace hubble {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned>;

template <class T>
class Tensor {
 public:
  Tensor() = default;
  Tensor(int n, int h, int w, int c) { resize(n, h, w, c); }

  // Resizing keeps the allocation when it is large enough, so per-batch buffers are reused.
  void resize(int n, int h, int w, int c) {
    HUBBLE_CHECK(n >= 0 && h > 0 && w > 0 && c > 0, "Tensor: bad dimensions ", n, "x", h, "x", w, "x", c);
    dims_ = {n, h, w, c};
    data_.resize(std::size_t(n) * h * w * c);
  }
  template <class S>
  void resize_for(int n) { resize(n, S::h, S::w, S::c); }

  int batch() const { return dims_[0]; }
  int height() const { return dims_[1]; }
  int width() const { return dims_[2]; }
  int channels() const { return dims_[3]; }
  std::size_t sample_size() const { return std::size_t(dims_[1]) * dims_[2] * dims_[3]; }
  std::size_t size() const { return data_.size(); }
  const std::array<int, 4>& dims() const { return dims_; }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T* sample(int n) { return data_.data() + n * sample_size(); }
  const T* sample(int n) const { return data_.data() + n * sample_size(); }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T& operator()(int n, int y, int x, int c) { return data_[index(n, y, x, c)]; }
  const T& operator()(int n, int y, int x, int c) const { return data_[index(n, y, x, c)]; }

  // The batch as a (N x H*W*C) row-major matrix, e.g. for Dense layers.
  MatrixMap<T> matrix() { return {data(), batch(), Eigen::Index(sample_size())}; }
  ConstMatrixMap<T> matrix() const { return {data(), batch(), Eigen::Index(sample_size())}; }

  void fill(T v) { std::fill(data_.begin(), data_.end(), v); }
  template <class S>
  bool has_shape() const { return dims_[1] == S::h && dims_[2] == S::w && dims_[3] == S::c; }

 private:
  std::size_t index(int n, int y, int x, int c) const {
    return ((std::size_t(n) * dims_[1] + y) * dims_[2] + x) * dims_[3] + c;
  }
  std::array<int, 4> dims_{0, 1, 1, 1};
  AlignedVector<T> data_;
};

}  // namespace hubble
