// What the D4 symmetry costs: D4Lift / D4Conv forward + backward (layers/d4_conv.hpp) beside
//   * conv2d-expanded:    the plain Conv2D with the same output channels (8 * Fields), i.e. the
//                         convolution the D4 layer runs; the difference is the expansion of the
//                         compact filters and the fold of the gradient over the group;
//   * conv2d-same-params: the plain Conv2D with the same parameter count (Fields filters; for these
//                         shapes the counts are equal), i.e. what the same parameters buy without
//                         the symmetry: 8 times fewer output channels, about 8 times less work.
// Shapes: a D4 version of the improved net's first layers at batch 32 (lift: 128x128x3 -> 62x62x8*8
// with 6x6 stride 2, sizes that keep the symmetry exact; conv2: 31x31x8*8 -> 29x29x8*8; conv3:
// 14x14x8*16 -> 12x12x8*16), kernels::Default. "Backward" includes dx except for the lift (the
// first layer of a network gets none).
// Counters: items_per_second (images/s), GFLOP/s of the convolution's multiply-adds (forward +
// weight gradient + input gradient, 2 flops each; the expansion is not credited), and %peak, the
// median over iterations of (GFLOP/s / the FMA probe run right after the call), as
// bench_conv_kernels.cpp does so a shared host moves both alike. As there, the flops credited are
// the direct convolution's, so a layer run by Winograd (3x3, stride 1) can pass 100%.
//
//   bench_d4                                   # everything
//   bench_d4 --benchmark_filter='conv2/'       # one layer
// At start-up each D4 layer is checked to give bit for bit the output of a Conv2D loaded with its
// expanded bank (what the timings compare against); a mismatch stops the program.
// Benchmark names: D4/<layer>/<d4|conv2d-expanded|conv2d-same-params>/batch:<n>/threads:<t>.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "hubble/hubble.hpp"

namespace {

using namespace hubble;

// The three layer pairs: D4 layer, plain Conv2D of 8 * Fields filters, plain Conv2D of Fields filters.
struct LiftShapes {
  static constexpr const char* name = "lift";
  static constexpr int K = 6;
  using In = Shape<128, 128, 3>;
  using D4 = D4Lift<8, 6, 2>::bind<In, float>;
  using Expanded = Conv2D<64, 6, 2>::bind<In, float>;
  using SameParams = Conv2D<8, 6, 2>::bind<In, float>;
  static constexpr bool input_gradient = false;
};
struct Conv2Shapes {
  static constexpr const char* name = "conv2";
  static constexpr int K = 3;
  using In = Shape<31, 31, 64>;
  using D4 = D4Conv<8, 3>::bind<In, float>;
  using Expanded = Conv2D<64, 3>::bind<In, float>;
  using SameParams = Conv2D<8, 3>::bind<In, float>;
  static constexpr bool input_gradient = true;
};
struct Conv3Shapes {
  static constexpr const char* name = "conv3";
  static constexpr int K = 3;
  using In = Shape<14, 14, 128>;
  using D4 = D4Conv<16, 3>::bind<In, float>;
  using Expanded = Conv2D<128, 3>::bind<In, float>;
  using SameParams = Conv2D<16, 3>::bind<In, float>;
  static constexpr bool input_gradient = true;
};
static_assert(LiftShapes::D4::parameter_count == LiftShapes::SameParams::parameter_count);
static_assert(Conv2Shapes::D4::parameter_count == Conv2Shapes::SameParams::parameter_count);
static_assert(Conv3Shapes::D4::parameter_count == Conv3Shapes::SameParams::parameter_count);

Tensor<float> random_tensor(int n, int h, int w, int c, std::uint64_t seed) {
  Tensor<float> t(n, h, w, c);
  Rng r(seed);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = float(r.uniform(-1, 1));
  return t;
}

template <class Layer>
Layer initialized() {
  Layer l;
  Rng r(3);
  l.initialize(r, Init::glorot_uniform);
  return l;
}

// Forward + backward of one layer on a batch, timed with the FMA probe after each call.
template <class Layer>
void layer_benchmark(benchmark::State& st, int kernel, int batch, bool input_gradient, int nthreads) {
  using In = typename Layer::in_shape;
  using Out = typename Layer::out_shape;
  const int before = bench::threads();
  bench::set_threads(nthreads);
  Layer layer = initialized<Layer>();
  const Tensor<float> x = random_tensor(batch, In::h, In::w, In::c, 1);
  const Tensor<float> dy = random_tensor(batch, Out::h, Out::w, Out::c, 2);
  Tensor<float> y, dx;
  auto run = [&] {
    layer.forward(x, y, Mode::train);
    layer.backward(x, y, dy, input_gradient ? &dx : nullptr);
  };
  run();  // warm-up: buffers, workspace, the D4 placement table
  // The convolution's multiply-adds: out pixels x patch x output channels, per pass.
  const double forward_flops = 2.0 * batch * Out::h * Out::w * Out::c * double(kernel) * kernel * In::c;
  const double flops = forward_flops * (input_gradient ? 3 : 2);
  const long probe_iters = std::max(1L, long(flops / 2 / nthreads / bench::fma_chain_flops));
  std::vector<double> rate, ratio;
  for (auto _ : st) {
    const double t0 = bench::now();
    run();
    const double t = bench::now() - t0;
    st.SetIterationTime(t);
    const double p0 = bench::now();
    double probe_flops = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : probe_flops)
    probe_flops += bench::fma_chains(probe_iters);
    const double probe_gflops = probe_flops / (bench::now() - p0) * 1e-9;
    rate.push_back(flops / t * 1e-9);
    ratio.push_back(rate.back() / probe_gflops);
  }
  st.SetItemsProcessed(std::int64_t(st.iterations()) * batch);
  st.counters["GFLOP/s"] = bench::median(rate);
  st.counters["%peak"] = 100.0 * bench::median(ratio);
  st.counters["params"] = double(Layer::parameter_count);
  bench::set_threads(before);
}

// Refuses to time a D4 layer that does not run exactly the Conv2D of its expanded bank.
template <class Shapes>
void validate_or_die() {
  using D4 = typename Shapes::D4;
  using Expanded = typename Shapes::Expanded;
  using In = typename Shapes::In;
  D4 d4 = initialized<D4>();
  Expanded plain;
  Tensor<float> y, y_plain;
  const Tensor<float> x = random_tensor(2, In::h, In::w, In::c, 5);
  d4.forward(x, y, Mode::eval);
  std::copy(d4.expanded().weights(), d4.expanded().weights() + Expanded::weight_count, plain.weights());
  std::fill(plain.biases(), plain.biases() + Expanded::out_shape::c, 0.0f);  // D4's initial biases are 0
  plain.forward(x, y_plain, Mode::eval);
  const bool same = y.size() == y_plain.size() && std::memcmp(y.data(), y_plain.data(), y.size() * sizeof(float)) == 0;
  std::fprintf(stderr, "validate %-6s %s: %s\n", Shapes::name, D4::spec().c_str(),
               same ? "ok (the expanded Conv2D, bit for bit)" : "WRONG");
  if (!same) std::exit(1);
}

template <class Shapes>
void register_shapes(int batch, int nthreads) {
  const std::string prefix = std::string("D4/") + Shapes::name + "/";
  const std::string suffix = "/batch:" + std::to_string(batch) + "/threads:" + std::to_string(nthreads);
  auto add = [&]<class Layer>(const char* what) {
    benchmark::RegisterBenchmark(
        (prefix + what + suffix).c_str(),
        [=](benchmark::State& st) { layer_benchmark<Layer>(st, Shapes::K, batch, Shapes::input_gradient, nthreads); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  };
  add.template operator()<typename Shapes::D4>("d4");
  add.template operator()<typename Shapes::Expanded>("conv2d-expanded");
  add.template operator()<typename Shapes::SameParams>("conv2d-same-params");
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  validate_or_die<LiftShapes>();
  validate_or_die<Conv2Shapes>();
  validate_or_die<Conv3Shapes>();
  const int all = bench::threads();
  std::fprintf(stderr, "FMA peak, %d thread(s): %.1f GFLOP/s\n", all, bench::measure_peak_gflops(all));
  register_shapes<LiftShapes>(32, all);
  register_shapes<Conv2Shapes>(32, all);
  register_shapes<Conv3Shapes>(32, all);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
