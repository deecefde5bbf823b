// D4Net (equivariant_net.hpp), the network of the equivariant recipe: its size and, for the real
// 128 x 128 architecture, that its prediction does not change under the 8 symmetries.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "hubble/equivariant_net.hpp"
#include "hubble/improved_net.hpp"
#include "hubble/layers/d4.hpp"

using namespace hubble;

static_assert(D4Net::parameter_count == 202578,
              "D4Net's parameter count changed: update equivariant_net.hpp and the docs");
static_assert(D4Net::parameter_count < 1000000, "the equivariant recipe's network must stay under 1M parameters");

TEST_CASE("D4Net: the probabilities are the same for all 8 rotations and flips of an image; ImprovedNet's are not") {
  Tensor<float> x(2, 128, 128, 3);
  Rng r(9);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
  D4Net net(3);
  Tensor<float> reference = net.forward(x, Mode::eval);
  ImprovedNet plain(3);
  const Tensor<float> plain_reference = plain.forward(x, Mode::eval);
  double plain_change = 0;
  for (data::Dihedral t : data::all_dihedral) {
    Tensor<float> moved;
    d4::transform_spatial(x, t, moved);
    const Tensor<float>& y = net.forward(moved, Mode::eval);
    REQUIRE(y.size() == reference.size());
    for (std::size_t i = 0; i < y.size(); ++i) CHECK(y[i] == doctest::Approx(reference[i]).epsilon(1e-4));
    const Tensor<float>& p = plain.forward(moved, Mode::eval);
    for (std::size_t i = 0; i < p.size(); ++i)
      plain_change = std::max(plain_change, double(std::abs(p[i] - plain_reference[i])));
  }
  CHECK(plain_change > 1e-4);  // the check above could fail: a plain ConvNet's output does move
}
