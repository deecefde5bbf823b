#pragma once
// The convolution variant a Conv2D uses when none is named. See docs/kernels.md for the
// measurements behind the choice.
#include "hubble/kernels/im2col_eigen.hpp"
#include "hubble/kernels/naive.hpp"

namespace hubble::kernels {
using Default = Im2colEigen;
}
