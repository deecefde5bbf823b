// Inference fusion of Conv2D + BatchNorm + ReLU (+ MaxPool): BatchNorm's affine map folded into
// the convolution's store (network/fusion.hpp) gives the unfolded chain's output to rounding,
// follows every change of the weights and statistics, and leaves training and backward alone.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "hubble/hubble.hpp"
#include "hubble/improved_net.hpp"

using namespace hubble;

namespace {
// conv 5x5/2 + BN + ReLU + MaxPool<2> (ImplicitGemm pools in its store), conv 3x3 + BN + ReLU +
// MaxPool<2> (Winograd under Tuned from 8 tiles: the pool runs separately), conv 3x3 + BN + ReLU
// at the end of the stack, as in ImprovedNet.
template <class K>
using BnNet =
    Network<float, Input<29, 29, 3>, Conv2D<16, 5, 2, K>, BatchNorm, ReLU, MaxPool<2>, Conv2D<24, 3, 1, K>, BatchNorm,
            ReLU, MaxPool<2>, Conv2D<40, 1, 1, K>, BatchNorm, ReLU, GlobalAvgPool, Dense<4>, Softmax>;
using TunedPlan = FusionPlan<BnNet<kernels::Tuned>::layers_type, float>;
static_assert(TunedPlan::conv_bn_relu<0>() && TunedPlan::conv_bn_relu_pool<0>());
static_assert(TunedPlan::conv_bn_relu<4>() && TunedPlan::conv_bn_relu_pool<4>());
static_assert(TunedPlan::conv_bn_relu<8>() && !TunedPlan::conv_bn_relu_pool<8>());  // -> GlobalAvgPool
static_assert(!TunedPlan::conv_bn_relu<1>() && !TunedPlan::conv_relu<0>() && TunedPlan::folds_batchnorm());
// A variant without forward_affine_relu runs the layers one by one.
static_assert(!FusionPlan<BnNet<kernels::Naive>::layers_type, float>::folds_batchnorm());

// Statistics and scales far from the identity, so that a fold that forgot one would show.
template <class Net>
void randomise_batchnorm(Net& net, std::uint64_t seed) {
  Rng r(seed);
  for (auto& b : net.buffers()) {
    const bool var = b.name.find("variance") != std::string::npos;
    for (std::size_t i = 0; i < b.size; ++i) b.value[i] = var ? float(0.2 + 2 * r.uniform()) : float(r.uniform() - 0.5);
  }
  for (auto& p : net.parameters())
    if (p.name.find("batch_norm") != std::string::npos ||
        (p.name.find("conv2d") != std::string::npos && p.name.ends_with("bias")))
      for (std::size_t i = 0; i < p.size; ++i)
        p.value[i] = float(p.name.ends_with("gamma") ? 0.5 + r.uniform() : r.uniform() - 0.5);
}

template <class Net>
Tensor<float> images(int batch, std::uint64_t seed) {
  using In = typename Net::input_shape;
  Tensor<float> x(batch, In::h, In::w, In::c);
  Rng r(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform()) - 0.3f;
  return x;
}

// max |a - b| / (max |b| + tiny)
double relative_difference(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / scale;
}

template <class K>
void check_folded_matches_layers(int batch) {
  using Net = BnNet<K>;
  Net folded(7), plain(7);
  randomise_batchnorm(folded, 1);
  randomise_batchnorm(plain, 1);
  plain.set_fusion(false);
  const Tensor<float> x = images<Net>(batch, 3);
  const Tensor<float> a = folded.forward(x, Mode::eval), b = plain.forward(x, Mode::eval);
  CHECK(relative_difference(a, b) < 1e-5);
  CHECK(relative_difference(folded.logits(), plain.logits()) < 1e-5);
  // The tensors of a folded step are not stored: the conv's, BatchNorm's (and the ReLU's, pooled).
  for (std::size_t i : {0, 1, 4, 5, 8, 9}) CHECK(folded.activation(i).size() == 0);
  CHECK(folded.activation(10).size() > 0);                 // ReLU -> GlobalAvgPool: the ReLU's output is the step's
  if constexpr (!std::is_same_v<K, kernels::Winograd4x4>)  // Winograd cannot pool in its store
    CHECK(folded.activation(2).size() == 0);               // ImplicitGemm pooled conv1 in its pass
}
}  // namespace

TEST_CASE_TEMPLATE("fusion: Conv2D+BatchNorm+ReLU(+MaxPool) at inference equals the layers one by one", K,
                   kernels::ImplicitGemm, kernels::Winograd4x4, kernels::Tuned) {
  for (int batch : {1, 9}) {  // Tuned: ImplicitGemm below 8 tiles, Winograd from 8
    CAPTURE(batch);
    check_folded_matches_layers<K>(batch);
  }
}

TEST_CASE("fusion: the folded BatchNorm follows changes of statistics, scales and conv biases") {
  using Net = BnNet<kernels::Tuned>;
  Net folded(2), plain(2);
  plain.set_fusion(false);
  const Tensor<float> x = images<Net>(3, 5);
  for (std::uint64_t round = 0; round < 3; ++round) {  // the same objects, new values each round
    randomise_batchnorm(folded, 10 + round);
    randomise_batchnorm(plain, 10 + round);
    const Tensor<float> a = folded.forward(x, Mode::eval), b = plain.forward(x, Mode::eval);
    CHECK(relative_difference(a, b) < 1e-5);
  }
}

TEST_CASE("fusion: a backward after a folded inference pass gives the unfolded gradients") {
  using Net = BnNet<kernels::Tuned>;
  Net a(4), b(4);
  randomise_batchnorm(a, 6);
  randomise_batchnorm(b, 6);
  b.set_fusion(false);
  const Tensor<float> x = images<Net>(2, 9);
  a.forward(x, Mode::eval);
  b.forward(x, Mode::eval);
  Tensor<float> dy = b.activation(Net::layer_count - 1);
  Rng r(3);
  for (std::size_t i = 0; i < dy.size(); ++i) dy[i] = float(r.uniform()) - 0.5f;
  a.backward(dy);  // runs the forward again, unfolded: BatchNorm's backward needs its input
  b.backward(dy);
  auto pa = a.parameters(), pb = b.parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].name);
    CHECK(std::memcmp(pa[i].grad, pb[i].grad, pa[i].size * sizeof(float)) == 0);
  }
  // Training mode never folds: the batch's own statistics.
  a.forward(x, Mode::train);
  CHECK(a.activation(1).size() > 0);
}

TEST_CASE("fusion: ImprovedNet at inference, folded, equals its layers one by one") {
  ImprovedNet folded(1), plain(1);
  randomise_batchnorm(folded, 2);
  randomise_batchnorm(plain, 2);
  plain.set_fusion(false);
  for (int batch : {1, 8}) {
    CAPTURE(batch);
    const Tensor<float> x = images<ImprovedNet>(batch, 4);
    const Tensor<float> a = folded.forward(x, Mode::eval), b = plain.forward(x, Mode::eval);
    CHECK(relative_difference(a, b) < 1e-5);
    CHECK(relative_difference(folded.logits(), plain.logits()) < 1e-5);
  }
}
