// Dihedral augmentation, rotate4, to_tensor and the stratified split.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "hubble/data/augment.hpp"
#include "hubble/data/split.hpp"

using hubble::data::Dihedral;
using hubble::data::ImageSet;
using hubble::data::transform_image;

namespace {

std::vector<std::uint8_t> apply(const std::vector<std::uint8_t>& img, int side, int channels, Dihedral t) {
  std::vector<std::uint8_t> out(img.size());
  transform_image(img.data(), side, channels, t, out.data());
  return out;
}

std::vector<std::uint8_t> random_image(int side, int channels, std::uint64_t seed) {
  hubble::Rng rng(seed);
  std::vector<std::uint8_t> img(std::size_t(side) * side * channels);
  for (auto& v : img) v = std::uint8_t(rng.below(256));
  return img;
}

ImageSet random_set(int n, int side, std::uint64_t seed) {
  ImageSet s;
  s.height = s.width = side;
  s.channels = 3;
  s.pixels.resize(std::size_t(n) * side * side * 3);
  hubble::Rng rng(seed);
  for (auto& v : s.pixels) v = std::uint8_t(rng.below(256));
  for (int i = 0; i < n; ++i) s.labels.push_back(i % 10);
  return s;
}

}  // namespace

TEST_CASE("data: the dihedral transforms match a hand-made 3x3 example (numpy.rot90 convention)") {
  const std::vector<std::uint8_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  // Expected values from numpy: rot90 = np.rot90(a, k); flip_rotK = np.rot90(a[:, ::-1], k).
  CHECK(apply(a, 3, 1, Dihedral::identity) == a);
  CHECK(apply(a, 3, 1, Dihedral::rot90) == std::vector<std::uint8_t>{3, 6, 9, 2, 5, 8, 1, 4, 7});
  CHECK(apply(a, 3, 1, Dihedral::rot180) == std::vector<std::uint8_t>{9, 8, 7, 6, 5, 4, 3, 2, 1});
  CHECK(apply(a, 3, 1, Dihedral::rot270) == std::vector<std::uint8_t>{7, 4, 1, 8, 5, 2, 9, 6, 3});
  CHECK(apply(a, 3, 1, Dihedral::flip) == std::vector<std::uint8_t>{3, 2, 1, 6, 5, 4, 9, 8, 7});
  CHECK(apply(a, 3, 1, Dihedral::flip_rot90) == std::vector<std::uint8_t>{1, 4, 7, 2, 5, 8, 3, 6, 9});
  CHECK(apply(a, 3, 1, Dihedral::flip_rot180) == std::vector<std::uint8_t>{7, 8, 9, 4, 5, 6, 1, 2, 3});
  CHECK(apply(a, 3, 1, Dihedral::flip_rot270) == std::vector<std::uint8_t>{9, 6, 3, 8, 5, 2, 7, 4, 1});
}

TEST_CASE("data: rot90 moves pixel (y, x) to (side-1-x, y) and keeps the channels together") {
  const int side = 5, channels = 3;
  std::vector<std::uint8_t> img(side * side * channels);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x)
      for (int c = 0; c < channels; ++c) img[std::size_t((y * side + x) * channels + c)] = std::uint8_t(100 * c + 10 * y + x);
  const auto r = apply(img, side, channels, Dihedral::rot90);
  bool moved = true;
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x)
      for (int c = 0; c < channels; ++c)
        moved &= r[std::size_t(((side - 1 - x) * side + y) * channels + c)] == img[std::size_t((y * side + x) * channels + c)];
  CHECK(moved);
}

TEST_CASE("data: rot90 four times is the identity, flips are involutions, compose and inverse agree") {
  for (int side : {1, 2, 7, 16}) {
    CAPTURE(side);
    const auto img = random_image(side, 3, 42 + std::uint64_t(side));
    auto r = img;
    for (int k = 0; k < 4; ++k) {
      r = apply(r, side, 3, Dihedral::rot90);
      if (side > 1 && k < 3) CHECK(r != img);
    }
    CHECK(r == img);
    for (Dihedral f : {Dihedral::flip, Dihedral::flip_rot90, Dihedral::flip_rot180, Dihedral::flip_rot270}) {
      CAPTURE(hubble::data::dihedral_name(f));
      if (side > 1) CHECK(apply(img, side, 3, f) != img);
      CHECK(apply(apply(img, side, 3, f), side, 3, f) == img);
    }
    CHECK(apply(apply(img, side, 3, Dihedral::rot90), side, 3, Dihedral::rot90) == apply(img, side, 3, Dihedral::rot180));
    CHECK(apply(apply(img, side, 3, Dihedral::flip), side, 3, Dihedral::rot90) == apply(img, side, 3, Dihedral::flip_rot90));
  }
  const int side = 6;
  const auto img = random_image(side, 3, 7);
  std::vector<std::vector<std::uint8_t>> views;
  for (Dihedral a : hubble::data::all_dihedral) {
    views.push_back(apply(img, side, 3, a));
    CHECK(apply(apply(img, side, 3, a), side, 3, hubble::data::inverse(a)) == img);
    for (Dihedral b : hubble::data::all_dihedral)
      CHECK(apply(apply(img, side, 3, a), side, 3, b) == apply(img, side, 3, hubble::data::compose(a, b)));
  }
  int equal_pairs = 0;  // a random image has 8 different views
  for (std::size_t i = 0; i < views.size(); ++i)
    for (std::size_t j = i + 1; j < views.size(); ++j) equal_pairs += views[i] == views[j];
  CHECK(equal_pairs == 0);
}

TEST_CASE("data: rotate4 gives every chosen image at 0/90/180/270 degrees with its label") {
  const ImageSet s = random_set(5, 8, 3);
  const std::vector<int> chosen = {3, 0};
  const ImageSet r = hubble::data::rotate4(s, chosen);
  REQUIRE(r.size() == 8);
  CHECK(r.height == 8);
  for (std::size_t k = 0; k < chosen.size(); ++k)
    for (int rot = 0; rot < 4; ++rot) {
      CAPTURE(k);
      CAPTURE(rot);
      const std::vector<std::uint8_t> src(s.image(chosen[k]), s.image(chosen[k]) + s.image_bytes());
      const std::vector<std::uint8_t> got(r.image(int(4 * k) + rot), r.image(int(4 * k) + rot) + r.image_bytes());
      CHECK(got == apply(src, 8, 3, Dihedral(rot)));
      CHECK(r.labels[4 * k + std::size_t(rot)] == s.labels[std::size_t(chosen[k])]);
    }
  CHECK_THROWS_AS(hubble::data::rotate4(s, {5}), hubble::Error);
}

TEST_CASE("data: to_tensor scales to [0, 1], applies the views and checks its input") {
  const ImageSet s = random_set(12, 9, 5);
  const std::vector<int> idx = {11, 2, 2, 7};
  hubble::Tensor<float> t;
  hubble::data::to_tensor(s, idx, t);
  REQUIRE(t.batch() == 4);
  CHECK(t.height() == 9);
  CHECK(t.width() == 9);
  CHECK(t.channels() == 3);
  bool exact = true;
  for (std::size_t k = 0; k < idx.size(); ++k)
    for (std::size_t j = 0; j < s.image_bytes(); ++j) exact &= t.sample(int(k))[j] == float(s.image(idx[k])[j]) / 255.f;
  CHECK(exact);

  const std::vector<Dihedral> views = {Dihedral::rot270, Dihedral::identity, Dihedral::flip_rot90, Dihedral::rot180};
  hubble::Tensor<double> v;
  hubble::data::to_tensor<double>(s, idx, v, views);
  bool viewed = true;
  for (std::size_t k = 0; k < idx.size(); ++k) {
    const auto img = apply(std::vector<std::uint8_t>(s.image(idx[k]), s.image(idx[k]) + s.image_bytes()), 9, 3, views[k]);
    for (std::size_t j = 0; j < img.size(); ++j) viewed &= v.sample(int(k))[j] == double(img[j]) / 255.0;
  }
  CHECK(viewed);
  CHECK(*std::max_element(v.data(), v.data() + v.size()) <= 1.0);

  // a large batch goes through the parallel path and gives the same as one image at a time
  std::vector<int> many(200);
  for (int i = 0; i < 200; ++i) many[std::size_t(i)] = (i * 7) % 12;
  hubble::Tensor<float> big, one;
  hubble::data::to_tensor(s, many, big);
  hubble::data::to_tensor(s, std::vector<int>{many[137]}, one);
  CHECK(std::equal(one.data(), one.data() + one.size(), big.sample(137)));

  CHECK_THROWS_AS(hubble::data::to_tensor(s, std::vector<int>{12}, t), hubble::Error);
  CHECK_THROWS_AS(hubble::data::to_tensor(s, idx, t, std::vector<Dihedral>{Dihedral::rot90}), hubble::Error);
  ImageSet wide;
  wide.height = 2; wide.width = 3; wide.channels = 3;
  wide.pixels.assign(18, 255);
  wide.labels = {0};
  hubble::data::to_tensor(wide, std::vector<int>{0}, t);  // identity works on non-square images
  CHECK(t.width() == 3);
  CHECK(t[17] == 1.f);
  CHECK_THROWS_AS(hubble::data::to_tensor(wide, std::vector<int>{0}, t, std::vector<Dihedral>{Dihedral::rot90}),
                  hubble::Error);
}

TEST_CASE("data: random_dihedral draws all 8 transforms about equally, reproducibly") {
  hubble::Rng rng(9), again(9);
  std::array<int, 8> counts{};
  bool same = true;
  for (int i = 0; i < 1600; ++i) {
    const Dihedral d = hubble::data::random_dihedral(rng);
    same &= d == hubble::data::random_dihedral(again);
    ++counts[std::size_t(d)];
  }
  CHECK(same);
  for (int c : counts) {
    CHECK(c > 140);
    CHECK(c < 260);
  }
}

TEST_CASE("data: stratified_split keeps each class's proportion, is disjoint and covering") {
  std::vector<int> labels;
  const int sizes[10] = {80, 80, 80, 80, 80, 80, 80, 79, 79, 80};
  for (int c = 0; c < 10; ++c)
    for (int k = 0; k < sizes[c]; ++k) labels.push_back(c);
  for (double fraction : {0.0, 0.1, 0.2, 0.5, 1.0}) {
    CAPTURE(fraction);
    const auto split = hubble::data::stratified_split(labels, fraction, 123);
    std::vector<int> all = split.train;
    all.insert(all.end(), split.validation.begin(), split.validation.end());
    std::sort(all.begin(), all.end());
    std::vector<int> expected(labels.size());
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(all == expected);  // disjoint and covering
    std::array<int, 10> val{};
    for (int i : split.validation) ++val[std::size_t(labels[std::size_t(i)])];
    for (int c = 0; c < 10; ++c) CHECK(val[std::size_t(c)] == int(std::lround(fraction * sizes[c])));
  }
  CHECK(hubble::data::stratified_split(labels, 0.0, 1).validation.empty());
  CHECK_THROWS_AS(hubble::data::stratified_split(labels, 1.5, 1), hubble::Error);
  CHECK_THROWS_AS(hubble::data::stratified_split({0, -1}, 0.5, 1), hubble::Error);
}

TEST_CASE("data: stratified_split is deterministic per seed and shuffles within classes") {
  std::vector<int> labels;
  for (int i = 0; i < 300; ++i) labels.push_back(i / 30);  // sorted by class, like the real file
  const auto a = hubble::data::stratified_split(labels, 0.2, 7), b = hubble::data::stratified_split(labels, 0.2, 7);
  const auto c = hubble::data::stratified_split(labels, 0.2, 8);
  CHECK(a.train == b.train);
  CHECK(a.validation == b.validation);
  CHECK(a.validation != c.validation);
  // not simply the first or last images of each class
  int first_of_class = 0;
  for (int i : a.validation) first_of_class += i % 30 < 6;
  CHECK(first_of_class < 30);
  // one class's split does not depend on the others
  std::vector<int> fewer(labels.begin(), labels.begin() + 270);  // class 9 removed
  const auto d = hubble::data::stratified_split(fewer, 0.2, 7);
  std::vector<int> a_without_9;
  for (int i : a.validation)
    if (i < 270) a_without_9.push_back(i);
  CHECK(d.validation == a_without_9);
}
