#pragma once
// hubble's rotation- and mirror-invariant Galaxy10 network for the `equivariant` recipe: D4Net.
// Every convolution is a D4 group convolution (layers/d4_conv.hpp): each learned filter is used in
// its 8 orientations (4 rotations x mirror), so a feature map turns and flips with the image
// instead of being relearned for every pose; group pooling then keeps, per field, the strongest
// orientation, and the classifier sees features that do not change at all when the galaxy is
// rotated by 90 degrees or mirrored (tests/test_d4.cpp checks this to float rounding).
//
//   128x128x3 -> D4Lift 6x6/2, 8 fields  -> 62x62x(8x8)   BatchNorm, ReLU, MaxPool 2 -> 31
//             -> D4Conv 4x4,  16 fields  -> 28x28x(16x8)  BatchNorm, ReLU, MaxPool 2 -> 14
//             -> D4Conv 3x3,  32 fields  -> 12x12x(32x8)  BatchNorm, ReLU, MaxPool 2 -> 6
//             -> D4Conv 3x3,  64 fields  ->  4x4x(64x8)   BatchNorm, ReLU
//             -> D4GroupPool (max over the 8 orientations) -> 4x4x64 -> global average -> 64
//             -> Dropout 0.3 -> Dense 10 -> Softmax
// Every size is chosen so that each layer commutes exactly with the 8 symmetries: a convolution
// needs (H - K) divisible by its stride (128 - 6 = 122 = 2 x 61), a 2x2 max-pool an even side.
#include "hubble/data/galaxy10_classes.hpp"
#include "hubble/hubble.hpp"
#include "hubble/model_registry.hpp"

namespace hubble {

// One line per block, as in the diagram above.
// clang-format off
template <class T = float, class ConvKernel = kernels::Default>
using D4NetT = Network<T, Input<128, 128, 3>,
                       D4Lift<8, 6, 2, ConvKernel>, D4BatchNorm, ReLU, MaxPool<2>,
                       D4Conv<16, 4, 1, ConvKernel>, D4BatchNorm, ReLU, MaxPool<2>,
                       D4Conv<32, 3, 1, ConvKernel>, D4BatchNorm, ReLU, MaxPool<2>,
                       D4Conv<64, 3, 1, ConvKernel>, D4BatchNorm, ReLU,
                       D4GroupPool, GlobalAvgPool, Dropout<0.3>, Dense<10>, Softmax>;
// clang-format on

using D4Net = D4NetT<>;

// hubble::Model::load knows D4Net checkpoints (model_registry.hpp).
template <>
struct builtin_model<2> {
  using net = D4Net;
  static constexpr const auto& class_names = data::galaxy10_class_names;
};

}  // namespace hubble
