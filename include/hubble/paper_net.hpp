#pragma once
// The network of the Galaxy10 DECaLS paper (Table I): 128x128x3 in, 10 classes out, 654,922
// parameters. Conv 5x5/2 x32 -> pool -> conv 3x3 x64 -> pool -> conv 3x3 x128 -> pool ->
// conv 3x3 x256 -> pool -> flatten (1024) -> dropout 0.1 -> dense 256 -> dropout 0.25 ->
// dense 10 -> softmax; ReLU after every conv and dense but the last; no padding.
#include "hubble/data/galaxy10_classes.hpp"
#include "hubble/hubble.hpp"
#include "hubble/model_registry.hpp"

namespace hubble {

template <class T = float, class ConvKernel = kernels::Default>
using PaperNetT = Network<T, Input<128, 128, 3>,
                          Conv2D<32, 5, 2, ConvKernel>, ReLU, MaxPool<2>,
                          Conv2D<64, 3, 1, ConvKernel>, ReLU, MaxPool<2>,
                          Conv2D<128, 3, 1, ConvKernel>, ReLU, MaxPool<2>,
                          Conv2D<256, 3, 1, ConvKernel>, ReLU, MaxPool<2>,
                          Flatten, Dropout<0.1>, Dense<256>, ReLU, Dropout<0.25>, Dense<10>, Softmax>;

using PaperNet = PaperNetT<>;

// hubble::Model::load knows PaperNet checkpoints (model_registry.hpp).
template <>
struct builtin_model<0> {
  using net = PaperNet;
  static constexpr const auto& class_names = data::galaxy10_class_names;
};

}  // namespace hubble
