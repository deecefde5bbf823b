// hubble against PyTorch: a narrow variant of the paper's network (every layer type, the 5x5
// stride-2 first convolution, a 'same' convolution) loaded with the weights of
// torch_reference.h5 (made at build time by scripts/make_torch_reference.py, PyTorch float64)
// must reproduce PyTorch's logits, probabilities, loss, every parameter gradient, the gradient
// w.r.t. the input, and the weights after one and three Adam steps.
// Dropout cannot be matched across frameworks in train mode, so both sides run with dropout off
// (PyTorch eval(), hubble Mode::eval).
//
// Error measure: max_i |hubble_i - torch_i| / max_i |torch_i| (the largest error relative to the
// array's scale). For the Adam steps it is measured on the update (after - before), whose scale is
// ~lr, so a wrong update cannot hide behind the much larger weights.
// Tolerances and what they reached (g++ 12 -O2/-O3 -mavx2 -mfma, torch 1.13, this fixture):
//   double: 1e-10 for everything. Reached: logits 7.0e-16, probabilities 4.3e-16, loss 1.9e-16,
//           parameter gradients <= 7.2e-16, d(input) 3.9e-16, Adam update after 1 step 5.6e-14,
//           after 3 steps 1.8e-14 (weights themselves 3.1e-16).
//   float:  forward, loss and gradients 1e-5; Adam updates 1e-3 (a gradient element near Adam's
//           eps = 1e-8 turns its float rounding into a visible change of that element's step).
//           Reached: logits 2.9e-7, probabilities 1.6e-7, loss 7.0e-9, parameter gradients
//           <= 4.9e-7, d(input) 1.5e-7, Adam update after 1 step 6.5e-5, after 3 steps 2.5e-5
//           (weights 5.2e-7).
// The numbers above are printed by the tests (MESSAGE) on every run.
#include <doctest/doctest.h>

#include <filesystem>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "hubble/hubble.hpp"
#include "hubble/io/hdf5.hpp"

namespace {

using namespace hubble;

template <class T>
using TorchRefNet = Network<T, Input<36, 36, 3>, Conv2D<8, 5, 2>, ReLU, MaxPool<2>, Conv2D<16, 3, 1, Same>, ReLU,
                            MaxPool<2>, Flatten, Dropout<0.1>, Dense<32>, ReLU, Dropout<0.25>, Dense<10>, Softmax>;

// The shapes PyTorch used (scripts/make_torch_reference.py): 36x36x3 -> 16x16x8 -> 8x8x8 -> 8x8x16
// -> 4x4x16 -> 256 -> 32 -> 10, and its parameter count.
static_assert(std::is_same_v<TorchRefNet<double>::layer_type<0>::out_shape, Shape<16, 16, 8>>);
static_assert(std::is_same_v<TorchRefNet<double>::layer_type<2>::out_shape, Shape<8, 8, 8>>);
static_assert(std::is_same_v<TorchRefNet<double>::layer_type<3>::out_shape, Shape<8, 8, 16>>);
static_assert(std::is_same_v<TorchRefNet<double>::layer_type<6>::out_shape, Shape<1, 1, 256>>);
static_assert(TorchRefNet<double>::parameter_count == 608 + 1168 + 8224 + 330);

// Generated into the build folder when python3 has torch and h5py (tests/CMakeLists.txt); the
// project stores no HDF5 file it can make itself.
const std::string kFixture = HUBBLE_TORCH_REFERENCE;

// False, with a message naming what is missing, when the reference was not generated.
bool have_fixture() {
  if (std::filesystem::exists(kFixture)) return true;
  MESSAGE("skipped: " << kFixture << " was not generated (needs /usr/bin/python3 with torch and h5py: "
                      << "scripts/install-deps.sh installs them; then re-run cmake)");
  return false;
}
constexpr int kBatch = 4;

struct Tolerances {
  double forward, gradient, adam;
};
constexpr Tolerances kDoubleTol{1e-10, 1e-10, 1e-10};
constexpr Tolerances kFloatTol{1e-5, 1e-5, 1e-3};

// max |a - b| / max |b|; b must not be all zeros (checked, so the comparison can fail).
template <class T>
double rel_error(const T* a, const std::vector<double>& b) {
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  REQUIRE_MESSAGE(scale > 0, "reference array is all zeros: the comparison would be vacuous");
  return err / scale;
}

std::vector<double> difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

template <class T>
Tensor<T> read_input(const h5::File& f) {
  const auto v = f.read<double>("input");
  REQUIRE(v.size() == std::size_t(kBatch) * 36 * 36 * 3);
  Tensor<T> x(kBatch, 36, 36, 3);
  std::transform(v.begin(), v.end(), x.data(), [](double d) { return T(d); });
  return x;
}

// Copies every parameter in by its hubble name; the fixture's sizes must match.
template <class Net>
void load_weights(Net& net, const h5::File& f, const std::string& prefix = "") {
  using T = typename Net::scalar;
  for (auto& p : net.parameters()) {
    const auto v = f.read<double>(prefix + p.name);
    REQUIRE_MESSAGE(v.size() == p.size, p.name, ": fixture has ", v.size(), " values, hubble ", p.size);
    std::transform(v.begin(), v.end(), p.value, [](double d) { return T(d); });
  }
}

std::vector<int> read_labels(const h5::File& f) {
  const auto l = f.read<std::int32_t>("labels");
  return {l.begin(), l.end()};
}

template <class T>
void check_forward_and_gradients(const Tolerances& tol, const std::string& type) {
  const h5::File f = h5::File::open(kFixture);
  TorchRefNet<T> net(/*seed=*/1);
  load_weights(net, f);
  const Tensor<T> x = read_input<T>(f);
  const std::vector<int> labels = read_labels(f);

  const BatchStats s = net.compute_gradients(x, labels, {}, Mode::eval);

  const double e_logits = rel_error(net.logits().data(), f.read<double>("logits"));
  const Tensor<T>& probs = net.forward(x, Mode::eval);
  const double e_probs = rel_error(probs.data(), f.read<double>("probabilities"));
  const double e_loss = rel_error(&s.loss, f.read<double>("loss"));
  MESSAGE(type, ": max rel. error  logits ", e_logits, "  probabilities ", e_probs, "  loss ", e_loss);
  CHECK(e_logits <= tol.forward);
  CHECK(e_probs <= tol.forward);
  CHECK(e_loss <= tol.forward);

  // forward() above ran the same eval pass again, so the gradients of compute_gradients stand.
  double worst = 0;
  for (auto& p : net.parameters()) {
    const double e = rel_error(p.grad, f.read<double>("grad/" + p.name));
    MESSAGE(type, ": max rel. error  grad/", p.name, " ", e);
    CHECK_MESSAGE(e <= tol.gradient, "grad/", p.name);
    worst = std::max(worst, e);
  }

  // dLoss/d(input): the network skips it (no one needs it), so run the first layer's backward
  // with a dx, from the gradient the network left at its output.
  net.compute_gradients(x, labels, {}, Mode::eval);
  Tensor<T> dx;
  net.template layer<0>().backward(x, net.activation(0), net.activation_gradient(0), &dx);
  const double e_dx = rel_error(dx.data(), f.read<double>("grad/input"));
  MESSAGE(type, ": max rel. error  grad/input ", e_dx, "  (worst parameter gradient ", worst, ")");
  CHECK(e_dx <= tol.gradient);
}

template <class T>
void check_adam(const Tolerances& tol, const std::string& type) {
  const h5::File f = h5::File::open(kFixture);
  TorchRefNet<T> net(/*seed=*/1);
  load_weights(net, f);
  const Tensor<T> x = read_input<T>(f);
  const std::vector<int> labels = read_labels(f);
  typename Adam<T>::Options o;
  o.lr = 1e-3, o.beta1 = 0.9, o.beta2 = 0.999, o.eps = 1e-8;  // PyTorch's defaults (hubble's eps is Keras' 1e-7)
  Adam<T> adam(o);
  const auto losses = f.read<double>("loss_steps");
  REQUIRE(losses.size() == 3);
  for (int step = 1; step <= 3; ++step) {
    const BatchStats s = net.train_step(x, labels, adam, {}, Mode::eval);
    const double e_loss = std::abs(s.loss - losses[step - 1]) / losses[step - 1];
    CHECK_MESSAGE(e_loss <= tol.forward, "loss before Adam step ", step, ": rel. error ", e_loss);
    if (step == 2) continue;
    const std::string group = step == 1 ? "after_adam/" : "after_adam3/";
    double worst_update = 0, worst_weight = 0;
    for (auto& p : net.parameters()) {
      const auto before = f.read<double>(p.name), after = f.read<double>(group + p.name);
      std::vector<double> mine(p.size);
      for (std::size_t i = 0; i < p.size; ++i) mine[i] = double(p.value[i]) - before[i];
      const double e_update = rel_error(mine.data(), difference(after, before));
      const double e_weight = rel_error(p.value, after);
      CHECK_MESSAGE(e_update <= tol.adam, group, p.name, ": update rel. error ", e_update);
      worst_update = std::max(worst_update, e_update);
      worst_weight = std::max(worst_weight, e_weight);
    }
    MESSAGE(type, ": ", step, " Adam step(s): max rel. error  update ", worst_update, "  weights ", worst_weight);
  }
}

}  // namespace

TEST_CASE("torch reference: the fixture is non-trivial, so every comparison can fail") {
  if (!have_fixture()) return;
  const h5::File f = h5::File::open(kFixture);
  MESSAGE("fixture made by '", f.attribute("command"), "' with torch ", f.attribute("torch_version"));
  TorchRefNet<double> net(/*seed=*/1);
  for (auto& p : net.parameters()) {
    const auto w = f.read<double>(p.name), g = f.read<double>("grad/" + p.name);
    const auto a1 = f.read<double>("after_adam/" + p.name), a3 = f.read<double>("after_adam3/" + p.name);
    REQUIRE(w.size() == p.size);
    std::size_t nonzero_w = 0, nonzero_g = 0;
    double gmax = 0, step1 = 0, step3 = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      nonzero_w += w[i] != 0;
      nonzero_g += g[i] != 0;
      gmax = std::max(gmax, std::abs(g[i]));
      step1 = std::max(step1, std::abs(a1[i] - w[i]));
      step3 = std::max(step3, std::abs(a3[i] - w[i]));
    }
    INFO(p.name);
    CHECK(nonzero_w == w.size());        // biases are random, not zero: the bias paths are exercised
    CHECK(gmax > 1e-3);                  // gradients far from zero...
    CHECK(nonzero_g * 4 >= g.size());    // ...in at least a quarter of the entries (ReLUs kill some)
    CHECK(step1 > 0.5e-3);               // Adam moved the weights by ~lr
    CHECK(step3 > step1);
  }
  const auto dx = f.read<double>("grad/input");
  CHECK(*std::max_element(dx.begin(), dx.end()) > 1e-4);
}

TEST_CASE("torch reference: double forward, loss and gradients match PyTorch") {
  if (!have_fixture()) return;
  check_forward_and_gradients<double>(kDoubleTol, "double");
}

TEST_CASE("torch reference: double Adam steps match torch.optim.Adam") {
  if (have_fixture()) check_adam<double>(kDoubleTol, "double");
}

TEST_CASE("torch reference: float forward, loss and gradients match PyTorch (float64) loosely") {
  if (!have_fixture()) return;
  check_forward_and_gradients<float>(kFloatTol, "float");
}

TEST_CASE("torch reference: float Adam steps match torch.optim.Adam loosely") {
  if (have_fixture()) check_adam<float>(kFloatTol, "float");
}

TEST_CASE("torch reference: negative controls (the comparison notices a wrong layout or dropout on)") {
  if (!have_fixture()) return;
  const h5::File f = h5::File::open(kFixture);
  const Tensor<double> x = read_input<double>(f);
  const std::vector<int> labels = read_labels(f);

  SUBCASE("conv kernel read in PyTorch's [F][Cin][K][K] order instead of [K][K][Cin][F]") {
    TorchRefNet<double> net(/*seed=*/1);
    load_weights(net, f);
    auto p = net.parameters()[0];  // conv2d_1/kernel
    REQUIRE(p.name == "conv2d_1/kernel");
    const auto w = f.read<double>(p.name);
    constexpr int K = 5, C = 3, F = 8;
    for (int fo = 0; fo < F; ++fo)
      for (int c = 0; c < C; ++c)
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx) p.value[((fo * C + c) * K + ky) * K + kx] = w[((ky * K + kx) * C + c) * F + fo];
    net.forward(x, Mode::eval);
    CHECK(rel_error(net.logits().data(), f.read<double>("logits")) > 1e3 * kFloatTol.forward);
  }
  SUBCASE("dropout on (Mode::train) changes the gradients beyond the tolerance") {
    TorchRefNet<double> net(/*seed=*/1);
    load_weights(net, f);
    net.compute_gradients(x, labels, {}, Mode::train);
    CHECK(rel_error(net.parameters()[4].grad, f.read<double>("grad/dense_1/kernel")) > 1e3 * kFloatTol.gradient);
  }
}
