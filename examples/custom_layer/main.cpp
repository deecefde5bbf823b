// custom_layer: new layer types defined outside hubble (layers.hpp), composed into a Sequential
// with hubble's own layers, trained for a few steps, saved and reloaded, and proven right with
// the public gradient checker. Exits non-zero when any check fails (the test custom_layer.run).
#include <hubble/hubble.hpp>
#include <hubble/io/checkpoint.hpp>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <vector>

#include "layers.hpp"

using namespace hubble;

// 16x16x3 -> conv 14x14x8 -> scale -> leaky -> avgpool 7x7x8 -> conv 5x5x8 -> leaky ->
// avgpool(3, stride 2: overlapping windows) 2x2x8 -> 32 -> 4 classes.
template <class T>
using SmallNet = Network<T, Input<16, 16, 3>, Conv2D<8, 3>, my::ChannelScale, my::LeakyReLU, my::AvgPool<2>,
                         Conv2D<8, 3>, my::LeakyReLU, my::AvgPool<3, 2>, Flatten, Dense<4>, Softmax>;
static_assert(std::is_same_v<SmallNet<float>::layer_type<6>::out_shape, Shape<2, 2, 8>>);
static_assert(SmallNet<float>::parameter_count == (27 * 8 + 8) + 16 + (72 * 8 + 8) + (32 * 4 + 4));

namespace {

int failures = 0;
void expect(bool ok, const std::string& what) {
  std::cout << (ok ? "  ok    " : "  FAIL  ") << what << "\n";
  failures += !ok;
}

template <class T>
Tensor<T> random_tensor(int n, int h, int w, int c, Rng& rng) {
  Tensor<T> t(n, h, w, c);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = T(rng.uniform(-1, 1));
  return t;
}

// Checks one bound layer (in double) with hubble::check_layer_gradients and reports it.
template <class Layer>
void check_layer(const char* what, int batch = 2) {
  Rng rng(11);
  Layer layer;
  layer.initialize(rng, Init::glorot_uniform);
  // Move ChannelScale away from its identity start so gamma and beta matter.
  layer.for_each_parameter([&](const char*, double* v, double*, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) v[i] += rng.uniform(-0.5, 0.5);
  });
  using S = typename Layer::in_shape;
  GradientCheckOptions opt;
  opt.max_entries = 0;  // every entry: these layers are small
  const GradientCheckResult r = check_layer_gradients(layer, random_tensor<double>(batch, S::h, S::w, S::c, rng), opt);
  std::cout << "  " << what << ": " << r.entries_checked << " entries, worst relative error " << r.max_relative_error
            << " at " << r.worst << "\n";
  expect(r.passed(1e-6), std::string("gradient check of ") + what);
}

}  // namespace

int main() {
  try {
    std::cout << "1. the network, with three layer types hubble does not have\n";
    SmallNet<float>::summary(std::cout);

    std::cout << "2. gradient checks of each new layer (double, every entry)\n";
    check_layer<my::LeakyReLU::bind<Shape<5, 5, 3>, double>>("LeakyReLU");
    check_layer<my::AvgPool<2>::bind<Shape<6, 7, 3>, double>>("AvgPool<2> (drops the odd column)");
    check_layer<my::AvgPool<3, 2>::bind<Shape<7, 7, 2>, double>>("AvgPool<3,2> (overlapping windows)");
    check_layer<my::ChannelScale::bind<Shape<4, 4, 5>, double>>("ChannelScale");

    std::cout << "3. gradient check of the whole network with the loss (double, every parameter)\n";
    {
      Rng rng(5);
      SmallNet<double> net(3);
      for (auto& p : net.parameters())  // random biases and scales: no pre-activation exactly at 0
        if (p.name.ends_with("bias") || p.name.ends_with("beta"))
          for (std::size_t i = 0; i < p.size; ++i) p.value[i] = rng.uniform(-0.3, 0.3);
      const std::vector<int> labels = {0, 3, 1};
      // The two averaging layers divide the gradients by 4 and 9, so some are ~1e-5, while the
      // loss (~1.4) is only known to ~1e-16 relative: with h = 1e-6 that rounding alone is
      // ~1e-10 absolute, ~1e-5 relative. h = 1e-5 and a 1e-5 tolerance suit this scale; a wrong
      // backward still gives errors near 1.
      GradientCheckOptions opt;
      opt.max_entries = 0;
      opt.step = 1e-5;
      const GradientCheckResult r = check_network_gradients(net, random_tensor<double>(3, 16, 16, 3, rng), labels, opt);
      std::cout << "  " << r.entries_checked << " parameters, worst relative error " << r.max_relative_error
                << " (absolute " << r.max_absolute_error << ") at " << r.worst << "\n";
      expect(r.passed(1e-5) && r.entries_checked == SmallNet<double>::parameter_count, "network gradient check");
    }

    std::cout << "4. training: 60 Adam steps on a batch whose class is the position of a bright spot\n";
    SmallNet<float> net(1);
    Tensor<float> x(16, 16, 16, 3);
    std::vector<int> labels(16);
    Rng rng(2);
    for (int n = 0; n < 16; ++n) {
      labels[n] = n % 4;
      const double cy = labels[n] < 2 ? 4 : 11, cx = labels[n] % 2 ? 11 : 4;
      for (int y = 0; y < 16; ++y)
        for (int xx = 0; xx < 16; ++xx)
          for (int c = 0; c < 3; ++c)
            x(n, y, xx, c) = float(0.1 * rng.uniform() + std::exp(-((y - cy) * (y - cy) + (xx - cx) * (xx - cx)) / 6.0));
    }
    Adam<float> adam({.lr = 3e-3});
    const BatchStats first = net.evaluate(x, labels);
    for (int step = 0; step < 60; ++step) net.train_step(x, labels, adam);
    const BatchStats last = net.evaluate(x, labels);
    std::cout << "  loss " << first.loss << " -> " << last.loss << ", accuracy " << last.accuracy << "\n";
    expect(last.loss < 0.5 * first.loss, "the loss falls by more than half");

    std::cout << "5. a checkpoint of the network round-trips, custom layers included\n";
    const std::string path = (std::filesystem::temp_directory_path() / "hubble_custom_layer.h5").string();
    save_checkpoint(path, net, &adam);
    SmallNet<float> copy(99);  // other weights until loaded
    Adam<float> adam_copy({.lr = 3e-3});
    load_checkpoint(path, copy, &adam_copy);
    std::filesystem::remove(path);
    const float p0 = net.forward(x)[0], p1 = copy.forward(x)[0];
    std::cout << "  architecture: " << SmallNet<float>::architecture() << "\n";
    expect(p0 == p1 && adam_copy.steps == adam.steps, "the reloaded network predicts the same");

    std::cout << (failures ? "custom_layer: FAILED\n" : "custom_layer: all checks passed\n");
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "custom_layer: " << e.what() << "\n";
    return 1;
  }
}
