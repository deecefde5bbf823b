// Every layer type's hand-written backward against finite differences, in double.
#include <doctest/doctest.h>

#include "hubble/hubble.hpp"

using namespace hubble;

namespace {
template <class Layer>
Layer make_layer(std::uint64_t seed = 3) {
  Layer l;
  Rng r(seed);
  l.initialize(r, Init::glorot_uniform);
  // Non-zero biases so the bias path is exercised.
  l.for_each_parameter([&](const char* name, double* v, double*, std::size_t n) {
    if (std::string(name) == "bias") for (std::size_t i = 0; i < n; ++i) v[i] = r.uniform(-0.5, 0.5);
  });
  return l;
}
template <class S>
Tensor<double> random_input(int n, std::uint64_t seed = 11) {
  Tensor<double> x(n, S::h, S::w, S::c);
  Rng r(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = r.uniform(-1, 1);
  return x;
}
template <class Layer>
GradientCheckResult check(int batch = 2, Mode mode = Mode::train) {
  const Layer layer = make_layer<Layer>();
  GradientCheckOptions opt;
  opt.mode = mode;
  return check_layer_gradients(layer, random_input<typename Layer::in_shape>(batch), opt);
}
constexpr double tolerance = 1e-6;
}  // namespace

TEST_CASE("gradient check: Conv2D valid, stride 2, 5x5 (the paper's first layer, narrower)") {
  const auto r = check<Conv2DLayer<Shape<11, 11, 3>, double, 4, 5, 2, Valid, kernels::Default>>();
  INFO("worst ", r.worst, " rel ", r.max_relative_error);
  CHECK(r.passed(tolerance));
}

TEST_CASE("gradient check: Conv2D same padding, stride 1 and 2, default and naive kernels") {
  const auto a = check<Conv2DLayer<Shape<7, 6, 2>, double, 3, 3, 1, Same, kernels::Default>>();
  const auto b = check<Conv2DLayer<Shape<7, 6, 2>, double, 3, 3, 2, Same, kernels::Default>>();
  const auto c = check<Conv2DLayer<Shape<7, 6, 2>, double, 3, 3, 2, Same, kernels::Naive>>();
  INFO(a.worst, " ", a.max_relative_error, " / ", b.worst, " ", b.max_relative_error, " / ", c.worst, " ", c.max_relative_error);
  CHECK(a.passed(tolerance));
  CHECK(b.passed(tolerance));
  CHECK(c.passed(tolerance));
}

TEST_CASE("gradient check: Dense") {
  const auto r = check<DenseLayer<Shape<1, 1, 12>, double, 5>>(3);
  INFO(r.worst, " ", r.max_relative_error);
  CHECK(r.passed(tolerance));
}

TEST_CASE("gradient check: MaxPool, non-overlapping and overlapping windows") {
  const auto a = check<MaxPoolLayer<Shape<6, 7, 3>, double, 2, 2>>();
  const auto b = check<MaxPoolLayer<Shape<7, 7, 2>, double, 3, 2>>();
  INFO(a.worst, " ", a.max_relative_error, " / ", b.worst, " ", b.max_relative_error);
  CHECK(a.passed(tolerance));
  CHECK(b.passed(tolerance));
}

TEST_CASE("gradient check: ReLU, Softmax, Flatten") {
  const auto relu = check<ActivationLayer<Shape<4, 4, 3>, double, activation::ReLU>>();
  const auto soft = check<ActivationLayer<Shape<1, 1, 7>, double, activation::Softmax>>(3);
  const auto flat = check<FlattenLayer<Shape<3, 4, 2>, double>>();
  INFO(relu.max_relative_error, " ", soft.max_relative_error, " ", flat.max_relative_error);
  CHECK(relu.passed(tolerance));
  CHECK(soft.passed(tolerance));
  CHECK(flat.passed(tolerance));
}

TEST_CASE("gradient check: Dropout in train mode (fixed mask) and eval mode") {
  const auto train = check<DropoutLayer<Shape<1, 1, 40>, double, 0.3>>(2, Mode::train);
  const auto eval = check<DropoutLayer<Shape<1, 1, 40>, double, 0.3>>(2, Mode::eval);
  CHECK(train.passed(tolerance));
  CHECK(eval.passed(tolerance));
}

TEST_CASE("the gradient checker catches a wrong gradient") {
  // A layer whose backward is off by a factor of two must fail the check.
  struct BrokenScale : ParameterFreeLayer {
    using in_shape = Shape<1, 1, 4>;
    using out_shape = in_shape;
    void forward(const Tensor<double>& x, Tensor<double>& y, Mode) { y = x; for (std::size_t i = 0; i < y.size(); ++i) y[i] *= 3; }
    void backward(const Tensor<double>&, const Tensor<double>&, const Tensor<double>& dy, Tensor<double>* dx) {
      *dx = dy; for (std::size_t i = 0; i < dx->size(); ++i) (*dx)[i] *= 6;
    }
  };
  static_assert(std::is_same_v<BrokenScale::out_shape, Shape<1, 1, 4>>);  // (and -Wunused-local-typedefs is quiet)
  const auto r = check_layer_gradients(BrokenScale{}, random_input<Shape<1, 1, 4>>(2));
  CHECK(r.max_relative_error > 0.3);
  CHECK_FALSE(r.passed(tolerance));
}

TEST_CASE("Dropout: eval is the identity, train keeps about 1 - rate and rescales") {
  DropoutLayer<Shape<1, 1, 1000>, float, 0.25> d;
  Rng r(5);
  d.initialize(r, Init::glorot_uniform);
  Tensor<float> x(4, 1, 1, 1000), y;
  x.fill(1.0f);
  d.forward(x, y, Mode::eval);
  for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(y[i] == 1.0f);
  d.forward(x, y, Mode::train);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    REQUIRE((y[i] == 0.0f || std::abs(y[i] - 1.0f / 0.75f) < 1e-6f));
    kept += y[i] != 0.0f;
  }
  CHECK(double(kept) / double(y.size()) == doctest::Approx(0.75).epsilon(0.03));
}

TEST_CASE("MaxPool routes the gradient to the first maximum of each window") {
  MaxPoolLayer<Shape<2, 2, 1>, double, 2, 2> pool;
  Tensor<double> x(1, 2, 2, 1), y, dy(1, 1, 1, 1), dx;
  x[0] = 1; x[1] = 4; x[2] = 4; x[3] = -2;  // tie between positions 1 and 2
  pool.forward(x, y, Mode::eval);
  CHECK(y[0] == 4);
  dy[0] = 5;
  pool.backward(x, y, dy, &dx);
  CHECK(dx[0] == 0);
  CHECK(dx[1] == 5);
  CHECK(dx[2] == 0);
  CHECK(dx[3] == 0);
}

TEST_CASE("a layer given the wrong input shape throws a clear error") {
  DenseLayer<Shape<1, 1, 8>, float, 2> dense;
  Tensor<float> x(1, 1, 1, 9), y;
  CHECK_THROWS_WITH_AS(dense.forward(x, y, Mode::eval), doctest::Contains("Dense: expected input of shape 8"), Error);
}

TEST_CASE("initialisation: Glorot-uniform bounds, zero biases, same seed same weights") {
  using L = Conv2DLayer<Shape<8, 8, 3>, float, 16, 5, 1, Valid, kernels::Default>;
  L a, b, c;
  Rng ra(42), rb(42), rc(43);
  a.initialize(ra, Init::glorot_uniform);
  b.initialize(rb, Init::glorot_uniform);
  c.initialize(rc, Init::glorot_uniform);
  std::vector<float> wa, wb, wc;
  auto grab = [](L& l, std::vector<float>& out) {
    l.for_each_parameter([&](const char*, float* v, float*, std::size_t n) { out.insert(out.end(), v, v + n); });
  };
  grab(a, wa); grab(b, wb); grab(c, wc);
  CHECK(wa == wb);
  CHECK(wa != wc);
  const double limit = std::sqrt(6.0 / (5 * 5 * 3 + 5 * 5 * 16));
  double max_abs = 0;
  for (std::size_t i = 0; i < L::weight_count; ++i) max_abs = std::max(max_abs, double(std::abs(wa[i])));
  CHECK(max_abs <= limit);
  CHECK(max_abs > 0.9 * limit);  // the draw fills the range
  for (std::size_t i = L::weight_count; i < wa.size(); ++i) CHECK(wa[i] == 0.0f);
}

TEST_CASE("gradient check: BatchNorm in train mode (batch statistics) and eval mode (moving statistics)") {
  using L = BatchNormLayer<Shape<3, 3, 4>, double>;
  L bn = make_layer<L>();
  // Non-trivial gamma and moving statistics so every term of the derivative matters.
  Rng r(21);
  bn.for_each_parameter([&](const char*, double* v, double*, std::size_t n) { for (std::size_t i = 0; i < n; ++i) v[i] += r.uniform(-0.5, 0.5); });
  bn.for_each_buffer([&](const char*, double* v, std::size_t n) { for (std::size_t i = 0; i < n; ++i) v[i] += r.uniform(0.1, 0.5); });
  GradientCheckOptions train, eval;
  eval.mode = Mode::eval;
  const auto x = random_input<Shape<3, 3, 4>>(3);
  const auto a = check_layer_gradients(bn, x, train);
  const auto b = check_layer_gradients(bn, x, eval);
  INFO(a.worst, " ", a.max_relative_error, " / ", b.worst, " ", b.max_relative_error);
  CHECK(a.passed(tolerance));
  CHECK(b.passed(tolerance));
}

TEST_CASE("BatchNorm normalises each channel in train mode and tracks moving statistics") {
  BatchNormLayer<Shape<2, 2, 2>, double> bn;
  Tensor<double> x(8, 2, 2, 2), y;
  Rng r(2);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = (i % 2 ? 5.0 : -3.0) + r.uniform(-1, 1) * (i % 2 ? 2.0 : 0.5);
  bn.forward(x, y, Mode::train);
  for (int c = 0; c < 2; ++c) {
    double s = 0, s2 = 0;
    for (std::size_t i = c; i < y.size(); i += 2) { s += y[i]; s2 += y[i] * y[i]; }
    const double m = double(y.size()) / 2;
    CHECK(s / m == doctest::Approx(0.0).epsilon(1e-9));
    CHECK(s2 / m == doctest::Approx(1.0).epsilon(1e-2));  // eps = 1e-3 keeps it a hair under 1
  }
  std::vector<double> mean;
  bn.for_each_buffer([&](const char* name, double* v, std::size_t) { if (std::string(name) == "moving_mean") mean = {v[0], v[1]}; });
  CHECK(mean[0] == doctest::Approx(-0.3).epsilon(0.1));  // moved 10% of the way towards -3
  CHECK(mean[1] == doctest::Approx(0.5).epsilon(0.1));   // and towards +5
}

TEST_CASE("gradient check: GlobalAvgPool") {
  const auto r = check<GlobalAvgPoolLayer<Shape<3, 4, 5>, double>>();
  CHECK(r.passed(tolerance));
}
