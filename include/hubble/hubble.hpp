#pragma once
// hubble — header-only C++20 ConvNets with hand-written backprop. This umbrella header brings
// the core: tensors, layers, networks, losses, optimisers and the gradient checker.
// Data (hubble/data/), checkpoints (hubble/io/) and metrics (hubble/metrics/) are included
// separately because they pull in HDF5 and stb.
#include "hubble/check/gradient_check.hpp"
#include "hubble/core/tensor.hpp"
#include "hubble/kernels/variants.hpp"
#include "hubble/layers/activations.hpp"
#include "hubble/layers/batchnorm.hpp"
#include "hubble/layers/conv2d.hpp"
#include "hubble/layers/d4_conv.hpp"
#include "hubble/layers/d4_pool.hpp"
#include "hubble/layers/dense.hpp"
#include "hubble/layers/dropout.hpp"
#include "hubble/layers/flatten.hpp"
#include "hubble/layers/global_avg_pool.hpp"
#include "hubble/layers/input.hpp"
#include "hubble/layers/maxpool.hpp"
#include "hubble/network/sequential.hpp"
#include "hubble/optim/adam.hpp"
#include "hubble/optim/rmsprop.hpp"
#include "hubble/optim/sgd.hpp"
