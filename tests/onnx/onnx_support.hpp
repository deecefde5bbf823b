#pragma once
// Helpers shared by the ONNX tests (test_onnx.cpp: fp32 export and import; test_onnx_qdq.cpp: int8
// QDQ export): seeded weights and inputs, the real-image batch both compare on, files written for
// and read from ONNX Runtime's Node.js runner, and the agreement between two sets of probabilities.
#include <doctest/doctest.h>

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "hubble/data/augment.hpp"
#include "hubble/data/galaxy10.hpp"
#include "hubble/hubble.hpp"

namespace onnx_test {

using hubble::Tensor;

// Every parameter and buffer from a seeded stream, BatchNorm statistics included (variances stay positive).
template <class Net>
void randomize(Net& net, std::uint64_t seed) {
  hubble::Rng rng(seed);
  for (auto& p : net.parameters())
    for (std::size_t i = 0; i < p.size; ++i) p.value[i] = float(rng.uniform() * 2 - 1);
  for (auto& b : net.buffers())
    for (std::size_t i = 0; i < b.size; ++i) b.value[i] = float(0.5 + rng.uniform());
}

template <class Net>
Tensor<float> random_input(int n, std::uint64_t seed) {
  using S = typename Net::input_shape;
  Tensor<float> x(n, S::h, S::w, S::c);
  hubble::Rng rng(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(rng.uniform());
  return x;
}

inline ::onnx::ModelProto read_proto(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ::onnx::ModelProto m;
  REQUIRE(m.ParseFromIstream(&in));
  return m;
}

inline std::string shared(const std::string& file) { return std::string(HUBBLE_SHARED_DATA_DIR) + "/" + file; }
inline bool have(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }
inline std::string node_path() { return std::string(HUBBLE_SOURCE_DIR) + "/.deps/onnxruntime/node_modules"; }

inline std::vector<float> read_floats(const std::string& path, std::size_t count) {
  std::vector<float> v(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(float)));
  REQUIRE_MESSAGE(std::size_t(in.gcount()) == count * sizeof(float), path << ": expected " << count << " floats");
  return v;
}

// x (NHWC) written to `path` as raw NCHW float32, the layout ONNX models take; returns path.
inline std::string write_nchw(const Tensor<float>& x, const std::string& path) {
  const int n = x.batch(), h = x.height(), w = x.width(), c = x.channels();
  std::vector<float> nchw(x.size());
  for (int b = 0; b < n; ++b)
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < w; ++xx)
        for (int k = 0; k < c; ++k) nchw[((std::size_t(b) * c + k) * h + y) * w + xx] = x(b, y, xx, k);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(nchw.data()), std::streamsize(nchw.size() * 4));
  return path;
}

// The first 200 images of the training file as a float NHWC tensor (x / 255, the centre 128 x 128
// as in training); the holdout is kept for acceptance only.
inline Tensor<float> first_training_images() {
  hubble::data::LoadOptions o;
  o.limit = 200;
  const hubble::data::ImageSet set = hubble::data::load_galaxy10(shared("galaxy10_real_train.h5"), o);
  std::vector<int> all(std::size_t(set.size()));
  for (int i = 0; i < set.size(); ++i) all[std::size_t(i)] = i;
  Tensor<float> x;
  hubble::data::to_tensor(set, all, x);
  return x;
}

// How far two runtimes' probabilities (n x classes) are apart.
struct Agreement {
  int argmax_equal = 0, count = 0;
  double max_abs = 0, mean_abs = 0;
};
inline Agreement compare(const std::vector<float>& a, const std::vector<float>& b, int classes) {
  Agreement g;
  REQUIRE(a.size() == b.size());
  g.count = int(a.size()) / classes;
  for (int i = 0; i < g.count; ++i) {
    const float* x = a.data() + std::size_t(i) * classes;
    const float* y = b.data() + std::size_t(i) * classes;
    g.argmax_equal += std::max_element(x, x + classes) - x == std::max_element(y, y + classes) - y;
    for (int k = 0; k < classes; ++k) {
      g.max_abs = std::max(g.max_abs, double(std::abs(x[k] - y[k])));
      g.mean_abs += std::abs(x[k] - y[k]);
    }
  }
  g.mean_abs /= double(a.size());
  return g;
}

// hubble's int8 probabilities against ONNX Runtime's run of the same QDQ export ('optimised':
// QLinearConv, as benchmarks/ort_bench.js sets it up; 'literal': the graph as written). Bounds:
// argmax equal on >= 98% of the images, mean |dp| <= 1e-3, max <= 0.05. On a CPU without VNNI they
// hold only because ort_bench.js sets session.x64quantprecision: ONNX Runtime's default u8 x s8
// kernels there saturate 16-bit sums of product pairs (VPMADDUBSW), and on a Zen 3 its optimised
// run drifted from hubble's by up to 0.17 in a probability (the literal run: 2e-3).
inline void check_int8_agreement(const std::string& what, const std::string& how, const Agreement& g) {
  MESSAGE(what << ": QuantizedPlan vs ONNX Runtime (" << how << ") on " << g.count << " images: argmax equal "
               << g.argmax_equal << "/" << g.count << ", mean |dp| " << g.mean_abs << ", max |dp| " << g.max_abs);
  CHECK(g.argmax_equal >= 0.98 * g.count);
  CHECK(g.mean_abs <= 1e-3);
  CHECK(g.max_abs <= 0.05);
}

}  // namespace onnx_test
