// Per-layer convolution benchmarks: the paper's four conv shapes x every kernel variant x
// {forward, weight gradient (dw + db), input gradient (dx)}, with GFLOP/s and the percentage
// of the FMA peak measured by the probe (BM_PeakFma) at startup.
//
//   bench_conv_kernels                                   # everything (a few minutes)
//   bench_conv_kernels --benchmark_filter='conv2/.*/32'  # one layer at batch 32
//   bench_conv_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Every variant is checked against kernels::Naive on the paper shapes before anything is timed;
// a wrong variant stops the program with a message. Naive runs at batch 1 only (it is scalar).
// Benchmark names: Conv/<layer>/<variant>/<pass>/batch:<n>/threads:<t>.
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "bench_common.hpp"
#include "hubble/kernels/winograd.hpp"

namespace {

using namespace hubble::kernels;

std::map<int, double> g_peak;  // threads -> GFLOP/s

enum Pass { kForward, kWeights, kInput };
const char* pass_name[] = {"forward", "weights", "input"};

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
    }
  };
  run();  // warm-up: workspace allocation, first touch
  double total = 0;
  for (auto _ : st) {
    const double t0 = bench::now();
    run();
    const double t = bench::now() - t0;
    st.SetIterationTime(t);
    total += t;
  }
  const double flops = d.g.forward_flops();  // each pass costs the same multiply-adds
  const double gflops = flops * double(st.iterations()) / total * 1e-9;
  st.counters["GFLOP/s"] = gflops;
  st.counters["%peak"] = 100.0 * gflops / g_peak[nthreads];
  st.counters["img/s"] = double(batch) * double(st.iterations()) / total;
  bench::set_threads(before);
}

template <class V>
void register_variant(const char* vname, const std::vector<int>& batches, const std::vector<int>& thread_counts) {
  for (int layer = 0; layer < 4; ++layer)
    for (int pass = 0; pass < 3; ++pass)
      for (int batch : batches)
        for (int t : thread_counts) {
          if (layer == 0 && pass == kInput) continue;  // the first layer's dx is never needed
          if (batch == 1 && pass != kForward && std::string(vname) != "naive") continue;  // batch 1: inference only
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
  bench::validate_or_die<Im2colEigen>();
  bench::validate_or_die<PackedGemm>();
  bench::validate_or_die<ImplicitGemm>();
  bench::validate_or_die<Winograd>();
  bench::validate_or_die<Winograd4x4>();
  bench::validate_or_die<Tuned>();
  for (int t = 1; t <= all; ++t) {
    g_peak[t] = bench::measure_peak_gflops(t);
    std::fprintf(stderr, "FMA peak, %d thread(s): %.1f GFLOP/s\n", t, g_peak[t]);
  }
  for (int t = 1; t <= all; ++t)
    benchmark::RegisterBenchmark(("PeakFma/threads:" + std::to_string(t)).c_str(), [t](benchmark::State& st) { peak_benchmark(st, t); })
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  const std::vector<int> both = all > 1 ? std::vector<int>{1, all} : std::vector<int>{1};
  register_variant<Naive>("naive", {1}, {all});
  register_variant<Im2colEigen>("im2col+eigen", {1, 32, 64}, {all});
  register_variant<PackedGemm>("im2col+packed-gemm", {1, 32, 64}, {all});
  register_variant<ImplicitGemm>("implicit-gemm", {1, 32, 64}, both);
  register_variant<Winograd>("winograd", {1, 32, 64}, both);
  register_variant<Winograd4x4>("winograd-4x4", {1, 32, 64}, both);
  register_variant<Tuned>("tuned", {1, 32, 64}, {all});
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
