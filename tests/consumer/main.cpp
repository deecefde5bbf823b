// An embedding program that uses the whole installed library, built by tests/consumer/run.cmake
// with -Wall -Wextra -Wpedantic -Werror (g++ with and without -mavx2 -mfma, clang++ without), so
// a warning in any public header fails the build. It instantiates PaperNet's training step,
// ImprovedNet, hubble::Model, checkpoint I/O and every convolution variant, and checks results.
#include <hubble/hubble.hpp>
#include <hubble/improved_net.hpp>
#include <hubble/io/checkpoint.hpp>
#include <hubble/model.hpp>
#include <hubble/paper_net.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace hubble;

int failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) { std::cerr << "consumer: FAILED " << what << "\n"; ++failures; }
}

template <class T>
void fill(Tensor<T>& x, int salt) {
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(double((i * 7 + std::size_t(salt)) % 13) / 13.0);
}

// A small network on one convolution variant: a few training steps lower the loss, and its
// forward pass agrees with the reference variant's (same seed, same weights).
template <class T, class V>
void check_variant() {
  using Net = Network<T, Input<12, 12, 3>, Conv2D<8, 3, 1, V>, ReLU, MaxPool<2>, Conv2D<16, 3, 1, V>, ReLU, Flatten,
                      Dense<4>, Softmax>;
  using Ref = Network<T, Input<12, 12, 3>, Conv2D<8, 3, 1, kernels::Reference>, ReLU, MaxPool<2>,
                      Conv2D<16, 3, 1, kernels::Reference>, ReLU, Flatten, Dense<4>, Softmax>;
  Net net(7);
  Ref ref(7);
  Tensor<T> x(4, 12, 12, 3);
  fill(x, 1);
  const Tensor<T>& y = net.forward(x);
  const Tensor<T>& yr = ref.forward(x);
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(double(y[i]) - double(yr[i])));
  expect(worst < 1e-4, std::string(V::name) + ": forward matches the reference");
  const int labels[] = {0, 1, 2, 3};
  Adam<T> adam;
  const double first = net.train_step(x, labels, adam).loss;
  double last = first;
  for (int i = 0; i < 20; ++i) last = net.train_step(x, labels, adam).loss;
  expect(last < first, std::string(V::name) + ": training lowers the loss");
}

}  // namespace

int main() {
  try {
    // Every convolution variant, float and double (double takes the generic micro-kernels).
    kernels::for_each_variant([]<class V>() {
      check_variant<float, V>();
      check_variant<double, V>();
    });

    // PaperNet: one training step with dropout, and a checkpoint saved and loaded back.
    const std::string dir = (std::filesystem::temp_directory_path() / "hubble_consumer").string();
    std::filesystem::create_directories(dir);
    const std::string path = dir + "/paper_net.h5";
    PaperNet net(3);
    Tensor<float> x(2, 128, 128, 3);
    fill(x, 2);
    const int labels[] = {1, 7};
    Adam<float> adam;
    const double loss = net.train_step(x, labels, adam).loss;
    expect(std::isfinite(loss) && loss > 0, "PaperNet: a training step gives a finite loss");
    save_checkpoint(path, net, &adam);
    PaperNet loaded(99);
    Adam<float> loaded_adam;
    load_checkpoint(path, loaded, &loaded_adam);
    const auto a = net.parameters(), b = loaded.parameters();
    bool same = a.size() == b.size();
    for (std::size_t i = 0; same && i < a.size(); ++i)
      for (std::size_t j = 0; same && j < a[i].size; ++j) same = a[i].value[j] == b[i].value[j];
    expect(same, "checkpoint: loaded parameters equal the saved ones");

    // hubble::Model: the saved checkpoint classifies what the network computes.
    const Model model = Model::load(path);
    Tensor<float> one(1, 128, 128, 3);
    for (std::size_t i = 0; i < one.size(); ++i) one[i] = x[i];
    const std::vector<float> p = model.predict(std::span<const float>(one.data(), one.size()));
    const Tensor<float>& expected = loaded.forward(one);
    expect(p.size() == 10 && std::abs(p[3] - expected[3]) < 1e-5f, "Model: predict equals the network's forward");

    // ImprovedNet (batch normalisation, global average pooling): a training step.
    auto improved = std::make_unique<ImprovedNet>(5);
    Adam<float> improved_adam;
    const double improved_loss = improved->train_step(x, labels, improved_adam).loss;
    expect(std::isfinite(improved_loss) && improved_loss > 0, "ImprovedNet: a training step gives a finite loss");
    std::filesystem::remove_all(dir);
  } catch (const std::exception& e) {
    std::cerr << "consumer: " << e.what() << "\n";
    return 1;
  }
  if (failures == 0) std::cout << "consumer: every check passed\n";
  return failures == 0 ? 0 : 1;
}
