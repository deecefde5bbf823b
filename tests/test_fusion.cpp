// Layer fusion (Conv2D+ReLU forward, ReLU+MaxPool backward) gives exactly the unfused results.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "hubble/hubble.hpp"
#include "hubble/kernels/variants.hpp"

using namespace hubble;

namespace {
// Every fusable pattern: Conv2D->ReLU->MaxPool<2> with a leftover row and column (11 -> 5), a
// Same conv->ReLU->conv (ReLU fused into the conv only), ReLU->overlapping MaxPool<3,2> (no
// pooling in the conv), a conv->ReLU at the end of the feature stack; and MaxPool<3>.
template <class K>
using FusableNet = Network<float, Input<13, 13, 3>, Conv2D<16, 3, 1, K>, ReLU, MaxPool<2>, Conv2D<8, 3, 1, Same, K>, ReLU,
                           Conv2D<32, 1, 1, K>, ReLU, MaxPool<3, 2>, Conv2D<5, 2, 1, K>, ReLU, Flatten, Dense<4>, Softmax>;
// The plan (network/fusion.hpp) for FusableNet: which layer indices start a fused step.
using Plan = FusionPlan<FusableNet<kernels::Tuned>::layers_type, float>;
static_assert(Plan::conv_relu<0>() && Plan::conv_relu_pool<0>() && Plan::relu_pool_backward<2>());
static_assert(Plan::conv_relu<3>() && !Plan::conv_relu_pool<3>());  // conv -> ReLU -> conv
static_assert(Plan::conv_relu<5>() && !Plan::conv_relu_pool<5>());  // overlapping MaxPool<3, 2>
static_assert(Plan::conv_relu<8>() && !Plan::conv_relu_pool<8>());  // conv -> ReLU -> Flatten
static_assert(!Plan::conv_relu<1>() && !Plan::conv_relu<2>() && !Plan::conv_relu<11>() && !Plan::relu_pool_backward<1>());

template <class K>
using Pool3Net = Network<float, Input<20, 20, 2>, Conv2D<16, 3, 1, K>, ReLU, MaxPool<3>, Conv2D<40, 3, 1, K>, ReLU, MaxPool<2>,
                         Flatten, Dense<4>>;

// A 9 x 9 output pooled to 4 x 4: Winograd computes only the 2 x 2 tiles of 4 x 4 under whole
// windows, not the third row and column of tiles (the unfused network computes all 3 x 3).
template <class K>
using TrimNet = Network<float, Input<11, 11, 3>, Conv2D<16, 3, 1, K>, ReLU, MaxPool<2>, Flatten, Dense<4>>;

template <class T>
bool same_bits(const T* a, const T* b, std::size_t n) { return std::memcmp(a, b, n * sizeof(T)) == 0; }

template <class Net>
void check_fusion_is_exact(int batch) {
  Net fused(3), plain(3);
  plain.set_fusion(false);
  CHECK(fused.fusion());
  CHECK_FALSE(plain.fusion());
  using In = typename Net::input_shape;
  Tensor<float> x(batch, In::h, In::w, In::c);
  Rng r(11);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform()) - 0.5f;  // both signs reach every ReLU
  std::vector<int> y;
  for (int i = 0; i < batch; ++i) y.push_back(i % 4);
  const BatchStats a = fused.compute_gradients(x, y, {}, Mode::eval);
  const BatchStats b = plain.compute_gradients(x, y, {}, Mode::eval);
  CHECK(a.loss == b.loss);
  auto pa = fused.parameters(), pb = plain.parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].name);
    CHECK(same_bits(pa[i].grad, pb[i].grad, pa[i].size));
  }
  // Every tensor fusion keeps is bit-identical; the ones it skips are empty.
  for (std::size_t i = 0; i < Net::layer_count; ++i) {
    INFO("layer ", i, " ", Net::layer_names()[i]);
    REQUIRE(plain.activation(i).size() > 0);
    if (fused.activation(i).size() > 0) {
      REQUIRE(fused.activation(i).size() == plain.activation(i).size());
      CHECK(same_bits(fused.activation(i).data(), plain.activation(i).data(), plain.activation(i).size()));
    }
    if (i + 2 < Net::layer_count && fused.activation_gradient(i).size() > 0) {
      REQUIRE(fused.activation_gradient(i).size() == plain.activation_gradient(i).size());
      CHECK(same_bits(fused.activation_gradient(i).data(), plain.activation_gradient(i).data(), plain.activation_gradient(i).size()));
    }
  }
}
}  // namespace

// Every variant of kernels/variants.hpp. Naive (and any variant without forward_relu) has the
// layer fall back to forward plus an in-place ReLU.
TEST_CASE_TEMPLATE_DEFINE("fusion: Conv2D+ReLU(+MaxPool) and ReLU+MaxPool give bit-identical outputs and gradients", K,
                          fusion_is_exact) {
  for (int batch : {1, 6}) {
    CAPTURE(batch);
    check_fusion_is_exact<FusableNet<K>>(batch);
    check_fusion_is_exact<Pool3Net<K>>(batch);
    check_fusion_is_exact<TrimNet<K>>(batch);
  }
}
TEST_CASE_TEMPLATE_APPLY(fusion_is_exact, kernels::AllVariants);

TEST_CASE("fusion: which tensors are skipped") {
  Tensor<float> x(2, 13, 13, 3);
  x.fill(0.25f);
  FusableNet<kernels::ImplicitGemm> implicit;  // pools inside the convolution
  implicit.forward(x);
  FusableNet<kernels::Naive> naive;  // ReLU in a second pass, pool separate
  naive.forward(x);
  FusableNet<kernels::Winograd4x4> winograd;  // pools in its output transform: 2 divides its 4x4 tiles
  winograd.forward(x);
  CHECK(winograd.activation(1).size() == 0);
  Pool3Net<kernels::Winograd4x4> pool3;  // ... but declines MaxPool<3>, and pools MaxPool<2>
  pool3.forward(Tensor<float>(1, 20, 20, 2));
  CHECK(pool3.activation(1).size() == 18 * 18 * 16);
  CHECK(pool3.activation(4).size() == 0);
  for (std::size_t conv : {0, 3, 5, 8}) {
    CHECK(implicit.activation(conv).size() == 0);  // a conv's pre-ReLU output
    CHECK(naive.activation(conv).size() == 0);
  }
  CHECK(implicit.activation(1).size() == 0);  // the ReLU's output, pooled in the conv's pass
  CHECK(naive.activation(1).size() == 2 * 11 * 11 * 16);
  CHECK(implicit.activation(6).size() > 0);  // MaxPool<3,2> overlaps: pooled separately
  CHECK(implicit.activation(2).size() == 2 * 5 * 5 * 16);
  const std::vector<int> labels{0, 1};
  implicit.compute_gradients(x, labels);
  CHECK(implicit.activation_gradient(1).size() == 0);  // ReLU -> MaxPool: in the pool's backward
  CHECK(implicit.activation_gradient(4).size() > 0);   // ReLU -> Conv2D: an ordinary gradient
}

TEST_CASE("fusion: a fused training step equals an unfused one, and switching fusion mid-run is harmless") {
  using Net = FusableNet<kernels::Tuned>;
  Net fused(5), plain(5);
  plain.set_fusion(false);
  Adam<float> adam_a, adam_b;
  Tensor<float> x(4, 13, 13, 3);
  Rng r(2);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
  const std::vector<int> y{3, 2, 1, 0};
  for (int step = 0; step < 3; ++step) {
    fused.train_step(x, y, adam_a);  // train mode: dropout-free net, so both see the same batch
    plain.train_step(x, y, adam_b);
    if (step == 1) fused.set_fusion(false), plain.set_fusion(true);
  }
  auto pa = fused.parameters(), pb = plain.parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(same_bits(pa[i].value, pb[i].value, pa[i].size));
}

TEST_CASE("fusion: switching it off between a forward and its backward is harmless") {
  using Net = FusableNet<kernels::ImplicitGemm>;
  Net a(4), b(4);
  b.set_fusion(false);
  Tensor<float> x(3, 13, 13, 3);
  Rng r(8);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform()) - 0.5f;
  a.forward(x, Mode::eval);
  b.forward(x, Mode::eval);
  a.set_fusion(false);  // the backward still follows the fused forward
  Tensor<float> dy = a.activation(Net::layer_count - 1);
  for (std::size_t i = 0; i < dy.size(); ++i) dy[i] = float(r.uniform()) - 0.5f;
  a.backward(dy);
  b.backward(dy);
  auto pa = a.parameters(), pb = b.parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(same_bits(pa[i].grad, pb[i].grad, pa[i].size));
}
