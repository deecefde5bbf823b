#pragma once
// Input<H, W, C>: names the shape of one sample; the first entry of every Sequential.
#include "hubble/core/shape.hpp"

namespace hubble {

template <int H, int W, int C>
struct Input {
  using shape = Shape<H, W, C>;
  static std::string spec() { return "Input<" + std::to_string(H) + "," + std::to_string(W) + "," + std::to_string(C) + ">"; }
};

}  // namespace hubble
