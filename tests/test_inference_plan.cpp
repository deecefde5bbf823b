// The inference plan (lowp/inference_plan.hpp): a trained network rewritten as conv stages with
// BatchNorm folded in, a bridge and dense stages; run in fp32 it must give the network's own
// probabilities, and it refuses what it cannot run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "hubble/equivariant_net.hpp"
#include "hubble/improved_net.hpp"
#include "hubble/lowp/inference_plan.hpp"
#include "hubble/paper_net.hpp"
#include "support.hpp"

using namespace hubble;

namespace {
Tensor<float> random_images(int n, std::uint64_t seed) {
  Tensor<float> x(n, 128, 128, 3);
  Rng r(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
  return x;
}
double max_abs_difference(const float* a, const float* b, std::size_t n) {
  double m = 0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}
}  // namespace

TEST_CASE("inference plan: PaperNet's plan has the paper's stages and gives the network's probabilities") {
  PaperNet net(5);
  const lowp::InferencePlan plan = lowp::plan_of(net);
  REQUIRE(plan.convs.size() == 4);
  for (const auto& s : plan.convs) {
    CHECK(s.relu);
    CHECK(s.pool == 2);
    CHECK_FALSE(s.batchnorm_folded);
  }
  CHECK(plan.convs[0].g.k == 5);
  CHECK(plan.convs[0].g.stride == 2);
  CHECK(plan.bridge == lowp::Bridge::flatten);
  REQUIRE(plan.dense.size() == 2);
  CHECK(plan.dense[0].in == 1024);
  CHECK(plan.dense[0].relu);
  CHECK_FALSE(plan.dense[1].relu);
  CHECK(plan.softmax);
  CHECK(plan.classes() == 10);
  const Tensor<float> x = random_images(2, 1);
  const Tensor<float>& expected = net.forward(x, Mode::eval);
  const std::vector<float> got = lowp::run_fp32(plan, x.data(), 2);
  REQUIRE(got.size() == expected.size());
  CHECK(max_abs_difference(got.data(), expected.data(), got.size()) < 1e-5);
}

TEST_CASE("inference plan: ImprovedNet's BatchNorm is folded into its convolutions exactly enough") {
  ImprovedNet net(6);
  // Moving statistics and affine parameters far from the identity, so that a wrong fold shows.
  Rng r(7);
  net.for_each_layer([&](auto& layer, std::size_t) {
    if constexpr (requires { layer.for_each_buffer([](const char*, float*, std::size_t) {}); }) {
      layer.for_each_buffer([&](const char* name, float* v, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i)
          v[i] = std::string(name) == "moving_variance" ? float(0.2 + 2 * r.uniform()) : float(r.uniform() - 0.5);
      });
      layer.for_each_parameter([&](const char*, float* v, float*, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) v[i] = float(0.5 + r.uniform());
      });
    }
  });
  const lowp::InferencePlan plan = lowp::plan_of(net);
  REQUIRE(plan.convs.size() == 4);
  for (const auto& s : plan.convs) CHECK(s.batchnorm_folded);
  CHECK(plan.convs[3].pool == 0);
  CHECK(plan.bridge == lowp::Bridge::global_avg_pool);
  REQUIRE(plan.dense.size() == 1);
  const Tensor<float> x = random_images(2, 2);
  const Tensor<float>& expected = net.forward(x, Mode::eval);
  const std::vector<float> got = lowp::run_fp32(plan, x.data(), 2);
  REQUIRE(got.size() == expected.size());
  // Folding reorders the arithmetic (scale applied to the weights, not the sums): float rounding only.
  CHECK(max_abs_difference(got.data(), expected.data(), got.size()) < 1e-4);
  // And the fold matters: the plain conv weights would give other probabilities.
  lowp::InferencePlan unfolded = plan;
  const auto desc = describe(net);
  for (const auto& l : desc.layers)
    if (l.kind == "Conv2D" && l.name == plan.convs[0].name)
      for (const auto& a : l.arrays)
        if (a.name == "kernel") unfolded.convs[0].w.assign(a.data, a.data + a.size());
  const std::vector<float> wrong = lowp::run_fp32(unfolded, x.data(), 2);
  CHECK(max_abs_difference(wrong.data(), expected.data(), wrong.size()) > 1e-3);
}

TEST_CASE("inference plan: layers and orders it cannot run are refused by name") {
  D4Net d4(1);
  const std::string e = test_support::error_of([&] { lowp::plan_of(d4); });
  CHECK(e.find("cannot run layer") != std::string::npos);
  CHECK(e.find("D4Lift") != std::string::npos);
  using BnAfterRelu = Network<float, Input<8, 8, 1>, Conv2D<2, 3>, ReLU, BatchNorm, Flatten, Dense<2>, Softmax>;
  BnAfterRelu odd(1);
  CHECK(test_support::error_of([&] {
          lowp::plan_of(odd);
        }).find("BatchNorm is folded into the Conv2D right before it") != std::string::npos);
  using OverlappingPool = Network<float, Input<8, 8, 1>, Conv2D<2, 3>, MaxPool<2, 1>, Flatten, Dense<2>>;
  OverlappingPool ov(1);
  CHECK(test_support::error_of([&] { lowp::plan_of(ov); }).find("stride is their size") != std::string::npos);
}
