// Per-layer convolution benchmarks: the paper's four conv shapes x every kernel variant x
// {forward, weight gradient (dw + db), input gradient (dx)}, with GFLOP/s and the percentage
// of the FMA peak. The peak is measured side by side: after every timed call the FMA probe
// runs for about half as long, and %peak is the median over iterations of (the call's GFLOP/s
// / the probe's); GFLOP/s and img/s are medians over iterations too, so a few calls slowed by
// the shared host do not move them. The probe's median is reported as peak GFLOP/s;
// PeakFma/threads:N is the probe on its own.
//
//   bench_conv_kernels                                   # everything (a few minutes)
//   bench_conv_kernels --benchmark_filter='conv2/.*/32'  # one layer at batch 32
//   bench_conv_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Every variant of kernels/variants.hpp is checked against kernels::Naive on the paper shapes
// before anything is timed; a wrong variant stops the program with a message. Naive runs at
// batch 1 only (it is scalar).
// Benchmark names: Conv/<layer>/<variant>/<pass>/batch:<n>/threads:<t>.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "bench_common.hpp"
#include "hubble/kernels/variants.hpp"

namespace {

using namespace hubble::kernels;

// forward+relu+pool: Conv2D, ReLU and MaxPool<2> in one pass, as the network runs the paper's
// layers where the variant can (credited with the convolution's flops only).
enum Pass { kForward, kWeights, kInput, kForwardReluPool };
const char* pass_name[] = {"forward", "weights", "input", "forward+relu+pool"};

template <class V>
void conv_benchmark(benchmark::State& st, int layer, Pass pass, int batch, int nthreads) {
  const int before = bench::threads();
  bench::set_threads(nthreads);
  bench::ConvData d(bench::paper_layers[layer].geometry(batch), 7);
  Workspace<float> ws;
  auto run = [&] {
    switch (pass) {
      case kForward: V::forward(d.g, d.x.data(), d.w.data(), d.b.data(), d.y.data(), ws); break;
      case kWeights: V::backward(d.g, d.x.data(), d.w.data(), d.dy.data(), d.dw.data(), d.db.data(), (float*)nullptr, ws); break;
      case kInput: V::backward(d.g, d.x.data(), d.w.data(), d.dy.data(), (float*)nullptr, (float*)nullptr, d.dx.data(), ws); break;
      case kForwardReluPool:
        if constexpr (bench::fuses_pool<V>) V::forward_relu_maxpool(d.g, d.x.data(), d.w.data(), d.b.data(), 2, d.pooled.data(), d.argmax.data(), ws);
        break;
    }
  };
  run();  // warm-up: workspace allocation, first touch
  const double flops = d.g.forward_flops();  // each pass costs the same multiply-adds
  const long probe_iters = std::max(1L, long(flops / 2 / nthreads / bench::fma_chain_flops));  // ~half the call
  std::vector<double> rate, ratio, peak;  // per iteration: GFLOP/s, GFLOP/s / probe's, probe's
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
    peak.push_back(probe_gflops);
    ratio.push_back(rate.back() / probe_gflops);
  }
  st.counters["GFLOP/s"] = bench::median(rate);
  st.counters["%peak"] = 100.0 * bench::median(ratio);
  st.counters["peak GFLOP/s"] = bench::median(peak);
  st.counters["img/s"] = double(batch) * bench::median(rate) * 1e9 / flops;
  bench::set_threads(before);
}

template <class V>
void register_variant(const std::vector<int>& batches, const std::vector<int>& thread_counts) {
  const std::string vname = V::name;
  for (int layer = 0; layer < 4; ++layer)
    for (int pass = 0; pass < 4; ++pass)
      for (int batch : batches)
        for (int t : thread_counts) {
          if (layer == 0 && pass == kInput) continue;  // the first layer's dx is never needed
          if (pass == kForwardReluPool) {  // only where the variant pools in the same pass
            if constexpr (bench::fuses_pool<V>) {
              hubble::kernels::Workspace<float> probe;
              bench::ConvData d(bench::paper_layers[layer].geometry(batch), 1);
              if (!V::forward_relu_maxpool(d.g, d.x.data(), d.w.data(), d.b.data(), 2, d.pooled.data(), d.argmax.data(), probe)) continue;
            } else {
              continue;
            }
          }
          if (batch == 1 && (pass == kWeights || pass == kInput) && !std::is_same_v<V, Reference>) continue;  // batch 1: inference only
          const std::string name = std::string("Conv/") + bench::paper_layers[layer].name + "/" + vname + "/" +
                                   pass_name[pass] + "/batch:" + std::to_string(batch) + "/threads:" + std::to_string(t);
          benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { conv_benchmark<V>(st, layer, Pass(pass), batch, t); })
              ->UseManualTime()
              ->Unit(benchmark::kMillisecond);
        }
}

void peak_benchmark(benchmark::State& st, int nthreads) {
  double flops = 0, total = 0;
  for (auto _ : st) {
    const double t0 = bench::now();
    double f = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : f)
    f += bench::fma_chains(1 << 22);
    const double t = bench::now() - t0;
    st.SetIterationTime(t);
    total += t;
    flops += f;
  }
  st.counters["GFLOP/s"] = flops / total * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const int all = bench::threads();
  for_each_variant<FastVariants>([]<class V>() { bench::validate_or_die<V>(); });
  for (int t = 1; t <= all; ++t) std::fprintf(stderr, "FMA peak, %d thread(s): %.1f GFLOP/s\n", t, bench::measure_peak_gflops(t));
  for (int t = 1; t <= all; ++t)
    benchmark::RegisterBenchmark(("PeakFma/threads:" + std::to_string(t)).c_str(), [t](benchmark::State& st) { peak_benchmark(st, t); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  const std::vector<int> both = all > 1 ? std::vector<int>{1, all} : std::vector<int>{1};
  for_each_variant<AllVariants>([&]<class V>() {
    // Thread scaling (1 and all threads) for the variants Tuned is made of.
    constexpr bool scaling = std::is_same_v<V, ImplicitGemm> || std::is_same_v<V, Winograd> || std::is_same_v<V, Winograd4x4>;
    register_variant<V>(std::is_same_v<V, Reference> ? std::vector<int>{1} : std::vector<int>{1, 32, 64},
                        scaling ? both : std::vector<int>{all});
  });
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
