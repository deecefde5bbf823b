// Cross-validation folds and training on survey views (train/trainer.hpp with Augment::survey,
// data/survey_augment.hpp).
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "hubble/data/split.hpp"
#include "hubble/data/survey_augment.hpp"
#include "hubble/hubble.hpp"
#include "hubble/train/trainer.hpp"
#include "support.hpp"

using namespace hubble;

namespace {
using test_support::error_of;

// n images of 20x20x3 in 4 classes, wider than the 12x12 network input so survey views have room
// to move: a centred square bright in band 0, 1 or 2 (classes 0-2) or in none (class 3), on
// noise. Rotations and flips keep the class, as they do a galaxy's.
data::ImageSet wide_images(int n, std::uint64_t seed) {
  data::ImageSet s;
  s.height = s.width = 20;
  s.channels = 3;
  Rng r(seed);
  for (int i = 0; i < n; ++i) {
    const int label = i % 4;
    s.labels.push_back(label);
    for (int y = 0; y < 20; ++y)
      for (int x = 0; x < 20; ++x) {
        const bool inside = y > 5 && y < 14 && x > 5 && x < 14;
        for (int c = 0; c < 3; ++c) s.pixels.push_back(std::uint8_t(r.below(60) + (inside && c == label ? 150 : 0)));
      }
  }
  return s;
}
using TinyNet = Sequential<Input<12, 12, 3>, Conv2D<4, 3>, ReLU, MaxPool<2>, Flatten, Dense<4>, Softmax>;

std::vector<int> range(int a, int b) {
  std::vector<int> v;
  for (int i = a; i < b; ++i) v.push_back(i);
  return v;
}
}  // namespace

TEST_CASE("split: stratified folds validate every image once and keep each class's share") {
  std::vector<int> labels;
  for (int i = 0; i < 103; ++i) labels.push_back(i % 7 == 0 ? 2 : i % 3);
  const int K = 5;
  std::vector<int> seen(labels.size(), 0);
  for (int f = 0; f < K; ++f) {
    const data::Split s = data::stratified_fold(labels, K, f, 42);
    CHECK(s.train.size() + s.validation.size() == labels.size());
    for (int i : s.validation) ++seen[std::size_t(i)];
    std::vector<int> both = s.train;
    both.insert(both.end(), s.validation.begin(), s.validation.end());
    std::sort(both.begin(), both.end());
    CHECK(std::adjacent_find(both.begin(), both.end()) == both.end());  // disjoint
    for (int c = 0; c < 3; ++c) {  // each class's validation share within one image of 1/K
      const auto total = std::count(labels.begin(), labels.end(), c);
      const auto val =
          std::count_if(s.validation.begin(), s.validation.end(), [&](int i) { return labels[std::size_t(i)] == c; });
      CHECK(std::abs(double(val) - double(total) / K) <= 1.0);
    }
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](int v) { return v == 1; }));
  CHECK(data::stratified_fold(labels, K, 1, 42).validation == data::stratified_fold(labels, K, 1, 42).validation);
  CHECK(data::stratified_fold(labels, K, 1, 42).validation != data::stratified_fold(labels, K, 1, 43).validation);
  CHECK(error_of([&] { data::stratified_fold(labels, 1, 0, 1); }).find("at least 2 folds") != std::string::npos);
  CHECK(error_of([&] { data::stratified_fold(labels, 4, 4, 1); }).find("outside 0 .. 3") != std::string::npos);
}

TEST_CASE(
    "survey views: deterministic per seed, varied across seeds, in [0, 1]; none of the jitter is the plain crop") {
  const data::ImageSet images = wide_images(4, 1);
  const std::vector<int> idx = {0, 1, 2, 3};
  const std::vector<data::Dihedral> views(4, data::Dihedral::identity);
  const std::vector<std::uint64_t> seeds = {11, 12, 13, 14}, other = {21, 22, 23, 24};
  Tensor<float> a, b, c;
  const data::SurveyJitter j;
  data::survey_tensor(images, std::span<const int>(idx), std::span<const data::Dihedral>(views),
                      std::span<const std::uint64_t>(seeds), j, 12, a);
  data::survey_tensor(images, std::span<const int>(idx), std::span<const data::Dihedral>(views),
                      std::span<const std::uint64_t>(seeds), j, 12, b);
  data::survey_tensor(images, std::span<const int>(idx), std::span<const data::Dihedral>(views),
                      std::span<const std::uint64_t>(other), j, 12, c);
  REQUIRE(a.size() == 4u * 12 * 12 * 3);
  CHECK(std::equal(a.data(), a.data() + a.size(), b.data()));
  {  // each image's view depends on its seed only, not on the thread that made it
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    data::survey_tensor(images, std::span<const int>(idx), std::span<const data::Dihedral>(views),
                        std::span<const std::uint64_t>(seeds), j, 12, b);
    omp_set_num_threads(before);
    CHECK(std::equal(a.data(), a.data() + a.size(), b.data()));
  }
  double diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i] >= 0.0f);
    CHECK(a[i] <= 1.0f);
    diff += std::abs(double(a[i]) - double(c[i]));
  }
  CHECK(diff / double(a.size()) > 0.01);
  // With every effect switched off, a view is the centre crop of the source (scale 1, no shift).
  data::SurveyJitter off;
  off.scale_min = off.scale_max = 1.0;
  off.shift = off.brightness = off.contrast = off.band_gain = 0.0;
  off.blur_probability = off.noise_probability = off.jpeg_probability = 0.0;
  Tensor<float> plain, crop;
  data::survey_tensor(images, std::span<const int>(idx), std::span<const data::Dihedral>(views),
                      std::span<const std::uint64_t>(seeds), off, 12, plain);
  const data::ImageSet centre = data::centre_crop(images, 12);
  data::to_tensor(centre, std::span<const int>(idx), crop);
  for (std::size_t i = 0; i < plain.size(); ++i) CHECK(plain[i] == doctest::Approx(crop[i]).epsilon(1e-6));
  CHECK(error_of([&] {
          data::survey_tensor(images, std::span<const int>(idx), std::span<const data::Dihedral>(views),
                              std::span<const std::uint64_t>(seeds), j, 24, a);
        }).find("at least 24 pixels") != std::string::npos);
}

TEST_CASE("survey views: photometric_probability 0 keeps the pixels (geometry only), 1 (the default) changes all") {
  const data::ImageSet images = wide_images(8, 3);
  const std::vector<int> idx = {0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<data::Dihedral> views(8, data::Dihedral::identity);
  const std::vector<std::uint64_t> seeds = {31, 32, 33, 34, 35, 36, 37, 38};
  const auto make = [&](const data::SurveyJitter& j, Tensor<float>& out) {
    data::survey_tensor(images, std::span<const int>(idx), std::span<const data::Dihedral>(views),
                        std::span<const std::uint64_t>(seeds), j, 12, out);
  };
  // Geometry alone: scale 1, no shift, so a view without photometric effects is the centre crop.
  data::SurveyJitter fixed;
  fixed.scale_min = fixed.scale_max = 1.0;
  fixed.shift = 0.0;
  fixed.blur_probability = fixed.noise_probability = 1.0;  // every photometric view visibly differs
  Tensor<float> crop, none, all, half;
  data::to_tensor(data::centre_crop(images, 12), std::span<const int>(idx), crop);
  data::SurveyJitter j0 = fixed;
  j0.photometric_probability = 0.0;
  make(j0, none);
  for (std::size_t i = 0; i < none.size(); ++i) CHECK(none[i] == doctest::Approx(crop[i]).epsilon(1e-6));
  // The share in between: some views are the plain crop and some are not.
  data::SurveyJitter jh = fixed;
  jh.photometric_probability = 0.5;
  make(jh, half);
  const std::size_t per = 12 * 12 * 3;
  int plain_views = 0;
  for (std::size_t k = 0; k < idx.size(); ++k) {
    double d = 0;
    for (std::size_t i = k * per; i < (k + 1) * per; ++i) d += std::abs(double(half[i]) - double(crop[i]));
    plain_views += d / double(per) < 1e-6;
  }
  CHECK(plain_views > 0);
  CHECK(plain_views < int(idx.size()));
  // 1 is the default, and then every view gets the effects.
  data::SurveyJitter j1 = fixed;
  j1.photometric_probability = 1.0;
  Tensor<float> again;
  make(j1, all);
  make(fixed, again);
  CHECK(std::equal(all.data(), all.data() + all.size(), again.data()));
  for (std::size_t k = 0; k < idx.size(); ++k) {
    double d = 0;
    for (std::size_t i = k * per; i < (k + 1) * per; ++i) d += std::abs(double(all[i]) - double(crop[i]));
    CHECK(d / double(per) > 1e-3);
  }
}

TEST_CASE("trainer: survey augmentation trains on views of wider images, validates on the centre crop, and learns") {
  const data::ImageSet images = wide_images(96, 7);
  train::TrainConfig c;
  c.epochs = 8;
  c.batch_size = 8;
  c.lr = 0.01;
  c.seed = 3;
  c.augment = train::Augment::survey;
  c.jitter.jpeg_probability = 0.2;
  auto run = [&](int threads) {
    c.threads = threads;
    TinyNet net(2);
    train::Trainer<TinyNet> t(net, c);
    const train::FitResult r = t.fit(images, range(0, 72), range(72, 96));
    std::vector<float> w;
    for (const auto& p : net.parameters()) w.insert(w.end(), p.value, p.value + p.size);
    return std::make_pair(r, w);
  };
  const auto [r1, w1] = run(1);
  CHECK(r1.history.back().val_accuracy >= 0.6);  // chance is 0.25
  CHECK(r1.history.back().train_loss < r1.history.front().train_loss);
  const auto [r2, w2] = run(1);
  CHECK(w1 == w2);  // repeatable

  // Other modes still require the network's own input size.
  c.augment = train::Augment::dihedral;
  TinyNet net(2);
  train::Trainer<TinyNet> t(net, c);
  CHECK(error_of([&] { t.fit(images, range(0, 72), {}); }).find("12") != std::string::npos);
}
