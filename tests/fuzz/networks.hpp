#pragma once
// The networks the checkpoint fuzz target loads into: the paper's network, and a small one of
// the same layer kinds whose checkpoints are ~1000 times smaller than PaperNet's 2.6 MB, so the
// fuzzer spends its mutations on the HDF5 structure rather than on weight bytes.
#include "hubble/hubble.hpp"
#include "hubble/paper_net.hpp"

namespace hubble::fuzz {

using SmallNet = Sequential<Input<8, 8, 2>, Conv2D<3, 3>, ReLU, MaxPool<2>, Flatten, Dropout<0.3>, Dense<4>, Softmax>;

}  // namespace hubble::fuzz
