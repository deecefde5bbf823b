// Convolution kernel variants and the GEMM they are built on, against their references:
//  * every variant vs kernels::Naive — forward, dw, db, dx — over random shapes, strides 1-3,
//    valid/same padding, kernel sizes 1/3/5, odd sizes, batch 1-3;
//    tolerance: double 1e-12, float 1e-4, both relative to the largest reference magnitude
//    (float sums of up to a few hundred terms, accumulated in different orders);
//  * gemm::gemm vs gemm::reference over random sizes (not multiples of the blocking), all four
//    transpose combinations, every epilogue, and k long enough to be split into parts;
//  * reproducibility: the same result bit for bit on 1 and 2 threads;
//  * finite differences through Conv2D with each variant (check_layer_gradients).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "hubble/hubble.hpp"
#include "hubble/kernels/variants.hpp"
#include "rel_error.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace hubble;
using namespace hubble::kernels;
using test_support::rel_error;

namespace {

template <class T>
struct Tol;
template <>
struct Tol<double> { static constexpr double value = 1e-12; };
template <>
struct Tol<float> { static constexpr double value = 1e-4; };

ConvGeometry make_geometry(int n, int h, int w, int c, int k, int s, bool same, int f) {
  ConvGeometry g;
  g.n = n; g.h = h; g.w = w; g.c = c; g.k = k; g.stride = s; g.f = f;
  if (same) {  // TensorFlow's split: the odd pixel of padding goes at the end
    g.oh = (h + s - 1) / s;
    g.ow = (w + s - 1) / s;
    g.pad_top = std::max(0, (g.oh - 1) * s + k - h) / 2;
    g.pad_left = std::max(0, (g.ow - 1) * s + k - w) / 2;
  } else {
    g.oh = (h - k) / s + 1;
    g.ow = (w - k) / s + 1;
  }
  return g;
}

std::string describe(const ConvGeometry& g) {
  return "n" + std::to_string(g.n) + " " + std::to_string(g.h) + "x" + std::to_string(g.w) + "x" + std::to_string(g.c) +
         " k" + std::to_string(g.k) + " s" + std::to_string(g.stride) + " pad" + std::to_string(g.pad_top) + "," +
         std::to_string(g.pad_left) + " -> " + std::to_string(g.oh) + "x" + std::to_string(g.ow) + "x" + std::to_string(g.f);
}

struct Errors {
  double y = 0, dw = 0, db = 0, dx = 0;
  double max() const { return std::max({y, dw, db, dx}); }
};

template <class Variant, class T>
Errors compare_with_naive(const ConvGeometry& g, Rng& rng, bool with_dx = true) {
  auto fill = [&](std::vector<T>& v) { for (auto& e : v) e = T(rng.uniform(-1, 1)); };
  std::vector<T> x(g.in_size()), w(g.patch() * g.f), b(g.f), dy(g.out_size());
  fill(x); fill(w); fill(b); fill(dy);
  std::vector<T> y0(g.out_size()), y1(g.out_size()), dw0(w.size()), dw1(w.size()), db0(g.f), db1(g.f);
  std::vector<T> dx0(g.in_size()), dx1(g.in_size(), T(7));  // garbage: dx must be written, not added to
  Workspace<T> ws0, ws1;
  Naive::forward(g, x.data(), w.data(), b.data(), y0.data(), ws0);
  Naive::backward(g, x.data(), w.data(), dy.data(), dw0.data(), db0.data(), dx0.data(), ws0);
  std::fill(y1.begin(), y1.end(), T(7));
  std::fill(dw1.begin(), dw1.end(), T(7));
  Variant::forward(g, x.data(), w.data(), b.data(), y1.data(), ws1);
  Variant::backward(g, x.data(), w.data(), dy.data(), dw1.data(), db1.data(), with_dx ? dx1.data() : nullptr, ws1);
  Errors e;
  e.y = rel_error(y0, y1);
  e.dw = rel_error(dw0, dw1);
  e.db = rel_error(db0, db1);
  e.dx = with_dx ? rel_error(dx0, dx1) : 0.0;
  return e;
}

template <class Variant, class T>
void check_random_shapes(std::uint64_t seed, int cases) {
  Rng rng(seed);
  const int kernels_sides[3] = {1, 3, 5};
  for (int i = 0; i < cases; ++i) {
    const int k = kernels_sides[rng.below(3)], s = 1 + int(rng.below(3));
    const bool same = rng.below(2) == 1;
    const int h = (same ? 1 : k) + int(rng.below(9)), w = (same ? 1 : k) + int(rng.below(9));
    // channels/filters straddle the micro-kernel's tile sizes (6/8 rows, 8/16/32 columns)
    const int c = 1 + int(rng.below(9)), f = 1 + int(rng.below(40)), n = 1 + int(rng.below(3));
    const ConvGeometry g = make_geometry(n, h, w, c, k, s, same, f);
    const Errors e = compare_with_naive<Variant, T>(g, rng, i % 5 != 4);
    INFO(std::string(Variant::name), " ", describe(g), " errors y ", e.y, " dw ", e.dw, " db ", e.db, " dx ", e.dx);
    CHECK(e.max() <= Tol<T>::value);
  }
}

// A few larger shapes that reach the paths random small shapes do not: several k blocks of the
// GEMM, k parts of the weight gradient, long and short output rows, many channels.
template <class Variant, class T>
void check_wide_shapes() {
  Rng rng(99);
  const ConvGeometry shapes[] = {
      make_geometry(2, 21, 23, 3, 5, 2, false, 32),    // conv1-like: k*c = 15, stride 2
      make_geometry(2, 11, 12, 70, 3, 1, false, 40),   // K = 630 > KC: several k blocks
      make_geometry(3, 6, 6, 128, 3, 1, false, 20),    // conv4-like: 4-pixel output rows
      make_geometry(1, 40, 40, 2, 3, 1, true, 7),      // long rows, tiny K x f: k parts
      make_geometry(2, 9, 9, 33, 3, 2, true, 50),
  };
  for (const auto& g : shapes) {
    const Errors e = compare_with_naive<Variant, T>(g, rng);
    INFO(std::string(Variant::name), " ", describe(g), " errors y ", e.y, " dw ", e.dw, " db ", e.db, " dx ", e.dx);
    CHECK(e.max() <= Tol<T>::value);
  }
}

}  // namespace

// The variants come from kernels/variants.hpp: a new variant gets every test below.
TEST_CASE_TEMPLATE_DEFINE("conv variant matches Naive: random shapes, double", V, matches_naive_double) {
  check_random_shapes<V, double>(1234, 40);
  check_wide_shapes<V, double>();
}
TEST_CASE_TEMPLATE_APPLY(matches_naive_double, FastVariants);

TEST_CASE_TEMPLATE_DEFINE("conv variant matches Naive: random shapes, float", V, matches_naive_float) {
  check_random_shapes<V, float>(4321, 40);
  check_wide_shapes<V, float>();
}
TEST_CASE_TEMPLATE_APPLY(matches_naive_float, FastVariants);

TEST_CASE_TEMPLATE_DEFINE("conv variant matches Naive on the paper's first layer at batch 1, float", V, matches_naive_conv1) {
  Rng rng(5);
  const ConvGeometry g = make_geometry(1, 128, 128, 3, 5, 2, false, 32);
  const Errors e = compare_with_naive<V, float>(g, rng, false);  // the first layer needs no dx
  INFO(std::string(V::name), " errors y ", e.y, " dw ", e.dw, " db ", e.db);
  CHECK(e.max() <= Tol<float>::value);
}
TEST_CASE_TEMPLATE_APPLY(matches_naive_conv1, FastVariants);

TEST_CASE_TEMPLATE_DEFINE("conv variant gives the same bits on 1 and 2 threads", V, same_bits_any_threads) {
#ifdef _OPENMP
  // Small K x f and a long reduction: the weight gradient is split into k parts; the 3x3 shape
  // also splits Winograd's tile sums into parts.
  for (const ConvGeometry& g : {make_geometry(4, 40, 40, 3, 5, 2, false, 8), make_geometry(4, 40, 40, 32, 3, 1, false, 32)}) {
    Rng rng(17);
    std::vector<float> x(g.in_size()), w(g.patch() * g.f), dy(g.out_size());
    for (auto& v : x) v = float(rng.uniform(-1, 1));
    for (auto& v : w) v = float(rng.uniform(-1, 1));
    for (auto& v : dy) v = float(rng.uniform(-1, 1));
    auto run = [&](int threads) {
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
      std::vector<float> y(g.out_size()), dw(w.size()), db(g.f), dx(g.in_size()), bias(g.f, 0.5f);
      Workspace<float> ws;
      V::forward(g, x.data(), w.data(), bias.data(), y.data(), ws);
      V::backward(g, x.data(), w.data(), dy.data(), dw.data(), db.data(), dx.data(), ws);
      omp_set_num_threads(before);
      for (auto* v : {&dw, &db, &dx}) y.insert(y.end(), v->begin(), v->end());
      return y;
    };
    const auto one = run(1), two = run(2);
    INFO(std::string(V::name), " ", describe(g));
    CHECK(one == two);
  }
#else
  MESSAGE("built without OpenMP: nothing to compare");
#endif
}
// Im2colEigen is left out: Eigen picks its GEMM blocking, and so the order of its sums, by the
// number of threads (measured: 1 and 2 threads differ in the last bits).
TEST_CASE_TEMPLATE_APPLY(same_bits_any_threads, Without<AllVariants, Im2colEigen>);

TEST_CASE_TEMPLATE_DEFINE("conv variant sees weights changed in place between calls (prepared-weights cache)", V,
                          sees_changed_weights) {
  const ConvGeometry g = make_geometry(2, 20, 20, 5, 3, 1, false, 9);
  Rng rng(23);
  std::vector<double> x(g.in_size()), w(g.patch() * g.f), b(g.f, 0.25), y0(g.out_size()), y1(g.out_size());
  for (auto& v : x) v = rng.uniform(-1, 1);
  for (auto& v : w) v = rng.uniform(-1, 1);
  Workspace<double> ws, ws_ref;
  V::forward(g, x.data(), w.data(), b.data(), y1.data(), ws);
  V::forward(g, x.data(), w.data(), b.data(), y1.data(), ws);  // second call: from the cache
  Naive::forward(g, x.data(), w.data(), b.data(), y0.data(), ws_ref);
  CHECK(rel_error(y0, y1) <= 1e-12);
  w[w.size() / 2] += 0.5;  // an optimiser step, in place
  V::forward(g, x.data(), w.data(), b.data(), y1.data(), ws);
  Naive::forward(g, x.data(), w.data(), b.data(), y0.data(), ws_ref);
  CHECK(rel_error(y0, y1) <= 1e-12);
}
TEST_CASE_TEMPLATE_APPLY(sees_changed_weights, AllVariants);

namespace {
template <class T>
void check_gemm(std::uint64_t seed, int cases) {
  Rng rng(seed);
  using gemm::Trans;
  for (int i = 0; i < cases; ++i) {
    const bool long_k = i % 8 == 7;  // small output, long k: split into k parts
    const int m = 1 + int(rng.below(long_k ? 20 : 140)), n = 1 + int(rng.below(long_k ? 20 : 90));
    const int k = long_k ? 2000 + int(rng.below(3000)) : int(rng.below(600));
    const Trans ta = rng.below(2) ? Trans::yes : Trans::no, tb = rng.below(2) ? Trans::yes : Trans::no;
    // Leading dimensions larger than the matrices, as for sub-blocks.
    const int lda = (ta == Trans::no ? k : m) + int(rng.below(3)), ldb = (tb == Trans::no ? n : k) + int(rng.below(3));
    const int ldc = n + int(rng.below(3));
    std::vector<T> a(std::size_t(ta == Trans::no ? m : k) * lda + 1), b(std::size_t(tb == Trans::no ? k : n) * ldb + 1);
    std::vector<T> c0(std::size_t(m) * ldc), bias(n), scale(n);
    for (auto& v : a) v = T(rng.uniform(-1, 1));
    for (auto& v : b) v = T(rng.uniform(-1, 1));
    for (auto& v : c0) v = T(rng.uniform(-1, 1));
    for (auto& v : bias) v = T(rng.uniform(-1, 1));
    for (auto& v : scale) v = T(rng.uniform(-2, 2));
    gemm::Epilogue<T> ep;
    ep.accumulate = rng.below(2) == 1;
    ep.bias = rng.below(2) ? bias.data() : nullptr;
    ep.relu = rng.below(2) == 1;
    ep.scale = rng.below(2) ? scale.data() : nullptr;
    std::vector<T> c1 = c0;
    gemm::reference(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c0.data(), ldc, ep);
    gemm::gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c1.data(), ldc, ep);
    const double err = rel_error(c0, c1);
    INFO("m ", m, " n ", n, " k ", k, " ta ", int(ta), " tb ", int(tb), " acc ", ep.accumulate, " bias ", bool(ep.bias),
         " relu ", ep.relu, " scale ", bool(ep.scale), " error ", err);
    CHECK(err <= Tol<T>::value);
  }
}
}  // namespace

TEST_CASE("gemm matches its reference: random sizes, transposes and epilogues") {
  check_gemm<double>(77, 48);
  check_gemm<float>(78, 48);
}

TEST_CASE("gemm with a few rows (B read in place) matches its reference, on 1 and 2 threads alike") {
  // m <= 8 and no transposes: gemm's few_rows_gemm, split over the threads by column blocks.
  Rng rng(79);
  for (int i = 0; i < 40; ++i) {
    const int m = 1 + i % 8, n = 1 + int(rng.below(i % 5 == 0 ? 20 : 400)), k = int(rng.below(1300));
    const int lda = k + int(rng.below(3)), ldb = n + int(rng.below(3)), ldc = n + int(rng.below(3));
    std::vector<float> a(std::size_t(m) * lda + 1), b(std::size_t(k) * ldb + 1), c0(std::size_t(m) * ldc), bias(n),
        scale(n);
    for (auto* v : {&a, &b, &c0, &bias, &scale})
      for (auto& x : *v) x = float(rng.uniform(-1, 1));
    gemm::Epilogue<float> ep;
    ep.accumulate = i % 3 == 1;
    ep.bias = i % 2 ? bias.data() : nullptr;
    ep.relu = i % 4 < 2;
    ep.scale = i % 5 == 2 ? scale.data() : nullptr;
    std::vector<float> c1 = c0;
    gemm::reference(gemm::Trans::no, gemm::Trans::no, m, n, k, a.data(), lda, b.data(), ldb, c0.data(), ldc, ep);
    auto run = [&](int threads) {
      std::vector<float> c = c1;
#ifdef _OPENMP
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
#endif
      gemm::gemm(gemm::Trans::no, gemm::Trans::no, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, ep);
#ifdef _OPENMP
      omp_set_num_threads(before);
#endif
      return c;
    };
    const auto one = run(1), two = run(2);
    INFO("m ", m, " n ", n, " k ", k, " acc ", ep.accumulate, " bias ", bool(ep.bias), " relu ", ep.relu, " scale ",
         bool(ep.scale));
    CHECK(rel_error(c0, two) <= Tol<float>::value);
    CHECK(one == two);
  }
}

TEST_CASE("gemm: empty sum applies only the epilogue; column_sums") {
  std::vector<double> c = {1, -2, 3, -4}, bias = {0.5, 0.5};
  gemm::Epilogue<double> ep;
  ep.accumulate = true;
  ep.bias = bias.data();
  ep.relu = true;
  gemm::gemm<double>(gemm::Trans::no, gemm::Trans::no, 2, 2, 0, nullptr, 0, nullptr, 2, c.data(), 2, ep);
  CHECK(c == std::vector<double>{1.5, 0, 3.5, 0});
  std::vector<float> a(5000 * 3);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(i % 3 + 1);
  float sums[3];
  gemm::column_sums(a.data(), 5000, 3, sums);
  CHECK(sums[0] == 5000.f);
  CHECK(sums[2] == 15000.f);
}

namespace {
template <class Layer>
GradientCheckResult conv_gradient_check() {
  Layer layer;
  Rng r(3);
  layer.initialize(r, Init::glorot_uniform);
  layer.for_each_parameter([&](const char* name, double* v, double*, std::size_t n) {
    if (std::string(name) == "bias") for (std::size_t i = 0; i < n; ++i) v[i] = r.uniform(-0.5, 0.5);
  });
  using S = typename Layer::in_shape;
  Tensor<double> x(2, S::h, S::w, S::c);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = r.uniform(-1, 1);
  return check_layer_gradients(layer, x);
}
}  // namespace

TEST_CASE_TEMPLATE_DEFINE("gradient check: Conv2D with each kernel variant", V, conv_gradient_check_each) {
  const auto a = conv_gradient_check<Conv2DLayer<Shape<9, 10, 3>, double, 5, 3, 1, Valid, V>>();
  const auto b = conv_gradient_check<Conv2DLayer<Shape<9, 8, 2>, double, 4, 5, 2, Same, V>>();
  INFO(std::string(V::name), ": ", a.worst, " ", a.max_relative_error, " / ", b.worst, " ", b.max_relative_error);
  CHECK(a.passed(1e-6));
  CHECK(b.passed(1e-6));
}
TEST_CASE_TEMPLATE_APPLY(conv_gradient_check_each, AllVariants);

TEST_CASE("the variant list: one name each, found by name") {
  std::vector<std::string> names;
  for_each_variant<AllVariants>([&]<class V>() { names.push_back(V::name); });
  CHECK(names == std::vector<std::string>{"naive", "im2col+eigen", "im2col+packed-gemm", "implicit-gemm", "winograd",
                                          "winograd-4x4", "tuned"});
  CHECK(std::tuple_size_v<FastVariants> == std::tuple_size_v<AllVariants> - 1);
  std::string seen;
  CHECK(with_variant<AllVariants>("winograd-4x4", [&]<class V>() { seen = V::name; }));
  CHECK(seen == "winograd-4x4");
  CHECK_FALSE(with_variant<FastVariants>("naive", [&]<class V>() { seen = V::name; }));
  CHECK_FALSE(with_variant<AllVariants>("eigen", [&]<class V>() { seen = V::name; }));
  CHECK(variant_names<Without<FastVariants, Tuned, Winograd>>() == "im2col+eigen, im2col+packed-gemm, implicit-gemm, winograd-4x4");
}

// layers/maxpool.hpp was rewritten for speed alongside these kernels (one pass over dx when the
// windows do not overlap); stride > size leaves gaps that must get a zero gradient.
TEST_CASE("gradient check: MaxPool with gaps between windows (stride > size)") {
  MaxPoolLayer<Shape<8, 9, 3>, double, 2, 3> pool;
  Tensor<double> x(2, 8, 9, 3);
  Rng r(5);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = r.uniform(-1, 1);
  const auto res = check_layer_gradients(pool, x);
  INFO(res.worst, " ", res.max_relative_error);
  CHECK(res.passed(1e-6));
  Tensor<double> y, dx;
  pool.forward(x, y, Mode::train);
  Tensor<double> dy = y;
  for (std::size_t i = 0; i < dy.size(); ++i) dy[i] = 1.0;
  pool.backward(x, y, dy, &dx);
  double total = 0;
  for (std::size_t i = 0; i < dx.size(); ++i) total += dx[i];
  CHECK(total == doctest::Approx(double(y.size())));  // each output's gradient lands exactly once
  CHECK(dx(0, 2, 0, 0) == 0.0);                       // row 2 lies between windows
}
