#pragma once
// ParamRef: a view of one trainable array (a layer's weights or biases) and its gradient.
// Networks hand these to optimisers, checkpoints and the gradient checker.
#include <cstddef>
#include <string>

namespace hubble {

template <class T>
struct ParamRef {
  std::string name;   // "conv2d_1/kernel", "dense_2/bias", ...
  T* value;
  T* grad;
  std::size_t size;
};

}  // namespace hubble
