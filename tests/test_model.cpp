// hubble::Model: loading by architecture, predictions, several threads on one model, and
// prepare_image's crop and resize.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "hubble/model.hpp"
#include "support.hpp"

using namespace hubble;
namespace fs = std::filesystem;

namespace {
using test_support::error_of;
using TinyNet = Sequential<Input<8, 8, 3>, Conv2D<4, 3>, ReLU, MaxPool<2>, Flatten, Dropout<0.2>, Dense<3>, Softmax>;
using UnregisteredNet = Sequential<Input<8, 8, 3>, Conv2D<2, 3>, ReLU, Flatten, Dense<3>, Softmax>;

// A file in this process's scratch folder (removed at exit).
std::string scratch(const std::string& name) {
  static const test_support::TempDir dir("model");
  return dir.file(name);
}

std::vector<std::uint8_t> random_image(int bytes, std::uint64_t seed) {
  Rng r(seed);
  std::vector<std::uint8_t> v(static_cast<std::size_t>(bytes));
  for (auto& b : v) b = std::uint8_t(r.below(256));
  return v;
}

}  // namespace

TEST_CASE("model: a registered architecture loads and predicts what the network computes") {
  Model::register_architecture<TinyNet>({"a", "b", "c"});
  TinyNet net(3);
  const std::string path = scratch("tiny.h5");
  save_checkpoint(path, net, nullptr);
  const Model m = Model::load(path);
  CHECK(m.input_height() == 8);
  CHECK(m.input_width() == 8);
  CHECK(m.input_channels() == 3);
  CHECK(m.classes() == 3);
  CHECK(m.class_names() == std::vector<std::string>{"a", "b", "c"});
  CHECK(m.architecture() == TinyNet::architecture());

  const auto img = random_image(8 * 8 * 3, 1);
  Tensor<float> x(1, 8, 8, 3);
  for (std::size_t i = 0; i < img.size(); ++i) x[i] = float(img[i]) / 255.0f;
  const Tensor<float>& expected = net.forward(x, Mode::eval);
  const std::vector<float> p = m.predict(std::span<const std::uint8_t>(img));
  REQUIRE(p.size() == 3);
  for (int k = 0; k < 3; ++k) CHECK(p[std::size_t(k)] == doctest::Approx(expected[std::size_t(k)]).epsilon(1e-6));

  // A batch gives the same rows as single images.
  Tensor<float> batch(2, 8, 8, 3);
  const auto img2 = random_image(8 * 8 * 3, 2);
  for (std::size_t i = 0; i < img.size(); ++i) {
    batch[i] = float(img[i]) / 255.0f;
    batch[img.size() + i] = float(img2[i]) / 255.0f;
  }
  const std::vector<float> pb = m.predict(batch);
  const std::vector<float> p2 = m.predict(std::span<const std::uint8_t>(img2));
  REQUIRE(pb.size() == 6);
  for (int k = 0; k < 3; ++k) {
    CHECK(pb[std::size_t(k)] == doctest::Approx(p[std::size_t(k)]));
    CHECK(pb[std::size_t(3 + k)] == doctest::Approx(p2[std::size_t(k)]));
  }
  CHECK(error_of([&] { m.predict(std::span<const std::uint8_t>(img.data(), 10)); }).find("8x8x3") != std::string::npos);

  // Class names stored in the checkpoint win over the registered ones.
  CheckpointData d;
  d.metadata["model/class_names"] = "x\ny\nz";
  save_checkpoint(path, net, nullptr, d);
  CHECK(Model::load(path).class_names() == std::vector<std::string>{"x", "y", "z"});
}

TEST_CASE("model: the paper network is built in, with the Galaxy10 class names") {
  auto net = std::make_unique<PaperNet>(1);
  const std::string path = scratch("paper.h5");
  save_checkpoint(path, *net, nullptr);
  const Model m = Model::load(path);
  CHECK(m.input_height() == 128);
  CHECK(m.input_channels() == 3);
  REQUIRE(m.class_names().size() == 10);
  CHECK(m.class_names()[2] == data::galaxy10_class_names[2]);
  const auto p = m.predict(std::span<const std::uint8_t>(random_image(128 * 128 * 3, 3)));
  double sum = 0;
  for (float v : p) sum += v;
  CHECK(sum == doctest::Approx(1.0));
}

TEST_CASE("model: PaperNet and ImprovedNet are registered by their own headers, with the Galaxy10 class names") {
  const auto known = Model::registered_architectures();
  for (const std::string& arch : {PaperNet::architecture(), ImprovedNet::architecture()}) {
    INFO(arch);
    CHECK(std::find(known.begin(), known.end(), arch) != known.end());
  }
  auto net = std::make_unique<ImprovedNet>(2);
  const std::string path = scratch("improved.h5");
  save_checkpoint(path, *net, nullptr);
  const Model m = Model::load(path);
  CHECK(m.architecture() == ImprovedNet::architecture());
  REQUIRE(m.class_names().size() == 10);
  for (std::size_t i = 0; i < 10; ++i) CHECK(m.class_names()[i] == data::galaxy10_class_names[i]);
}

TEST_CASE("model: an unregistered architecture and a bad file are clear errors") {
  UnregisteredNet net(1);
  const std::string path = scratch("unregistered.h5");
  save_checkpoint(path, net, nullptr);
  const std::string msg = error_of([&] { Model::load(path); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find(UnregisteredNet::architecture()) != std::string::npos);
  CHECK(msg.find("register_architecture") != std::string::npos);
  CHECK(error_of([&] { Model::load(scratch("none.h5")); }).find("no such file") != std::string::npos);
}

TEST_CASE("model: several threads predicting on one model get the single-threaded answers") {
  Model::register_architecture<TinyNet>();
  TinyNet net(9);
  const std::string path = scratch("threads.h5");
  save_checkpoint(path, net, nullptr);
  const Model m = Model::load(path);
  constexpr int images = 12, threads = 4, rounds = 20;
  std::vector<std::vector<std::uint8_t>> inputs;
  std::vector<std::vector<float>> expected;
  for (int i = 0; i < images; ++i) {
    inputs.push_back(random_image(8 * 8 * 3, 100 + std::uint64_t(i)));
    expected.push_back(m.predict(std::span<const std::uint8_t>(inputs.back())));
  }
  std::vector<int> mismatches(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r)
        for (int i = 0; i < images; ++i) {
          const int k = (i + t * 5 + r) % images;  // threads work on different images at the same time
          const auto p = m.predict(std::span<const std::uint8_t>(inputs[std::size_t(k)]));
          for (std::size_t c = 0; c < p.size(); ++c)
            if (std::abs(p[c] - expected[std::size_t(k)][c]) > 1e-6f) ++mismatches[std::size_t(t)];
        }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) CHECK(mismatches[std::size_t(t)] == 0);
  CHECK(m.replicas() >= 1);
  CHECK(m.replicas() <= std::size_t(threads) + 1);
}

TEST_CASE("prepare_image: centre crop to a square, central fraction, area resize, grey to RGB") {
  // 8 x 4 RGB image: the central 4 x 4 square is columns 2..5.
  std::vector<std::uint8_t> img(8 * 4 * 3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x)
      for (int c = 0; c < 3; ++c) img[std::size_t((y * 8 + x) * 3 + c)] = std::uint8_t(x * 10 + c);
  const auto same = prepare_image(img.data(), 8, 4, 3, 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) CHECK(same[std::size_t((y * 4 + x) * 3 + 1)] == (x + 2) * 10 + 1);
  // Halving averages 2 x 2 blocks: columns (2,3) -> 25, (4,5) -> 45.
  const auto half = prepare_image(img.data(), 8, 4, 3, 2);
  CHECK(half[0] == 25);
  CHECK(half[3] == 45);
  // Central half of the square: columns 3..4, kept at 2 x 2.
  const auto central = prepare_image(img.data(), 8, 4, 3, 2, 0.5);
  CHECK(central[0] == 30);
  CHECK(central[3] == 40);
  // Grey input becomes R = G = B; a constant image stays constant when enlarged.
  const std::vector<std::uint8_t> grey(5 * 5, 77);
  const auto big = prepare_image(grey.data(), 5, 5, 1, 16);
  REQUIRE(big.size() == 16 * 16 * 3);
  CHECK(std::all_of(big.begin(), big.end(), [](std::uint8_t v) { return v == 77; }));
  CHECK_THROWS_AS(prepare_image(grey.data(), 5, 5, 1, 16, 0.0), Error);
}
