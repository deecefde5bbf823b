// The compile-time composition, the paper's network, the training step and the optimisers.
#include <doctest/doctest.h>

#include <sstream>

#include "hubble/kernels/winograd.hpp"
#include "hubble/layers/global_avg_pool.hpp"
#include "hubble/paper_net.hpp"

// paper_net.hpp registers PaperNet for hubble::Model (model_registry.hpp) without pulling in the
// checkpoint code and HDF5 (model.hpp instantiates that).
#ifdef H5_VERS_MAJOR
#error "paper_net.hpp includes HDF5"
#endif

using namespace hubble;

// Compile-time facts about the paper's network (Table I of the paper).
static_assert(PaperNet::parameter_count == 654922);
static_assert(std::is_same_v<PaperNet::output_shape, Shape<1, 1, 10>>);
static_assert(std::is_same_v<PaperNet::layer_type<0>::out_shape, Shape<62, 62, 32>>);
static_assert(std::is_same_v<PaperNet::layer_type<12>::out_shape, Shape<1, 1, 1024>>);
static_assert(PaperNet::ends_with_softmax);

TEST_CASE("summary() of the paper's network equals the paper's Table I") {
  const auto rows = PaperNet::summary_rows();
  const std::vector<std::pair<std::string, std::size_t>> table1 = {
      {"62x62x32", 2432}, {"31x31x32", 0}, {"29x29x64", 18496}, {"14x14x64", 0}, {"12x12x128", 73856},
      {"6x6x128", 0},     {"4x4x256", 295168}, {"2x2x256", 0}, {"1024", 0}, {"1024", 0},
      {"256", 262400},    {"256", 0},        {"10", 2570}};
  REQUIRE(rows.size() == table1.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    INFO("row ", i, ": ", rows[i].name);
    CHECK(rows[i].shape == table1[i].first);
    CHECK(rows[i].params == table1[i].second);
  }
  CHECK(rows[0].type == "Conv2D+ReLU");
  CHECK(rows.back().type == "Dense+Softmax");
  std::ostringstream os;
  PaperNet::summary(os);
  CHECK(os.str().find("Total params: 654,922") != std::string::npos);
}

TEST_CASE("summary() keeps its columns aligned when a name is longer than Keras' 30 characters") {
  using Net = Sequential<Input<8, 8, 3>, Conv2D<4, 3>, ReLU, GlobalAvgPool, Dense<2>, Softmax>;
  std::ostringstream os;
  Net::summary(os);
  std::istringstream lines(os.str());
  std::string line;
  std::vector<std::size_t> widths;
  while (std::getline(lines, line))
    if (line.find(" (") != std::string::npos || line.rfind("Layer (type)", 0) == 0 || line[0] == '=' || line[0] == '-')
      widths.push_back(line.size());
  REQUIRE(widths.size() >= 5);
  for (std::size_t w : widths) CHECK(w == widths[0]);  // every row, header and rule ends in the same column
  CHECK(os.str().find("global_avg_pool_1 (GlobalAvgPool)") != std::string::npos);
}

namespace {
template <int Tenths>
struct ScaledReLUPolicy {  // y = max(x, 0) * Tenths / 10: a policy with a parameter
  static constexpr const char* kind = "ScaledReLU";
  static std::string spec() { return "ScaledReLU<" + std::to_string(Tenths) + ">"; }
  template <class T>
  static void forward(const T* x, T* y, std::size_t n, std::size_t) {
    for (std::size_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] * T(Tenths) / T(10) : T(0);
  }
  template <class T>
  static void backward(const T* x, const T*, const T* dy, T* dx, std::size_t n, std::size_t) {
    for (std::size_t i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] * T(Tenths) / T(10) : T(0);
  }
};
}  // namespace

TEST_CASE("architecture() records an activation policy's own spec, so its parameter tells networks apart") {
  using A = Sequential<Input<4, 4, 1>, Flatten, Dense<3>, Activation<ScaledReLUPolicy<5>>, Dense<2>>;
  using B = Sequential<Input<4, 4, 1>, Flatten, Dense<3>, Activation<ScaledReLUPolicy<7>>, Dense<2>>;
  CHECK(A::architecture().find("ScaledReLU<5>") != std::string::npos);
  CHECK(A::architecture() != B::architecture());
  CHECK(PaperNet::architecture().find(" ReLU ") != std::string::npos);  // no spec(): the kind
}

TEST_CASE("parameter names follow Keras' numbering") {
  using Net = Sequential<Input<8, 8, 1>, Conv2D<2, 3>, ReLU, Conv2D<2, 3>, Flatten, Dense<3>, Softmax>;
  Net net;
  std::vector<std::string> names;
  for (auto& p : net.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"conv2d_1/kernel", "conv2d_1/bias", "conv2d_2/kernel", "conv2d_2/bias",
                                          "dense_1/kernel", "dense_1/bias"});
  CHECK(Net::architecture() == "Input<8,8,1> Conv2D<2,3,1,valid> ReLU Conv2D<2,3,1,valid> Flatten Dense<3> Softmax");
}

// The promise of set_weights_constant is what lets the convolutions skip re-reading their weights
// on every forward: shown here by breaking it (a write while it is on is not seen) and by how
// switching it on or off makes the next forward see what changed before.
TEST_CASE("set_weights_constant: a convolution checks its prepared weights once, until switched off or on again") {
  using Net = Network<float, Input<12, 12, 4>, Conv2D<8, 3, 1, kernels::Winograd4x4>, ReLU, Flatten, Dense<3>>;
  Net net(4);
  Tensor<float> x(1, 12, 12, 4);
  Rng r(5);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform(-1, 1));
  const auto output = [&] {
    const Tensor<float>& y = net.forward(x, Mode::eval);
    return std::vector<float>(y.data(), y.data() + y.size());
  };
  const auto halve_conv_weights = [&] {
    const ParamRef<float> kernel = net.parameters()[0];
    REQUIRE(kernel.name == "conv2d_1/kernel");
    for (std::size_t i = 0; i < kernel.size; ++i) kernel.value[i] *= 0.5f;
  };
  const auto original = output();
  halve_conv_weights();  // off (the default): every forward checks
  const auto halved = output();
  CHECK(halved != original);
  net.set_weights_constant(true);
  CHECK(output() == halved);
  halve_conv_weights();  // breaks the promise: the Winograd-transformed weights are not redone
  CHECK(output() == halved);
  net.set_weights_constant(false);  // the next forward checks, and transforms the new weights
  const auto quartered = output();
  CHECK(quartered != halved);
  halve_conv_weights();
  net.set_weights_constant(true);  // switching on checks once more too
  const auto eighth = output();
  CHECK(eighth != quartered);
  Net copy = net;  // a copy has its own weights; it trusts none of the original's checks
  const ParamRef<float> copy_kernel = copy.parameters()[0];
  for (std::size_t i = 0; i < copy_kernel.size; ++i) copy_kernel.value[i] *= 2.0f;
  const Tensor<float>& y = copy.forward(x, Mode::eval);
  CHECK(std::vector<float>(y.data(), y.data() + y.size()) == quartered);
}

namespace {
using SmallNet = Network<double, Input<10, 10, 2>, Conv2D<3, 3, 2, Same>, ReLU, MaxPool<2>, Conv2D<4, 2>, ReLU, Flatten,
                         Dropout<0.2>, Dense<6>, ReLU, Dense<3>, Softmax>;
// Random biases too: with zero biases a dead input makes a pre-activation exactly 0, the kink
// of ReLU, where finite differences are meaningless.
SmallNet random_small_net(std::uint64_t seed) {
  SmallNet net(seed);
  Rng r(seed + 100);
  for (auto& p : net.parameters())
    if (p.name.ends_with("bias"))
      for (std::size_t i = 0; i < p.size; ++i) p.value[i] = r.uniform(-0.3, 0.3);
  return net;
}
Tensor<double> random_batch(int n, int h, int w, int c, std::uint64_t seed) {
  Tensor<double> x(n, h, w, c);
  Rng r(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = r.uniform(-1, 1);
  return x;
}
}  // namespace

TEST_CASE("gradient check of a whole small network (every layer type, dropout active)") {
  const SmallNet net = random_small_net(9);
  const auto x = random_batch(3, 10, 10, 2, 1);
  const std::vector<int> labels = {0, 2, 1};
  GradientCheckOptions opt;
  opt.max_entries = 0;  // every parameter
  const auto r = check_network_gradients(net, x, labels, opt);
  INFO("worst ", r.worst, " rel ", r.max_relative_error, " over ", r.entries_checked);
  CHECK(r.entries_checked == SmallNet::parameter_count);
  CHECK(r.passed(1e-6));
}

// check_network_gradients used to take the analytic gradients in train mode whatever opt.mode
// said, while the numeric ones followed opt.mode: in eval mode BatchNorm (batch statistics vs
// moving ones) and Dropout (a mask vs none) then disagreed. Both now run in opt.mode.
TEST_CASE("gradient check in eval mode: BatchNorm with moved statistics and Dropout, analytic and numeric alike") {
  using EvalNet =
      Network<double, Input<6, 6, 2>, Conv2D<3, 3>, BatchNorm, ReLU, Flatten, Dropout<0.5>, Dense<3>, Softmax>;
  EvalNet net(3);
  const auto x = random_batch(4, 6, 6, 2, 5);
  const std::vector<int> labels = {0, 2, 1, 1};
  SGD<double> sgd;
  for (int s = 0; s < 3; ++s) net.train_step(x, labels, sgd);  // moving statistics away from 0 / 1
  Rng r(8);
  for (auto& p : net.parameters())  // random biases and shifts: no pre-activation sits on ReLU's kink
    if (p.name.ends_with("bias") || p.name.ends_with("beta"))
      for (std::size_t i = 0; i < p.size; ++i) p.value[i] = r.uniform(-0.3, 0.3);
  GradientCheckOptions opt;
  opt.mode = Mode::eval;
  opt.max_entries = 0;
  const auto eval = check_network_gradients(net, x, labels, opt);
  INFO("eval: worst ", eval.worst, " rel ", eval.max_relative_error, " over ", eval.entries_checked);
  CHECK(eval.entries_checked == EvalNet::parameter_count);
  CHECK(eval.passed(1e-6));  // before the fix: relative error 1 (conv2d_1/kernel)
}

TEST_CASE("gradient check with label smoothing and class weights") {
  const SmallNet net = random_small_net(4);
  const auto x = random_batch(4, 10, 10, 2, 2);
  const std::vector<int> labels = {0, 2, 1, 1};
  LossOptions loss;
  loss.label_smoothing = 0.1;
  loss.class_weights = {1.0, 2.0, 0.5};
  const auto r = check_network_gradients(net, x, labels, {}, loss);
  INFO("worst ", r.worst, " rel ", r.max_relative_error);
  CHECK(r.passed(1e-6));
}

TEST_CASE("softmax cross-entropy: value and stability") {
  Tensor<double> z(2, 1, 1, 3);
  z[0] = 1;
  z[1] = 2;
  z[2] = 3;
  z[3] = 1000;
  z[4] = 0;
  z[5] = -1000;  // naive exp would overflow
  const std::vector<int> labels = {2, 0};
  Tensor<double> dz;
  const auto s = softmax_cross_entropy(z, labels, {}, &dz);
  const double l0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
  CHECK(s.loss == doctest::Approx(l0 / 2));
  CHECK(s.correct == 2);
  CHECK(std::isfinite(dz[3]));
  CHECK(dz[3] == doctest::Approx(0.0).epsilon(1e-12));
  const std::vector<int> bad = {3, 0};
  CHECK_THROWS_AS(softmax_cross_entropy(z, bad, {}, nullptr), Error);
}

TEST_CASE("the paper's network learns: loss on a fixed batch falls by more than half within 40 steps") {
  PaperNet net(1);
  Tensor<float> x(16, 128, 128, 3);
  Rng r(3);
  std::vector<int> labels(16);
  // Each class gets its own bright blob position, so the batch is learnable.
  for (int n = 0; n < 16; ++n) {
    labels[n] = n % 10;
    for (int y = 0; y < 128; ++y)
      for (int xx = 0; xx < 128; ++xx)
        for (int c = 0; c < 3; ++c) {
          const double cy = 20 + 9 * labels[n], d2 = (y - cy) * (y - cy) + (xx - 64.0) * (xx - 64.0);
          x(n, y, xx, c) = float(0.1 * r.uniform() + std::exp(-d2 / 50.0));
        }
  }
  Adam<float> adam;
  const double first = net.train_step(x, labels, adam).loss;
  double last = first;
  for (int step = 0; step < 40; ++step) last = net.train_step(x, labels, adam).loss;
  INFO("loss ", first, " -> ", last);
  CHECK(last < 0.5 * first);
}

TEST_CASE("training is deterministic for a seed and a thread count") {
  auto run = [](std::uint64_t seed) {
    SmallNet net(seed);
    Adam<double> adam;
    const auto x = random_batch(8, 10, 10, 2, 5);
    const std::vector<int> labels = {0, 1, 2, 0, 1, 2, 0, 1};
    for (int i = 0; i < 5; ++i) net.train_step(x, labels, adam);
    std::vector<double> w;
    for (auto& p : net.parameters()) w.insert(w.end(), p.value, p.value + p.size);
    return w;
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
}

TEST_CASE("optimisers reduce a quadratic and keep their state per parameter") {
  // Minimise 0.5 * |w - 3|^2 : gradient w - 3.
  auto minimise = [](auto& opt, int steps) {
    std::vector<double> w(5, 0.0), g(5);
    std::vector<ParamRef<double>> params{{"w", w.data(), g.data(), w.size()}};
    for (int s = 0; s < steps; ++s) {
      for (std::size_t i = 0; i < w.size(); ++i) g[i] = w[i] - 3.0;
      opt.step(params);
    }
    return w[0];
  };
  Adam<double> adam({.lr = 0.1});
  SGD<double> sgd({.lr = 0.1, .momentum = 0.9});
  RMSprop<double> rms({.lr = 0.05});
  CHECK(minimise(adam, 300) == doctest::Approx(3.0).epsilon(0.01));
  CHECK(minimise(sgd, 300) == doctest::Approx(3.0).epsilon(0.01));
  CHECK(minimise(rms, 300) == doctest::Approx(3.0).epsilon(0.05));
  CHECK(adam.steps == 300);
  CHECK(adam.slots.size() == 2);
}

TEST_CASE("Adam's first step moves every weight by about lr against its gradient's sign") {
  Adam<double> adam({.lr = 0.01, .eps = 1e-8});
  std::vector<double> w = {1.0, -2.0, 0.5}, g = {0.3, -4.0, 1e-3};
  std::vector<ParamRef<double>> params{{"w", w.data(), g.data(), w.size()}};
  adam.step(params);
  CHECK(w[0] == doctest::Approx(0.99).epsilon(1e-6));
  CHECK(w[1] == doctest::Approx(-1.99).epsilon(1e-6));
  CHECK(w[2] == doctest::Approx(0.49).epsilon(1e-4));
}
