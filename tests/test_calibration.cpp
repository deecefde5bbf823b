// Calibration of 8-bit ranges (lowp/calibration.hpp): the histogram keeps every value, the three
// methods choose what they promise on distributions whose answer is known.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "hubble/core/rng.hpp"
#include "hubble/lowp/calibration.hpp"
#include "support.hpp"

using namespace hubble;

namespace {
std::vector<float> uniform_values(int n, float lo, float hi, std::uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = lo + (hi - lo) * float(r.uniform());
  return v;
}
std::uint64_t total(std::span<const std::uint64_t> h) { return std::accumulate(h.begin(), h.end(), std::uint64_t(0)); }
}  // namespace

TEST_CASE("calibration: the histogram counts every value once, whatever order they come in") {
  std::vector<float> v = uniform_values(20000, 0.0f, 3.0f, 1);
  v.push_back(0.0f);
  v.push_back(37.5f);  // forces the range to double several times after the first values
  lowp::RangeObserver in_order, shuffled, sorted;
  for (std::size_t i = 0; i < v.size(); i += 1000)
    in_order.observe(std::span<const float>(v.data() + i, std::min<std::size_t>(1000, v.size() - i)));
  std::vector<float> w = v;
  Rng r(2);
  for (std::size_t i = w.size() - 1; i > 0; --i) std::swap(w[i], w[r.below(i + 1)]);
  shuffled.observe(w);
  std::sort(w.begin(), w.end());
  sorted.observe(w);
  CHECK(in_order.count() == v.size());
  CHECK(total(in_order.positive_histogram()) == v.size() - 1);  // all but the zero
  CHECK(in_order.bin_width() == shuffled.bin_width());
  CHECK(in_order.bin_width() == sorted.bin_width());
  CHECK(in_order.bin_width() * lowp::RangeObserver::bins == 64.0);  // the power of two above 37.5
  const auto a = in_order.positive_histogram(), b = shuffled.positive_histogram(), c = sorted.positive_histogram();
  CHECK(std::equal(a.begin(), a.end(), b.begin()));
  CHECK(std::equal(a.begin(), a.end(), c.begin()));
  CHECK(in_order.min() == 0.0f);
  CHECK(in_order.max() == 37.5f);
}

TEST_CASE("calibration: minmax keeps everything, percentile and entropy clip rare outliers") {
  // 200,000 values with an exponential tail (mean 1, the largest about 12: how a ReLU output's
  // bulk looks) and 20 spikes at 40 .. 59.
  Rng r(5);
  std::vector<float> v;
  for (int i = 0; i < 200000; ++i) v.push_back(float(-std::log(1.0 - r.uniform())));
  const float bulk_max = *std::max_element(v.begin(), v.end());
  for (int i = 0; i < 20; ++i) v.push_back(40.0f + float(i));
  lowp::RangeObserver o;
  o.observe(v);
  const lowp::Range mm = o.range(lowp::CalibrationMethod::minmax);
  CHECK(mm.lo == 0.0f);
  CHECK(mm.hi == 59.0f);
  // The 99.99th percentile lies in the bulk's tail (the spikes are 0.01% of the values).
  const lowp::Range pc = o.range(lowp::CalibrationMethod::percentile, 0.9999);
  CHECK(pc.lo == 0.0f);
  CHECK(pc.hi > 8.0f);
  CHECK(pc.hi <= bulk_max + 0.1f);
  // Entropy: spending codes on the empty stretch up to 59 costs the bulk more than clipping the spikes.
  const lowp::Range en = o.range(lowp::CalibrationMethod::entropy, 0.9999, 256);
  CHECK(en.lo == 0.0f);
  CHECK(en.hi < bulk_max + 0.1f);
  CHECK(en.hi > 6.0f);
  MESSAGE("outlier case: minmax hi " << mm.hi << ", 99.99th percentile " << pc.hi << ", entropy " << en.hi
                                     << " (bulk max " << bulk_max << ")");
}

TEST_CASE("calibration: without outliers every method keeps (nearly) the whole range; signed data gets both sides") {
  const std::vector<float> v = uniform_values(50000, -2.0f, 6.0f, 4);
  lowp::RangeObserver o;
  o.observe(v);
  for (auto m :
       {lowp::CalibrationMethod::minmax, lowp::CalibrationMethod::percentile, lowp::CalibrationMethod::entropy}) {
    const lowp::Range r = o.range(m, 0.9999);
    CAPTURE(lowp::name_of(m));
    CHECK(r.hi >= 0.95f * o.max());
    CHECK(r.hi <= o.max());
    CHECK(r.lo <= 0.9f * o.min());
    CHECK(r.lo >= o.min());
  }
}

TEST_CASE("calibration: bad input is refused with a clear message") {
  lowp::RangeObserver o;
  CHECK(test_support::error_of([&] { o.range(lowp::CalibrationMethod::minmax); }).find("no values were observed") !=
        std::string::npos);
  const std::vector<float> bad = {1.0f, std::nanf("")};
  CHECK(test_support::error_of([&] { o.observe(bad); }).find("non-finite value") != std::string::npos);
  const std::vector<float> ok = {1.0f, 2.0f};
  lowp::RangeObserver p;
  p.observe(ok);
  CHECK(test_support::error_of([&] { p.range(lowp::CalibrationMethod::percentile, 0.2); }).find("percentile must be") !=
        std::string::npos);
  CHECK(test_support::error_of([] { lowp::parse_calibration_method("kl"); }).find("minmax, percentile or entropy") !=
        std::string::npos);
}
