// Layer fusion (Conv2D+ReLU forward, ReLU+MaxPool backward) gives exactly the unfused results.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "hubble/hubble.hpp"

using namespace hubble;

namespace {
// Every fusable pattern: Conv2D->ReLU->MaxPool (both fusions), a Same conv->ReLU->conv (forward
// fusion only), ReLU->overlapping MaxPool<3,2>, and a conv->ReLU at the end of the feature stack.
template <class K>
using FusableNet = Network<float, Input<13, 13, 3>, Conv2D<16, 3, 1, K>, ReLU, MaxPool<2>, Conv2D<8, 3, 1, Same, K>, ReLU,
                           Conv2D<32, 1, 1, K>, ReLU, MaxPool<3, 2>, Conv2D<5, 2, 1, K>, ReLU, Flatten, Dense<4>, Softmax>;

template <class T>
bool same_bits(const T* a, const T* b, std::size_t n) { return std::memcmp(a, b, n * sizeof(T)) == 0; }

template <class Net>
void check_fusion_is_exact() {
  Net fused(3), plain(3);
  plain.set_fusion(false);
  CHECK(fused.fusion());
  CHECK_FALSE(plain.fusion());
  Tensor<float> x(6, 13, 13, 3);
  Rng r(11);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform()) - 0.5f;  // both signs reach every ReLU
  const std::vector<int> y{0, 1, 2, 3, 1, 0};
  const BatchStats a = fused.compute_gradients(x, y, {}, Mode::eval);
  const BatchStats b = plain.compute_gradients(x, y, {}, Mode::eval);
  CHECK(a.loss == b.loss);
  const auto& out_a = fused.activation(Net::layer_count - 1);
  const auto& out_b = plain.activation(Net::layer_count - 1);
  REQUIRE(out_a.size() == out_b.size());
  CHECK(same_bits(out_a.data(), out_b.data(), out_a.size()));
  auto pa = fused.parameters(), pb = plain.parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].name);
    CHECK(same_bits(pa[i].grad, pb[i].grad, pa[i].size));
  }
  // Every ReLU output is kept either way; what fusion skips is the conv's pre-ReLU output and
  // the gradient at a ReLU that feeds a MaxPool.
  for (std::size_t i : {1, 4, 6, 9}) CHECK(same_bits(fused.activation(i).data(), plain.activation(i).data(), plain.activation(i).size()));
  for (std::size_t i : {0, 3, 5, 8}) {
    CHECK(fused.activation(i).size() == 0);
    CHECK(plain.activation(i).size() > 0);
  }
  CHECK(fused.activation_gradient(1).size() == 0);  // ReLU -> MaxPool: folded into the pool's backward
  CHECK(fused.activation_gradient(6).size() == 0);
  CHECK(fused.activation_gradient(4).size() > 0);   // ReLU -> Conv2D: an ordinary gradient
  for (std::size_t i : {0, 3, 4, 5}) {
    INFO("gradient at layer ", i);
    CHECK(same_bits(fused.activation_gradient(i).data(), plain.activation_gradient(i).data(), plain.activation_gradient(i).size()));
  }
}
}  // namespace

TEST_CASE_TEMPLATE("fusion: Conv2D+ReLU and ReLU+MaxPool give bit-identical outputs and gradients", K, kernels::Tuned,
                   kernels::ImplicitGemm, kernels::Winograd4x4, kernels::PackedGemm, kernels::Naive) {
  // Naive has no forward_relu: the layer falls back to forward plus an in-place ReLU.
  check_fusion_is_exact<FusableNet<K>>();
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
