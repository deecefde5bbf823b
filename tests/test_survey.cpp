// Survey-variation transforms (data/survey.hpp) and the robustness benchmark's shifts (data/robustness.hpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include <omp.h>

#include <set>
#include <string>

#include "hubble/data/augment.hpp"
#include "hubble/data/robustness.hpp"
#include "hubble/data/survey.hpp"

namespace survey = hubble::data::survey;
using hubble::data::Dihedral;

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  hubble::Rng rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = std::uint8_t(rng.below(256));
  return v;
}

// A smooth galaxy-like picture: a bright elliptical blob on a dim, slightly graded sky.
std::vector<float> smooth_image(int h, int w, int c) {
  std::vector<float> img(std::size_t(h) * w * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) {
        const double dy = (y - h / 2.0) / (h / 6.0), dx = (x - w / 2.0) / (w / 4.0);
        img[(std::size_t(y) * w + x) * c + k] =
            float(0.08 + 0.02 * x / w + (0.7 - 0.1 * k) * std::exp(-(dy * dy + dx * dx)));
      }
  return img;
}

// Index folded into 0..n-1 by mirroring with the edge pixel repeated, the slow obvious way.
int reflect(int i, int n) {
  while (i < 0 || i >= n) {
    if (i < 0) i = -1 - i;
    if (i >= n) i = 2 * n - 1 - i;
  }
  return i;
}

double mean_of(const std::vector<float>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }
double variance_of(const std::vector<float>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (float x : v) s += (x - m) * (x - m);
  return s / double(v.size());
}

}  // namespace

TEST_CASE("survey: resample at scale 1, no shift, equals transform_image / 255 for all 8 transforms") {
  for (int side : {7, 8}) {
    const int c = 3;
    const auto src = random_bytes(std::size_t(side) * side * c, 11 + std::uint64_t(side));
    for (Dihedral t : hubble::data::all_dihedral) {
      CAPTURE(side);
      CAPTURE(hubble::data::dihedral_name(t));
      std::vector<std::uint8_t> ref(src.size());
      hubble::data::transform_image(src.data(), side, c, t, ref.data());
      std::vector<float> out(src.size(), -1.0f);
      survey::resample(src.data(), side, side, c, 1.0, 0.0, 0.0, t, side, out.data());
      int mismatches = 0;
      for (std::size_t i = 0; i < out.size(); ++i) mismatches += out[i] != float(ref[i]) / 255.0f;
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("survey: resample magnifies about the centre, shifts in source pixels and clamps at the edges") {
  // 5 x 5 source, value 10 y + x (channel 0) and 100 + 10 y + x (channel 1). With scale 2 into 9 x 9,
  // output (2a, 2b) sits on source centre (a, b) and odd rows/columns fall half way between.
  const int n = 5, c = 2;
  std::vector<std::uint8_t> src(n * n * c);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      src[std::size_t((y * n + x) * c)] = std::uint8_t(10 * y + x);
      src[std::size_t((y * n + x) * c + 1)] = std::uint8_t(100 + 10 * y + x);
    }
  const int side = 9;
  std::vector<float> out(std::size_t(side) * side * c);
  survey::resample(src.data(), n, n, c, 2.0, 0.0, 0.0, Dihedral::identity, side, out.data());
  const auto at = [&](int y, int x, int k) { return out[std::size_t((y * side + x) * c + k)] * 255.0f; };
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      CHECK(at(2 * a, 2 * b, 0) == doctest::Approx(10 * a + b).epsilon(1e-6));
      CHECK(at(2 * a, 2 * b, 1) == doctest::Approx(100 + 10 * a + b).epsilon(1e-6));
    }
  CHECK(at(1, 0, 0) == doctest::Approx(5.0).epsilon(1e-6));   // between rows 0 and 1: (0 + 10) / 2
  CHECK(at(3, 5, 0) == doctest::Approx(17.5).epsilon(1e-6));  // rows 1..2, columns 2..3: (12 + 13 + 22 + 23) / 4
  CHECK(at(4, 4, 0) == doctest::Approx(22.0).epsilon(1e-6));  // the centre stays the centre

  // A shift of (+1, -2) source pixels at scale 1: out(y, x) = src(y + 1, x - 2), clamped to the edge.
  std::vector<float> moved(std::size_t(n) * n * c);
  survey::resample(src.data(), n, n, c, 1.0, 1.0, -2.0, Dihedral::identity, n, moved.data());
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const int sy = std::min(y + 1, n - 1), sx = std::max(x - 2, 0);
      CHECK(moved[std::size_t((y * n + x) * c)] * 255.0f == doctest::Approx(10 * sy + sx).epsilon(1e-6));
    }

  // Scale 0.5: one output pixel steps two source pixels from the centre; past the source's edge
  // the edge pixels repeat, so the output's corner is the source's corner.
  std::vector<float> small(std::size_t(n) * n * c);
  survey::resample(src.data(), n, n, c, 0.5, 0.0, 0.0, Dihedral::identity, n, small.data());
  CHECK(small[0] * 255.0f == doctest::Approx(0.0));
  CHECK(small[std::size_t((2 * n + 2) * c)] * 255.0f == doctest::Approx(22.0).epsilon(1e-6));
  CHECK(small[std::size_t((2 * n + 1) * c)] * 255.0f == doctest::Approx(20.0).epsilon(1e-6));  // reads column 0
}

TEST_CASE("survey: resample with a transform equals resampling the transformed image (R_t before the shift)") {
  const int n = 12, c = 3, side = 10;
  const auto src = random_bytes(std::size_t(n) * n * c, 5);
  for (Dihedral t : hubble::data::all_dihedral) {
    CAPTURE(hubble::data::dihedral_name(t));
    std::vector<std::uint8_t> turned(src.size());
    hubble::data::transform_image(src.data(), n, c, t, turned.data());
    std::vector<float> direct(std::size_t(side) * side * c), via(direct.size());
    // A magnified view of the turned image, no shift: the same as turning inside resample.
    survey::resample(src.data(), n, n, c, 1.37, 0.0, 0.0, t, side, direct.data());
    survey::resample(turned.data(), n, n, c, 1.37, 0.0, 0.0, Dihedral::identity, side, via.data());
    double worst = 0;
    for (std::size_t i = 0; i < direct.size(); ++i) worst = std::max(worst, double(std::abs(direct[i] - via[i])));
    CHECK(worst < 1e-5);
  }
  // The shift is in source pixels, added after R_t: rot90 with shift_x = +1 reads one source column
  // to the right of what rot90 alone reads.
  std::vector<float> a(std::size_t(n) * n * c), b(a.size());
  survey::resample(src.data(), n, n, c, 1.0, 0.0, 1.0, Dihedral::rot90, n, a.data());
  // rot90 reads src(x, s - y); with shift_x 1 it reads src(x, s - y + 1) = rot90 output row y - 1.
  survey::resample(src.data(), n, n, c, 1.0, 0.0, 0.0, Dihedral::rot90, n, b.data());
  for (int y = 1; y < n; ++y)
    for (int x = 0; x < n; ++x)
      for (int k = 0; k < c; ++k)
        CHECK(a[std::size_t((y * n + x) * c + k)] == b[std::size_t(((y - 1) * n + x) * c + k)]);
}

TEST_CASE("survey: resample refuses bad arguments with a clear message") {
  const auto src = random_bytes(4 * 4 * 3, 1);
  std::vector<float> out(4 * 4 * 3);
  CHECK_THROWS_WITH_AS(survey::resample(src.data(), 4, 4, 3, 0.0, 0, 0, Dihedral::identity, 4, out.data()),
                       doctest::Contains("scale must be a positive number"), hubble::Error);
  CHECK_THROWS_AS(survey::resample(src.data(), 4, 4, 3, std::nan(""), 0, 0, Dihedral::identity, 4, out.data()),
                  hubble::Error);
  CHECK_THROWS_AS(survey::resample(src.data(), 4, 4, 3, 1, std::numeric_limits<double>::infinity(), 0,
                                   Dihedral::identity, 4, out.data()),
                  hubble::Error);
  CHECK_THROWS_AS(survey::resample(src.data(), 4, 4, 3, 1, 0, 0, Dihedral(9), 4, out.data()), hubble::Error);
  CHECK_THROWS_AS(survey::resample(src.data(), 0, 4, 3, 1, 0, 0, Dihedral::identity, 4, out.data()), hubble::Error);
  // A shift far outside the image is still defined: every sample clamps onto the edge.
  survey::resample(src.data(), 4, 4, 3, 1, 1e12, -1e12, Dihedral::identity, 4, out.data());
  CHECK(out[0] == float(src[(3 * 4 + 0) * 3]) / 255.0f);
}

TEST_CASE(
    "survey: gaussian_blur keeps the mean of a constant-edged image, lowers its variance; sigma <= 0 is identity") {
  const int h = 24, w = 20, c = 3;
  std::vector<float> img(std::size_t(h) * w * c, 0.2f);
  for (int y = 9; y < 15; ++y)
    for (int x = 8; x < 12; ++x)
      for (int k = 0; k < c; ++k) img[(std::size_t(y) * w + x) * c + k] = 0.9f - 0.1f * float(k);
  const std::vector<float> original = img;
  survey::gaussian_blur(img.data(), h, w, c, 0.0);
  CHECK(img == original);
  survey::gaussian_blur(img.data(), h, w, c, -3.0);
  CHECK(img == original);
  survey::gaussian_blur(img.data(), h, w, c, 2.0);  // radius 6: the bright block is 8 pixels from every edge
  CHECK(mean_of(img) == doctest::Approx(mean_of(original)).epsilon(1e-5));
  CHECK(variance_of(img) < 0.5 * variance_of(original));
  CHECK(img[0] == doctest::Approx(0.2f).epsilon(1e-5));  // the flat sky stays flat
  CHECK_THROWS_AS(survey::gaussian_blur(img.data(), h, w, c, std::nan("")), hubble::Error);
}

TEST_CASE("survey: gaussian_blur equals a direct 2-D convolution with mirrored edges") {
  const int h = 9, w = 7, c = 2;
  const auto bytes = random_bytes(std::size_t(h) * w * c, 3);
  for (double sigma : {0.6, 1.2, 3.0}) {  // sigma 3: radius 9, past both image sides (mirrors twice)
    CAPTURE(sigma);
    std::vector<float> img(bytes.size());
    for (std::size_t i = 0; i < img.size(); ++i) img[i] = float(bytes[i]) / 255.0f;
    const std::vector<float> src = img;
    survey::gaussian_blur(img.data(), h, w, c, sigma);
    const int r = int(std::ceil(3 * sigma));
    double norm = 0;
    for (int d = -r; d <= r; ++d) norm += std::exp(-d * d / (2 * sigma * sigma));
    double worst = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int k = 0; k < c; ++k) {
          double v = 0;
          for (int dy = -r; dy <= r; ++dy)
            for (int dx = -r; dx <= r; ++dx)
              v += std::exp(-(dy * dy + dx * dx) / (2 * sigma * sigma)) / (norm * norm) *
                   src[(std::size_t(reflect(y + dy, h)) * w + std::size_t(reflect(x + dx, w))) * c + k];
          worst = std::max(worst, std::abs(v - img[(std::size_t(y) * w + x) * c + k]));
        }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("survey: brightness_contrast and band_gain follow their formulas") {
  // Two pixels, two channels: channel 0 holds 0.2, 0.6 (mean 0.4); channel 1 holds 0.1, 0.3 (mean 0.2).
  std::vector<float> img = {0.2f, 0.1f, 0.6f, 0.3f};
  survey::brightness_contrast(img.data(), 2, 2, 1.5, 2.0);  // (m + 2 (v - m)) 1.5
  CHECK(img[0] == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(img[1] == doctest::Approx(0.0).epsilon(1e-6));
  CHECK(img[2] == doctest::Approx(1.2).epsilon(1e-6));
  CHECK(img[3] == doctest::Approx(0.6).epsilon(1e-6));
  img = {0.2f, 0.1f, 0.6f, 0.3f};
  survey::brightness_contrast(img.data(), 2, 2, 1.0, 0.5);  // halfway to the channel mean
  CHECK(img[0] == doctest::Approx(0.3).epsilon(1e-6));
  CHECK(img[1] == doctest::Approx(0.15).epsilon(1e-6));
  CHECK(img[2] == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(img[3] == doctest::Approx(0.25).epsilon(1e-6));
  img = {0.2f, 0.1f, 0.6f, 0.3f};
  survey::brightness_contrast(img.data(), 2, 2, 0.75, 1.0);  // brightness alone: a plain multiply
  CHECK(img[2] == doctest::Approx(0.45).epsilon(1e-6));
  CHECK_THROWS_AS(survey::brightness_contrast(img.data(), 2, 2, -1.0, 1.0), hubble::Error);

  std::vector<float> rgb = {0.1f, 0.4f, 0.7f, 0.5f, 0.5f, 0.5f};
  const double gain[3] = {2.0, 0.5, 1.0};
  survey::band_gain(rgb.data(), 2, 3, gain);
  CHECK(rgb[0] == doctest::Approx(0.2));
  CHECK(rgb[1] == doctest::Approx(0.2));
  CHECK(rgb[2] == doctest::Approx(0.7));
  CHECK(rgb[3] == doctest::Approx(1.0));
  CHECK(rgb[4] == doctest::Approx(0.25));
  std::vector<float> two = {0.4f, 0.4f};
  const double gain2[2] = {0.5, 1.5};
  survey::band_gain(two.data(), 1, 2, gain2);
  CHECK(two[0] == doctest::Approx(0.2));
  CHECK(two[1] == doctest::Approx(0.6));
  const double negative[3] = {1.0, -0.1, 1.0};
  CHECK_THROWS_WITH_AS(survey::band_gain(rgb.data(), 2, 3, negative), doctest::Contains("channel 1"), hubble::Error);

  std::vector<float> v = {-0.5f, 0.5f, 1.5f, std::numeric_limits<float>::quiet_NaN(), 1.0f};
  survey::clamp01(v.data(), v.size());
  CHECK(v == std::vector<float>{0.0f, 0.5f, 1.0f, 0.0f, 1.0f});
}

TEST_CASE("survey: add_gaussian_noise has mean 0 and the asked standard deviation, and repeats for a seed") {
  const std::size_t n = 200000;
  const double sigma = 0.03;
  std::vector<float> a(n, 0.5f), b(n, 0.5f), other(n, 0.5f);
  hubble::Rng ra(42), rb(42), rc(43);
  survey::add_gaussian_noise(a.data(), n, sigma, ra);
  survey::add_gaussian_noise(b.data(), n, sigma, rb);
  survey::add_gaussian_noise(other.data(), n, sigma, rc);
  CHECK(a == b);
  CHECK(a != other);
  const double m = mean_of(a) - 0.5, sd = std::sqrt(variance_of(a));
  CHECK(std::abs(m) < 4 * sigma / std::sqrt(double(n)));  // 4 standard errors
  CHECK(sd == doctest::Approx(sigma).epsilon(0.01));
  // sigma 0: nothing changes and nothing is drawn.
  hubble::Rng r0(7), untouched(7);
  std::vector<float> z(100, 0.25f);
  survey::add_gaussian_noise(z.data(), z.size(), 0.0, r0);
  CHECK(z == std::vector<float>(100, 0.25f));
  CHECK(r0() == untouched());
  CHECK_THROWS_AS(survey::add_gaussian_noise(z.data(), z.size(), -0.1, r0), hubble::Error);
}

TEST_CASE("survey: jpeg_recompress stays close at high quality and loses more at low quality") {
  const int h = 64, w = 48, c = 3;
  const std::vector<float> original = smooth_image(h, w, c);
  const auto error_at = [&](int quality) {
    std::vector<float> img = original;
    survey::jpeg_recompress(img.data(), h, w, c, quality);
    double e = 0;
    for (std::size_t i = 0; i < img.size(); ++i) {
      e += std::abs(img[i] - original[i]);
      // Back as whole pixel values / 255.
      CHECK(std::abs(img[i] * 255.0f - std::round(img[i] * 255.0f)) < 1e-3f);
    }
    return e / double(img.size());
  };
  const double e95 = error_at(95), e90 = error_at(90), e10 = error_at(10);
  MESSAGE("mean absolute error: q95 ", e95 * 255, "/255, q90 ", e90 * 255, "/255, q10 ", e10 * 255, "/255");
  CHECK(e95 < 1.5 / 255);
  CHECK(e10 > 2 * e90);
  // Grey works; other channel counts and qualities are refused.
  std::vector<float> grey(std::size_t(h) * w, 0.5f);
  survey::jpeg_recompress(grey.data(), h, w, 1, 50);
  CHECK(grey[0] == doctest::Approx(0.5).epsilon(0.01));
  std::vector<float> four(std::size_t(h) * w * 4);
  CHECK_THROWS_WITH_AS(survey::jpeg_recompress(four.data(), h, w, 4, 50), doctest::Contains("grey or RGB"),
                       hubble::Error);
  std::vector<float> img = original;
  CHECK_THROWS_WITH_AS(survey::jpeg_recompress(img.data(), h, w, c, 0), doctest::Contains("quality must be 1..100"),
                       hubble::Error);
}

// --- the robustness benchmark's shifts (data/robustness.hpp) ---

namespace {

// n images of side x side x 3: a blob whose size and position vary with the image index.
hubble::data::ImageSet blob_set(int n, int side) {
  hubble::data::ImageSet set;
  set.height = set.width = side;
  set.channels = 3;
  set.pixels.resize(std::size_t(n) * set.image_bytes());
  for (int i = 0; i < n; ++i) {
    set.labels.push_back(i % 10);
    const double r = side * (0.1 + 0.02 * i), cy = side / 2.0 + i, cx = side / 2.0 - i;
    std::uint8_t* img = set.image(i);
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x)
        for (int k = 0; k < 3; ++k) {
          const double d2 = ((y + 0.5 - cy) * (y + 0.5 - cy) + (x + 0.5 - cx) * (x + 0.5 - cx)) / (r * r);
          img[(std::size_t(y) * side + x) * 3 + k] = std::uint8_t(std::lround(20 + (200 - 30 * k) * std::exp(-d2)));
        }
  }
  return set;
}

// Pixels of image i at or above half the image's peak (channel 0): the blob's area.
int bright_area(const hubble::data::ImageSet& set, int i) {
  const std::uint8_t* img = set.image(i);
  int peak = 0, area = 0;
  for (std::size_t p = 0; p < std::size_t(set.height) * set.width; ++p) peak = std::max(peak, int(img[3 * p]));
  for (std::size_t p = 0; p < std::size_t(set.height) * set.width; ++p) area += 2 * int(img[3 * p]) >= peak;
  return area;
}

}  // namespace

TEST_CASE("robustness: the fixed shift list holds the documented settings under unique names") {
  const auto& shifts = hubble::data::robustness_shifts();
  std::set<std::string> names;
  for (const auto& s : shifts) names.insert(s.name);
  CHECK(names.size() == shifts.size());
  REQUIRE(shifts.size() == 11);
  const auto& get = hubble::data::robustness_shift;
  CHECK(shifts.front().name == "clean");
  CHECK(hubble::data::settings_text(get("clean")).empty());
  CHECK(get("blur1").blur_sigma == 1.0);
  CHECK(get("blur2").blur_sigma == 2.0);
  CHECK(get("noise").noise_sigma == 0.03);
  CHECK(get("bright1.25").brightness == 1.25);
  CHECK(get("bright0.75").brightness == 0.75);
  CHECK(get("redder").gain == std::array<double, 3>{1.15, 1.0, 0.85});
  CHECK(get("bluer").gain == std::array<double, 3>{0.85, 1.0, 1.15});
  CHECK(get("scale0.8").scale == 0.8);
  CHECK(get("scale1.2").scale == 1.2);
  CHECK(get("jpeg40").jpeg_quality == 40);
  // Each shift but clean changes exactly one thing.
  for (const auto& s : shifts) {
    CAPTURE(s.name);
    const int changes = (s.scale != 1) + (s.blur_sigma > 0) + (s.gain != std::array<double, 3>{1, 1, 1}) +
                        (s.brightness != 1) + (s.noise_sigma > 0) + (s.jpeg_quality > 0);
    CHECK(changes == (s.name == "clean" ? 0 : 1));
    CHECK_NOTHROW(hubble::data::check_shift(s));
  }
  CHECK_THROWS_WITH_AS(get("fog"), doctest::Contains("known: clean blur1"), hubble::Error);
}

TEST_CASE("robustness: shifted() keeps clean images, is deterministic, and does what each shift says") {
  using hubble::data::shifted;
  const auto set = blob_set(4, 40);
  const auto& get = hubble::data::robustness_shift;
  // clean: every pixel comes back as it was (v / 255 * 255 rounds to v).
  CHECK(shifted(set, get("clean")).pixels == set.pixels);
  const int threads = omp_get_max_threads();
  for (const auto& s : hubble::data::robustness_shifts()) {
    CAPTURE(s.name);
    omp_set_num_threads(std::max(2, threads));
    const auto a = shifted(set, s);
    omp_set_num_threads(1);
    const auto b = shifted(set, s);
    omp_set_num_threads(threads);
    CHECK(a.pixels == b.pixels);  // same on every run, on any number of threads
    CHECK(a.labels == set.labels);
    CHECK((a.height == 40 && a.width == 40 && a.channels == 3));
    if (s.name != "clean") CHECK(a.pixels != set.pixels);
  }
  // Brightness: the mean pixel scales by the factor (no pixel reaches 255 at x1.25: peak 220).
  const auto mean_pixel = [](const hubble::data::ImageSet& x) {
    return std::accumulate(x.pixels.begin(), x.pixels.end(), 0.0) / double(x.pixels.size());
  };
  CHECK(mean_pixel(shifted(set, get("bright1.25"))) == doctest::Approx(1.25 * mean_pixel(set)).epsilon(0.005));
  CHECK(mean_pixel(shifted(set, get("bright0.75"))) == doctest::Approx(0.75 * mean_pixel(set)).epsilon(0.005));
  // Redder: channel 0 up, channel 2 down.
  const auto redder = shifted(set, get("redder"));
  CHECK(int(redder.image(0)[(20 * 40 + 20) * 3]) > int(set.image(0)[(20 * 40 + 20) * 3]));
  CHECK(int(redder.image(0)[(20 * 40 + 20) * 3 + 2]) < int(set.image(0)[(20 * 40 + 20) * 3 + 2]));
  // Scale: the blob's area grows by about 1.2^2 and shrinks by about 0.8^2.
  const auto nearer = shifted(set, get("scale1.2")), farther = shifted(set, get("scale0.8"));
  for (int i = 0; i < set.size(); ++i) {
    CAPTURE(i);
    CHECK(double(bright_area(nearer, i)) == doctest::Approx(1.44 * bright_area(set, i)).epsilon(0.15));
    CHECK(double(bright_area(farther, i)) == doctest::Approx(0.64 * bright_area(set, i)).epsilon(0.15));
  }
  // Noise: each image draws its own stream; the same picture at two indices gets different noise.
  auto twins = blob_set(2, 40);
  std::copy_n(twins.image(0), twins.image_bytes(), twins.image(1));
  const auto noisy = shifted(twins, get("noise"));
  CHECK(!std::equal(noisy.image(0), noisy.image(0) + noisy.image_bytes(), noisy.image(1)));
  double sum = 0, sum2 = 0;
  for (std::size_t k = 0; k < twins.image_bytes(); ++k) {
    const double d = double(noisy.image(0)[k]) - double(twins.image(0)[k]);
    sum += d;
    sum2 += d * d;
  }
  const double n = double(twins.image_bytes());
  CHECK(std::sqrt(sum2 / n - (sum / n) * (sum / n)) == doctest::Approx(0.03 * 255).epsilon(0.08));
  // Blur lowers the peak of a small blob.
  const auto blurred = shifted(set, get("blur2"));
  CHECK(*std::max_element(blurred.image(0), blurred.image(0) + blurred.image_bytes()) <
        *std::max_element(set.image(0), set.image(0) + set.image_bytes()));

  hubble::data::ImageSet oblong = set;
  oblong.width = 20;
  oblong.height = 80;
  CHECK_THROWS_WITH_AS(shifted(oblong, get("blur1")), doctest::Contains("must be square"), hubble::Error);
  hubble::data::Shift bad = get("jpeg40");
  bad.jpeg_quality = 101;
  CHECK_THROWS_WITH_AS(shifted(set, bad), doctest::Contains("JPEG quality must be 1..100"), hubble::Error);
}
