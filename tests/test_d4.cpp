// D4-equivariant layers (layers/d4.hpp, d4_conv.hpp, d4_pool.hpp, D4BatchNorm): the group tables
// against data::compose / transform_image, equivariance of every layer under all 8 symmetries of
// the square, invariance of a whole network (and a plain network that is not), gradient checks,
// kernel variants, fusion and checkpoints.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "hubble/data/augment.hpp"
#include "hubble/hubble.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/kernels/variants.hpp"
#include "support.hpp"

using namespace hubble;
using data::Dihedral;

namespace {

template <class T>
Tensor<T> random_tensor(int n, int h, int w, int c, std::uint64_t seed) {
  Tensor<T> x(n, h, w, c);
  Rng r(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(r.uniform(-1, 1));
  return x;
}
template <class S, class T = float>
Tensor<T> random_input(int n, std::uint64_t seed = 11) {
  return random_tensor<T>(n, S::h, S::w, S::c, seed);
}

// max |a - b| / max |b|: the difference relative to the reference's scale.
template <class T>
double relative_difference(const Tensor<T>& a, const Tensor<T>& b) {
  REQUIRE(a.dims() == b.dims());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}
template <class T>
bool same_bits(const T* a, const T* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(T)) == 0;
}

// A layer with its parameters drawn, and random (non-zero) biases / BatchNorm shifts.
template <class Layer>
Layer make_layer(std::uint64_t seed = 3) {
  Layer l;
  Rng r(seed);
  l.initialize(r, Init::glorot_uniform);
  l.for_each_parameter([&](const char* name, auto* v, auto*, std::size_t n) {
    const std::string s = name;
    if (s == "bias" || s == "beta" || s == "gamma")
      for (std::size_t i = 0; i < n; ++i) v[i] += decltype(+v[0])(r.uniform(-0.5, 0.5));
  });
  return l;
}

constexpr double equivariance_tolerance = 1e-5;  // float rounding: the sums run in another order
constexpr double gradient_tolerance = 1e-6;      // as tests/test_layers.cpp (double)

// L(t . x) against t . L(x) for all 8 t, where x is an image (lift) or a D4 map. Returns the worst.
template <class Layer, class T>
double worst_equivariance_error(Layer& layer, const Tensor<T>& x, bool input_is_d4_map, Mode mode = Mode::eval) {
  Tensor<T> y, tx, ty, expected;
  layer.forward(x, y, mode);
  double worst = 0;
  for (Dihedral t : data::all_dihedral) {
    CAPTURE(data::dihedral_name(t));
    if (input_is_d4_map) d4::transform_fields(x, t, tx);
    else d4::transform_spatial(x, t, tx);
    layer.forward(tx, ty, mode);
    d4::transform_fields(y, t, expected);
    worst = std::max(worst, relative_difference(ty, expected));
  }
  return worst;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Group tables and transforms

TEST_CASE("D4 tables: product, inverse and transform_filter agree with data::compose, inverse and transform_image") {
  // A random 5 x 5 x 2 picture, to see which composition transform_image really performs.
  std::vector<std::uint8_t> img(5 * 5 * 2), once(img.size()), twice(img.size()), direct(img.size());
  Rng r(5);
  for (auto& v : img) v = std::uint8_t(r.below(256));
  for (int a = 0; a < 8; ++a) {
    CHECK(d4::product(a, d4::inverse(a)) == 0);
    CHECK(d4::product(d4::inverse(a), a) == 0);
    CHECK(d4::inverse(d4::inverse(a)) == a);
    CHECK(d4::product(a, 0) == a);
    CHECK(d4::product(0, a) == a);
    for (int b = 0; b < 8; ++b) {
      // product(a, b) = "b first, then a" on pictures.
      data::transform_image(img.data(), 5, 2, Dihedral(b), once.data());
      data::transform_image(once.data(), 5, 2, Dihedral(a), twice.data());
      data::transform_image(img.data(), 5, 2, Dihedral(d4::product(a, b)), direct.data());
      CHECK(twice == direct);
      CHECK(d4::product(a, b) == int(data::compose(Dihedral(b), Dihedral(a))));
      for (int c = 0; c < 8; ++c) CHECK(d4::product(d4::product(a, b), c) == d4::product(a, d4::product(b, c)));
    }
  }
  // The 8 transforms are distinct on a generic picture (else the tables above prove little).
  std::vector<std::vector<std::uint8_t>> views;
  for (Dihedral t : data::all_dihedral) {
    data::transform_image(img.data(), 5, 2, t, once.data());
    CHECK(std::find(views.begin(), views.end(), once) == views.end());
    views.push_back(once);
  }
  // g . w for filters of odd and even sides is transform_image on the filter.
  for (int k : {1, 2, 3, 4, 5}) {
    std::vector<std::uint8_t> w(std::size_t(k) * k), ref(w.size());
    for (auto& v : w) v = std::uint8_t(r.below(256));
    const std::vector<float> wf(w.begin(), w.end());
    std::vector<float> out(w.size());
    for (Dihedral g : data::all_dihedral) {
      CAPTURE(k);
      CAPTURE(data::dihedral_name(g));
      data::transform_image(w.data(), k, 1, g, ref.data());
      d4::transform_filter(g, wf.data(), k, out.data());
      CHECK(std::equal(out.begin(), out.end(), ref.begin()));
    }
  }
}

TEST_CASE("D4 transforms: transform_spatial is to_tensor's view, transform_fields is a group action") {
  data::ImageSet set;
  set.height = set.width = 6;
  set.channels = 3;
  set.labels = {0, 1};
  set.pixels.resize(2 * set.image_bytes());
  Rng r(8);
  for (auto& v : set.pixels) v = std::uint8_t(r.below(256));
  const std::vector<int> both{0, 1};
  Tensor<float> plain, viewed, moved;
  data::to_tensor(set, both, plain);
  for (Dihedral t : data::all_dihedral) {
    const std::vector<Dihedral> views{t, t};
    data::to_tensor(set, both, viewed, views);
    d4::transform_spatial(plain, t, moved);
    CHECK(same_bits(moved.data(), viewed.data(), viewed.size()));
  }
  // (a . (b . X)) = (ab) . X on a D4 map of 2 fields.
  const Tensor<float> x = random_tensor<float>(2, 5, 5, 16, 4);
  Tensor<float> bx, abx, direct;
  for (int a = 0; a < 8; ++a)
    for (int b = 0; b < 8; ++b) {
      d4::transform_fields(x, Dihedral(b), bx);
      d4::transform_fields(bx, Dihedral(a), abx);
      d4::transform_fields(x, Dihedral(d4::product(a, b)), direct);
      CHECK(same_bits(abx.data(), direct.data(), direct.size()));
    }
  CHECK(test_support::error_of([&] {
          Tensor<float> odd(1, 3, 3, 12), out;
          d4::transform_fields(odd, Dihedral::rot90, out);
        }).find("multiple of 8") != std::string::npos);
}

TEST_CASE("D4 layers: parameter counts, specs and kinds") {
  using Lift = D4Lift<8, 6, 2>::bind<Shape<128, 128, 3>, float>;
  static_assert(Lift::parameter_count == 8 * 6 * 6 * 3 + 8);
  static_assert(std::is_same_v<Lift::out_shape, Shape<62, 62, 64>>);
  using Conv = D4Conv<16, 3>::bind<Shape<31, 31, 64>, float>;  // 8 input fields
  static_assert(Conv::parameter_count == 16 * 8 * 8 * 3 * 3 + 16);
  static_assert(std::is_same_v<Conv::out_shape, Shape<29, 29, 128>>);
  using Bn = D4BatchNorm::bind<Shape<29, 29, 128>, float>;
  static_assert(Bn::parameter_count == 2 * 16);
  using Pool = D4GroupPool::bind<Shape<29, 29, 128>, float>;
  static_assert(Pool::parameter_count == 0 && std::is_same_v<Pool::out_shape, Shape<29, 29, 16>>);
  static_assert(BatchNormLayer<Shape<4, 4, 16>, float>::parameter_count == 32);  // BatchNorm unchanged
  CHECK(Lift::spec() == "D4Lift<8,6,2,valid>");
  CHECK(D4Conv<4, 3, 1, Same, kernels::Naive>::bind<Shape<9, 9, 16>, float>::spec() == "D4Conv<4,3,1,same>");
  CHECK(Conv::spec() == "D4Conv<16,3,1,valid>");
  CHECK(Bn::spec() == "D4BatchNorm");
  CHECK(Pool::spec() == "D4GroupPool");
  CHECK(std::string(Lift::kind) == "D4Lift");
  CHECK(std::string(Conv::kind) == "D4Conv");
  CHECK(std::string(Bn::kind) == "D4BatchNorm");
  CHECK(std::string(Pool::kind) == "D4GroupPool");
  CHECK(std::string(BatchNormLayer<Shape<4, 4, 16>, float>::kind) == "BatchNorm");
  // Only the compact arrays are parameters.
  Conv conv;
  std::size_t total = 0;
  conv.for_each_parameter([&](const char*, float*, float*, std::size_t n) { total += n; });
  CHECK(total == Conv::parameter_count);
  // The network sees the compact count too.
  using Net = Sequential<Input<18, 18, 3>, D4Lift<2, 4, 2>, D4BatchNorm, ReLU, MaxPool<2>, D4Conv<3, 3>, D4GroupPool,
                         GlobalAvgPool, Dense<4>, Softmax>;
  static_assert(Net::parameter_count == (2 * 4 * 4 * 3 + 2) + 2 * 2 + (3 * 2 * 8 * 3 * 3 + 3) + (3 * 4 + 4));
  CHECK(
      Net::architecture() ==
      "Input<18,18,3> D4Lift<2,4,2,valid> D4BatchNorm ReLU MaxPool<2,2> D4Conv<3,3,1,valid> D4GroupPool GlobalAvgPool "
      "Dense<4> Softmax");
}

TEST_CASE("D4Conv's filter bank is g . w[f][c][g^-1 h], written out with transform_filter") {
  using L = D4ConvLayer<Shape<7, 7, 16>, double, 3, 3, 1, Valid, kernels::Naive, false>;
  L layer = make_layer<L>();
  layer.expand();
  const double* W = layer.expanded().weights();
  std::vector<double> w;
  layer.for_each_parameter([&](const char* name, double* v, double*, std::size_t n) {
    if (std::string(name) == "kernel") w.assign(v, v + n);
  });
  constexpr int K = 3, C = 16, F = 3, FE = 24;
  std::vector<double> filter(K * K), moved(K * K);
  for (int f = 0; f < F; ++f)
    for (int g = 0; g < 8; ++g)
      for (int c = 0; c < 2; ++c)
        for (int h = 0; h < 8; ++h) {
          const int src = c * 8 + int(data::compose(Dihedral(h), data::inverse(Dihedral(g))));  // g^-1 h
          for (int k = 0; k < K * K; ++k) filter[std::size_t(k)] = w[(std::size_t(k) * C + src) * F + f];
          d4::transform_filter(Dihedral(g), filter.data(), K, moved.data());
          for (int k = 0; k < K * K; ++k)
            CHECK(W[(std::size_t(k) * C + c * 8 + h) * FE + f * 8 + g] == moved[std::size_t(k)]);
        }
}

// ---------------------------------------------------------------------------------------------
// Equivariance, to float rounding, for all 8 transforms

TEST_CASE(
    "D4Lift is equivariant: Lift(t . x) = t . Lift(x) for all 8 t (odd and even kernels, strides 1 and 2, same)") {
  auto lift_3_2 = make_layer<D4ConvLayer<Shape<11, 11, 3>, float, 4, 3, 2, Valid, kernels::Default, true>>();
  auto lift_4_2 = make_layer<D4ConvLayer<Shape<12, 12, 3>, float, 2, 4, 2, Valid, kernels::Default, true>>();
  auto lift_5_1 = make_layer<D4ConvLayer<Shape<9, 9, 2>, float, 3, 5, 1, Valid, kernels::Naive, true>>();
  auto lift_same = make_layer<D4ConvLayer<Shape<8, 8, 3>, float, 2, 3, 1, Same, kernels::Default, true>>();
  CHECK(worst_equivariance_error(lift_3_2, random_input<Shape<11, 11, 3>>(3), false) < equivariance_tolerance);
  CHECK(worst_equivariance_error(lift_4_2, random_input<Shape<12, 12, 3>>(2), false) < equivariance_tolerance);
  CHECK(worst_equivariance_error(lift_5_1, random_input<Shape<9, 9, 2>>(2), false) < equivariance_tolerance);
  CHECK(worst_equivariance_error(lift_same, random_input<Shape<8, 8, 3>>(2), false) < equivariance_tolerance);
  // The size rule matters: (10 - 3) % 2 != 0 leaves the output grid off centre, and the error is
  // far above rounding (so the checks above could fail).
  auto off_centre = make_layer<D4ConvLayer<Shape<10, 10, 3>, float, 4, 3, 2, Valid, kernels::Default, true>>();
  CHECK(worst_equivariance_error(off_centre, random_input<Shape<10, 10, 3>>(2), false) > 1e-2);
}

TEST_CASE("D4Conv is equivariant: Conv(t . X) = t . Conv(X) on D4 maps for all 8 t") {
  auto conv_3_1 = make_layer<D4ConvLayer<Shape<9, 9, 16>, float, 3, 3, 1, Valid, kernels::Default, false>>();
  auto conv_2_2 = make_layer<D4ConvLayer<Shape<10, 10, 24>, float, 2, 2, 2, Valid, kernels::Default, false>>();
  auto conv_same = make_layer<D4ConvLayer<Shape<6, 6, 8>, float, 4, 3, 1, Same, kernels::Naive, false>>();
  CHECK(worst_equivariance_error(conv_3_1, random_input<Shape<9, 9, 16>>(2), true) < equivariance_tolerance);
  CHECK(worst_equivariance_error(conv_2_2, random_input<Shape<10, 10, 24>>(2), true) < equivariance_tolerance);
  CHECK(worst_equivariance_error(conv_same, random_input<Shape<6, 6, 8>>(3), true) < equivariance_tolerance);
  // A plain convolution with as many filters is not: the same check fails by far.
  Rng r(9);
  Conv2DLayer<Shape<9, 9, 16>, float, 24, 3, 1, Valid, kernels::Default> conv2d;
  conv2d.initialize(r, Init::glorot_uniform);
  CHECK(worst_equivariance_error(conv2d, random_input<Shape<9, 9, 16>>(2), true) > 1e-2);
}

TEST_CASE("D4BatchNorm is equivariant in train and eval mode, and is BatchNorm over the 8 orientations pooled") {
  using L = BatchNormLayer<Shape<5, 5, 24>, float, 8>;
  L bn = make_layer<L>();
  // Move the moving statistics away from 0 / 1 so eval mode is not the identity.
  Tensor<float> x = random_input<Shape<5, 5, 24>>(4), y;
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = x[i] * float(1 + (i % 24) / 8) + float((i % 24) / 8);
  for (int s = 0; s < 3; ++s) bn.forward(x, y, Mode::train);
  CHECK(worst_equivariance_error(bn, x, true, Mode::train) < equivariance_tolerance);
  CHECK(worst_equivariance_error(bn, x, true, Mode::eval) < equivariance_tolerance);
  // Per-channel BatchNorm is not: its per-channel gamma and beta (and, in eval mode, moving
  // statistics) stay while a transform permutes the channels of a field.
  auto per_channel = make_layer<BatchNormLayer<Shape<5, 5, 24>, float>>();
  for (int s = 0; s < 3; ++s) per_channel.forward(x, y, Mode::train);
  CHECK(worst_equivariance_error(per_channel, x, true, Mode::train) > 1e-2);
  CHECK(worst_equivariance_error(per_channel, x, true, Mode::eval) > 1e-2);

  // Same statistics as a plain BatchNorm over the field's 8 channels laid side by side: the map
  // [n, H, W, F*8] read as [n, H, W*8, F] (orientation g moved into the width).
  using Wide = BatchNormLayer<Shape<5, 40, 3>, double>;
  using Grouped = BatchNormLayer<Shape<5, 5, 24>, double, 8>;
  Wide wide = make_layer<Wide>(4);
  Grouped grouped;
  std::vector<double> gamma_beta;
  wide.for_each_parameter(
      [&](const char*, double* v, double*, std::size_t n) { gamma_beta.insert(gamma_beta.end(), v, v + n); });
  std::size_t at = 0;
  grouped.for_each_parameter([&](const char*, double* v, double*, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) v[i] = gamma_beta[at++];
  });
  const Tensor<double> xd = random_input<Shape<5, 5, 24>, double>(3, 17);
  Tensor<double> xw(3, 5, 40, 3), yd, yw;
  for (int n = 0; n < 3; ++n)
    for (int p = 0; p < 25; ++p)
      for (int f = 0; f < 3; ++f)
        for (int g = 0; g < 8; ++g)
          xw.sample(n)[(std::size_t(p) * 8 + g) * 3 + f] = xd.sample(n)[std::size_t(p) * 24 + f * 8 + g];
  for (Mode mode : {Mode::train, Mode::train, Mode::eval}) {
    grouped.forward(xd, yd, mode);
    wide.forward(xw, yw, mode);
    for (int n = 0; n < 3; ++n)
      for (int p = 0; p < 25; ++p)
        for (int f = 0; f < 3; ++f)
          for (int g = 0; g < 8; ++g)
            CHECK(yd.sample(n)[std::size_t(p) * 24 + f * 8 + g] ==
                  doctest::Approx(yw.sample(n)[(std::size_t(p) * 8 + g) * 3 + f]).epsilon(1e-12));
  }
  std::vector<double> moving_grouped, moving_wide;
  grouped.for_each_buffer(
      [&](const char*, double* v, std::size_t n) { moving_grouped.insert(moving_grouped.end(), v, v + n); });
  wide.for_each_buffer([&](const char*, double* v, std::size_t n) { moving_wide.insert(moving_wide.end(), v, v + n); });
  REQUIRE(moving_grouped.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) CHECK(moving_grouped[i] == doctest::Approx(moving_wide[i]).epsilon(1e-12));
}

TEST_CASE("D4GroupPool takes the maximum over each field's 8 orientations and is invariant to their permutation") {
  D4GroupPoolLayer<Shape<3, 3, 16>, float> pool;
  const Tensor<float> x = random_input<Shape<3, 3, 16>>(2);
  Tensor<float> y, tx, ty, expected;
  pool.forward(x, y, Mode::eval);
  REQUIRE(y.channels() == 2);
  for (std::size_t p = 0; p < 18; ++p)
    for (int f = 0; f < 2; ++f) CHECK(y[p * 2 + f] == *std::max_element(&x[p * 16 + f * 8], &x[p * 16 + f * 8] + 8));
  for (Dihedral t : data::all_dihedral) {
    d4::transform_fields(x, t, tx);
    pool.forward(tx, ty, Mode::eval);
    d4::transform_spatial(y, t, expected);
    CHECK(same_bits(ty.data(), expected.data(), expected.size()));
  }
}

namespace {
template <class K>
using InvariantNet = Network<float, Input<18, 18, 3>, D4Lift<2, 4, 2, K>, D4BatchNorm, ReLU, MaxPool<2>,
                             D4Conv<3, 3, 1, K>, D4GroupPool, GlobalAvgPool, Dense<4>, Softmax>;
// The same layout with plain layers and about as many channels: no symmetry built in.
using PlainNet = Network<float, Input<18, 18, 3>, Conv2D<16, 4, 2>, BatchNorm, ReLU, MaxPool<2>, Conv2D<3, 3>,
                         GlobalAvgPool, Dense<4>, Softmax>;

// The worst difference of the network's output on t . x from its output on x, over the 8 t.
template <class Net>
double worst_invariance_error(Net& net, const Tensor<float>& x, Mode mode) {
  const Tensor<float> y = net.forward(x, mode);
  Tensor<float> tx;
  double worst = 0;
  for (Dihedral t : data::all_dihedral) {
    d4::transform_spatial(x, t, tx);
    worst = std::max(worst, relative_difference(net.forward(tx, mode), y));
  }
  return worst;
}
}  // namespace

TEST_CASE(
    "a D4 network (Lift, D4BatchNorm, ReLU, MaxPool, D4Conv, GroupPool, GlobalAvgPool, Dense) is invariant; a plain "
    "one is not") {
  InvariantNet<kernels::Default> net(5);
  // Train a little so BatchNorm's moving statistics and all weights are non-trivial.
  Tensor<float> x = random_input<Shape<18, 18, 3>>(6, 21);
  const std::vector<int> labels{0, 1, 2, 3, 0, 1};
  Adam<float> adam({.lr = 1e-2});
  for (int s = 0; s < 5; ++s) net.train_step(x, labels, adam);
  const double eval_error = worst_invariance_error(net, x, Mode::eval);
  const double train_error = worst_invariance_error(net, x, Mode::train);
  INFO("eval ", eval_error, " train ", train_error);
  CHECK(eval_error < equivariance_tolerance);
  CHECK(train_error < equivariance_tolerance);
  // The probabilities actually vary between images (an invariant constant would pass trivially).
  const Tensor<float>& p = net.forward(x, Mode::eval);
  CHECK(std::abs(p[0] - p[4]) + std::abs(p[1] - p[5]) > 1e-4);

  PlainNet plain(5);
  Adam<float> plain_adam({.lr = 1e-2});
  for (int s = 0; s < 5; ++s) plain.train_step(x, labels, plain_adam);
  const double plain_error = worst_invariance_error(plain, x, Mode::eval);
  INFO("plain ", plain_error);
  CHECK(plain_error > 1e-3);
}

// ---------------------------------------------------------------------------------------------
// Gradient checks (double), on the reference kernel and the default one

namespace {
template <class Layer>
GradientCheckResult check_gradients(int batch = 2, Mode mode = Mode::train) {
  const Layer layer = make_layer<Layer>();
  GradientCheckOptions opt;
  opt.mode = mode;
  return check_layer_gradients(layer, random_input<typename Layer::in_shape, double>(batch), opt);
}
}  // namespace

TEST_CASE_TEMPLATE("gradient check: D4Lift and D4Conv (valid, same, stride 2, even kernel)", K, kernels::Naive,
                   kernels::Default) {
  const auto lift = check_gradients<D4ConvLayer<Shape<9, 9, 3>, double, 2, 3, 2, Valid, K, true>>();
  const auto lift_even = check_gradients<D4ConvLayer<Shape<8, 8, 2>, double, 2, 4, 2, Valid, K, true>>();
  const auto conv = check_gradients<D4ConvLayer<Shape<5, 5, 16>, double, 2, 3, 1, Valid, K, false>>();
  const auto conv_same = check_gradients<D4ConvLayer<Shape<4, 4, 8>, double, 3, 3, 1, Same, K, false>>();
  INFO(lift.worst, " ", lift.max_relative_error, " / ", lift_even.worst, " ", lift_even.max_relative_error, " / ",
       conv.worst, " ", conv.max_relative_error, " / ", conv_same.worst, " ", conv_same.max_relative_error);
  CHECK(lift.passed(gradient_tolerance));
  CHECK(lift_even.passed(gradient_tolerance));
  CHECK(conv.passed(gradient_tolerance));
  CHECK(conv_same.passed(gradient_tolerance));
}

TEST_CASE("gradient check: D4BatchNorm (train and eval) and D4GroupPool") {
  using Bn = BatchNormLayer<Shape<3, 3, 16>, double, 8>;
  Bn bn = make_layer<Bn>();
  Rng r(21);
  bn.for_each_buffer([&](const char*, double* v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) v[i] += r.uniform(0.1, 0.5);
  });
  GradientCheckOptions train, eval;
  eval.mode = Mode::eval;
  const auto x = random_input<Shape<3, 3, 16>, double>(3);
  const auto a = check_layer_gradients(bn, x, train);
  const auto b = check_layer_gradients(bn, x, eval);
  const auto pool = check_gradients<D4GroupPoolLayer<Shape<3, 4, 24>, double>>();
  INFO(a.worst, " ", a.max_relative_error, " / ", b.worst, " ", b.max_relative_error, " / ", pool.worst, " ",
       pool.max_relative_error);
  CHECK(a.passed(gradient_tolerance));
  CHECK(b.passed(gradient_tolerance));
  CHECK(pool.passed(gradient_tolerance));
}

TEST_CASE_TEMPLATE("gradient check: a small D4 network end to end", K, kernels::Naive, kernels::Default) {
  using Net = typename InvariantNet<K>::template rebind<double>;
  Net net(7);
  const Tensor<double> x = random_input<Shape<18, 18, 3>, double>(3, 5);
  const std::vector<int> labels{0, 3, 1};
  Adam<double> adam({.lr = 1e-2});
  for (int s = 0; s < 3; ++s) net.train_step(x, labels, adam);  // moving statistics away from 0 / 1
  GradientCheckOptions eval;
  eval.max_entries = 0;  // every parameter
  eval.mode = Mode::eval;
  const auto r = check_network_gradients(net, x, std::span<const int>(labels), eval);
  INFO("eval: ", r.worst, " ", r.max_relative_error);
  CHECK(r.entries_checked == Net::parameter_count);
  CHECK(r.passed(gradient_tolerance));
  // Train mode: BatchNorm subtracts each field's batch mean, so the conv biases before it have
  // gradient exactly 0 and their relative error compares rounding with rounding; the absolute
  // error is what says the gradients agree there.
  GradientCheckOptions train = eval;
  train.mode = Mode::train;
  const auto t = check_network_gradients(net, x, std::span<const int>(labels), train);
  INFO("train: ", t.worst, " ", t.max_relative_error, " abs ", t.max_absolute_error);
  CHECK(t.entries_checked == Net::parameter_count);
  CHECK(t.max_absolute_error < 1e-8);
}

// ---------------------------------------------------------------------------------------------
// Kernel variants, fusion, checkpoints

namespace {
// Forward output, dx, and the compact dw and db of a D4 layer on one batch.
template <class Layer>
std::vector<Tensor<float>> run_layer(const Tensor<float>& x, const Tensor<float>& dy) {
  Layer layer = make_layer<Layer>(4);
  Tensor<float> y, dx;
  layer.forward(x, y, Mode::train);
  layer.backward(x, y, dy, &dx);
  std::vector<Tensor<float>> out{y, dx};
  layer.for_each_parameter([&](const char*, float*, float* g, std::size_t n) {
    Tensor<float> t(1, 1, 1, int(n));
    std::copy(g, g + n, t.data());
    out.push_back(t);
  });
  return out;
}
template <template <class> class LayerOf, class In, class Out>
void check_variants_agree(int batch) {
  const Tensor<float> x = random_input<In>(batch, 2), dy = random_input<Out>(batch, 3);
  const auto ref = run_layer<LayerOf<kernels::Naive>>(x, dy);
  kernels::for_each_variant<kernels::FastVariants>([&]<class V>() {
    const auto got = run_layer<LayerOf<V>>(x, dy);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      CAPTURE(V::name);
      CAPTURE(i);  // 0: y, 1: dx, 2: dw, 3: db
      CHECK(relative_difference(got[i], ref[i]) < 1e-5);
    }
  });
}
template <class K>
using Lift5 = D4ConvLayer<Shape<13, 13, 3>, float, 4, 5, 2, Valid, K, true>;
template <class K>
using Conv3 = D4ConvLayer<Shape<10, 10, 16>, float, 4, 3, 1, Valid, K, false>;
template <class K>
using Conv3Same = D4ConvLayer<Shape<8, 8, 24>, float, 2, 3, 1, Same, K, false>;
}  // namespace

TEST_CASE("D4 convolutions: every kernel variant gives the reference's output and gradients to 1e-5") {
  check_variants_agree<Lift5, Shape<13, 13, 3>, Shape<5, 5, 32>>(3);
  check_variants_agree<Conv3, Shape<10, 10, 16>, Shape<8, 8, 32>>(3);  // Winograd's geometry
  check_variants_agree<Conv3Same, Shape<8, 8, 24>, Shape<8, 8, 16>>(2);
}

TEST_CASE(
    "D4Conv runs exactly the plain Conv2D of its expanded bank (bit for bit), and folds its gradient over the group") {
  using D4 = Conv3<kernels::Default>;
  using Plain = Conv2DLayer<Shape<10, 10, 16>, float, 32, 3, 1, Valid, kernels::Default>;
  D4 d4 = make_layer<D4>(4);
  const Tensor<float> x = random_input<Shape<10, 10, 16>>(2, 2), dy = random_input<Shape<8, 8, 32>>(2, 3);
  Tensor<float> y, dx, y_plain, dx_plain;
  d4.forward(x, y, Mode::train);
  d4.backward(x, y, dy, &dx);
  // A plain Conv2D given the expanded bank: W copied, B[f*8 + g] = b[f].
  Plain plain;
  std::copy(d4.expanded().weights(), d4.expanded().weights() + Plain::weight_count, plain.weights());
  std::vector<float> bias, compact_dw, compact_db;
  d4.for_each_parameter([&](const char* name, float* v, float* g, std::size_t n) {
    if (std::string(name) == "kernel") compact_dw.assign(g, g + n);
    else {
      bias.assign(v, v + n);
      compact_db.assign(g, g + n);
    }
  });
  for (int f = 0; f < 4; ++f)
    for (int g = 0; g < 8; ++g) plain.biases()[f * 8 + g] = bias[std::size_t(f)];
  plain.forward(x, y_plain, Mode::train);
  plain.backward(x, y_plain, dy, &dx_plain);
  CHECK(same_bits(y.data(), y_plain.data(), y.size()));
  CHECK(same_bits(dx.data(), dx_plain.data(), dx.size()));
  // db[f] = sum over the field's 8 orientations; dw[j] = sum over the 8 places w[j] went.
  for (int f = 0; f < 4; ++f) {
    float sum = 0;
    for (int g = 0; g < 8; ++g) sum += plain.bias_gradients()[f * 8 + g];
    CHECK(compact_db[std::size_t(f)] == doctest::Approx(sum).epsilon(1e-6));
  }
  // Compact (ky, kx, c*8 + h', f) sits, for each g, at the tap (y, x) that g moves it to, input
  // channel c*8 + g h', filter f*8 + g.
  constexpr int K = 3, C = 16, F = 4, FE = 32;
  for (int ky = 0; ky < K; ++ky)
    for (int kx = 0; kx < K; ++kx)
      for (int c = 0; c < 2; ++c)
        for (int hp = 0; hp < 8; ++hp)
          for (int f = 0; f < F; ++f) {
            float sum = 0;
            for (int g = 0; g < 8; ++g)
              for (int y0 = 0; y0 < K; ++y0)
                for (int x0 = 0; x0 < K; ++x0) {
                  const d4::Source src = d4::source_of(Dihedral(g), K, y0, x0);
                  if (src.y != ky || src.x != kx) continue;
                  const int h = d4::product(g, hp);
                  sum += plain.weight_gradients()[((std::size_t(y0) * K + x0) * C + c * 8 + h) * FE + f * 8 + g];
                }
            CHECK(compact_dw[((std::size_t(ky) * K + kx) * C + c * 8 + hp) * F + f] ==
                  doctest::Approx(sum).epsilon(1e-6));
          }
}

namespace {
// Fusable D4 chains: D4Lift->ReLU->MaxPool<2> and D4Conv->ReLU->MaxPool<2> (conv, ReLU and pool
// in one pass where the variant can), then D4Conv->ReLU->GroupPool (ReLU only).
template <class K>
using FusableD4Net = Network<float, Input<14, 14, 3>, D4Lift<3, 3, 1, K>, ReLU, MaxPool<2>, D4Conv<2, 3, 1, K>, ReLU,
                             MaxPool<2>, D4Conv<2, 1, 1, K>, ReLU, D4GroupPool, GlobalAvgPool, Dense<4>, Softmax>;
using D4Plan = FusionPlan<FusableD4Net<kernels::Default>::layers_type, float>;
static_assert(D4Plan::conv_relu<0>() && D4Plan::conv_relu_pool<0>() && D4Plan::relu_pool_backward<2>());
static_assert(D4Plan::conv_relu<3>() && D4Plan::conv_relu_pool<3>() && D4Plan::relu_pool_backward<5>());
static_assert(D4Plan::conv_relu<6>() && !D4Plan::conv_relu_pool<6>());

template <class Net>
void check_d4_fusion_is_exact(int batch) {
  Net fused(3), plain(3);
  plain.set_fusion(false);
  Tensor<float> x = random_input<typename Net::input_shape>(batch, 11);
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
  int skipped = 0;  // tensors the fused pass does not store
  for (std::size_t i = 0; i < Net::layer_count; ++i) {
    INFO("layer ", i, " ", Net::layer_names()[i]);
    REQUIRE(plain.activation(i).size() > 0);
    if (fused.activation(i).size() == 0) {
      ++skipped;
      continue;
    }
    REQUIRE(fused.activation(i).size() == plain.activation(i).size());
    CHECK(same_bits(fused.activation(i).data(), plain.activation(i).data(), plain.activation(i).size()));
  }
  CHECK(skipped >= 3);  // at least the three conv outputs: fusion did run
}
}  // namespace

TEST_CASE_TEMPLATE("D4 fusion: D4Lift/D4Conv + ReLU (+ MaxPool) fused give bit-identical outputs and gradients", K,
                   kernels::Naive, kernels::ImplicitGemm, kernels::Winograd4x4, kernels::Default) {
  for (int batch : {1, 5}) {
    CAPTURE(batch);
    check_d4_fusion_is_exact<FusableD4Net<K>>(batch);
  }
}

TEST_CASE("D4 checkpoint: a trained D4 network saved and loaded gives the same outputs, parameters and statistics") {
  using Net = Sequential<Input<18, 18, 3>, D4Lift<2, 4, 2>, D4BatchNorm, ReLU, MaxPool<2>, D4Conv<3, 3>, D4BatchNorm,
                         ReLU, D4GroupPool, GlobalAvgPool, Dense<4>, Softmax>;
  Net a(1);
  Adam<float> adam;
  const Tensor<float> x = random_input<Shape<18, 18, 3>>(4, 3);
  const std::vector<int> y{0, 1, 2, 3};
  for (int s = 0; s < 3; ++s) a.train_step(x, y, adam);
  const test_support::TempDir dir("d4_checkpoint");
  const std::string path = dir.file("d4.h5");
  save_checkpoint(path, a, &adam);

  Net b(2);
  Adam<float> adam_b;
  load_checkpoint(path, b, &adam_b);
  const auto pa = a.parameters(), pb = b.parameters();
  REQUIRE(pa.size() == 10);  // 3 kernels and 3 biases (the D4 ones compact), 2 x gamma and beta
  CHECK(pa[0].name == "d4lift_1/kernel");
  CHECK(pa[0].size == 2 * 4 * 4 * 3);
  for (std::size_t k = 0; k < pa.size(); ++k) CHECK(same_bits(pa[k].value, pb[k].value, pa[k].size));
  const auto ba = a.buffers(), bb = b.buffers();
  REQUIRE(ba.size() == 4);
  CHECK(ba[0].size == 2);  // one moving mean per field
  for (std::size_t k = 0; k < ba.size(); ++k) CHECK(same_bits(ba[k].value, bb[k].value, ba[k].size));
  const Tensor<float> out_a = a.forward(x, Mode::eval);
  const Tensor<float>& out_b = b.forward(x, Mode::eval);
  CHECK(same_bits(out_a.data(), out_b.data(), out_a.size()));
  // A checkpoint of another D4 layout is refused by name.
  using Other = Sequential<Input<18, 18, 3>, D4Lift<3, 4, 2>, D4BatchNorm, ReLU, MaxPool<2>, D4Conv<3, 3>, D4BatchNorm,
                           ReLU, D4GroupPool, GlobalAvgPool, Dense<4>, Softmax>;
  Other other(1);
  CHECK(test_support::error_of([&] { load_checkpoint(path, other); }).find("D4Lift<2,4,2,valid>") != std::string::npos);
}
