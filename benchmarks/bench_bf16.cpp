// The bf16 convolution (kernels/lowp/bf16_conv.hpp) on the paper's four conv shapes, beside
// hubble's fp32 kernels::Tuned on the same shapes, at batch 1 and 64, forward and
// forward+backward, with img/s, GFLOP/s and the percentage of the peak of its precision:
//   bf16   the peak of the instruction the chosen path runs, probed beside every timed call as
//          bench_conv_kernels does with FMA: TDPBF16PS on amx_bf16 (four independent C tiles,
//          16 x 16 x 32 multiply-adds each), VDPBF16PS on avx512_bf16 (twelve independent chains
//          of zmm VDPBF16PS, 16 lanes x 2 multiply-adds = 64 flops each), FMA on the other paths
//   fp32   the FMA peak (bench_common.hpp's probe)
// The flops credited are the convolution's, 2 per multiply-add: forward K*f*P*2, forward+backward
// adds dw and dx (conv1's dx is never needed, so it is not computed or credited); a third pass,
// forward+relu+pool, is Conv2D + ReLU + MaxPool<2> in one pass where the variant can.
//
//   bench_bf16                                       # everything
//   bench_bf16 --benchmark_filter='conv2/.*/batch:64'
//   bench_bf16 --bf16_path=avx2                      # force a lower path (also: HUBBLE_CPU_LIMIT=avx2)
//
// Before anything is timed, both kernels are checked against kernels::Naive on the paper shapes
// (bf16 within its derived bound, see tests/test_bf16_kernels.cpp; Tuned within 1e-4): a wrong
// one stops the program. Benchmark names: Bf16/<layer>/<bf16|tuned>/<pass>/batch:<n>/threads:<t>,
// and PeakBf16/threads:<t> (VDPBF16PS), PeakAmxBf16/threads:<t> (TDPBF16PS) for the probes alone.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "hubble/kernels/lowp/bf16_conv.hpp"

namespace {

using namespace hubble::kernels;
namespace lowp = hubble::kernels::lowp;

// ---- the VDPBF16PS peak probe -------------------------------------------------------------------
constexpr double bf16_chain_flops = 12.0 * 16 * 2 * 2;  // 12 chains x 16 lanes x 2 products x 2 flops

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bf16"))) double bf16_chains(long iterations) {
  if (iterations <= 0) return 0;
  long n = iterations;
  __asm__ volatile(
      "vpxord %%zmm0,%%zmm0,%%zmm0\n vpxord %%zmm1,%%zmm1,%%zmm1\n vpxord %%zmm2,%%zmm2,%%zmm2\n"
      "vpxord %%zmm3,%%zmm3,%%zmm3\n vpxord %%zmm4,%%zmm4,%%zmm4\n vpxord %%zmm5,%%zmm5,%%zmm5\n"
      "vpxord %%zmm6,%%zmm6,%%zmm6\n vpxord %%zmm7,%%zmm7,%%zmm7\n vpxord %%zmm8,%%zmm8,%%zmm8\n"
      "vpxord %%zmm9,%%zmm9,%%zmm9\n vpxord %%zmm10,%%zmm10,%%zmm10\n vpxord %%zmm11,%%zmm11,%%zmm11\n"
      "vpxord %%zmm14,%%zmm14,%%zmm14\n vpxord %%zmm15,%%zmm15,%%zmm15\n"
      "1:\n"
      "vdpbf16ps %%zmm14,%%zmm15,%%zmm0\n vdpbf16ps %%zmm14,%%zmm15,%%zmm1\n vdpbf16ps %%zmm14,%%zmm15,%%zmm2\n"
      "vdpbf16ps %%zmm14,%%zmm15,%%zmm3\n vdpbf16ps %%zmm14,%%zmm15,%%zmm4\n vdpbf16ps %%zmm14,%%zmm15,%%zmm5\n"
      "vdpbf16ps %%zmm14,%%zmm15,%%zmm6\n vdpbf16ps %%zmm14,%%zmm15,%%zmm7\n vdpbf16ps %%zmm14,%%zmm15,%%zmm8\n"
      "vdpbf16ps %%zmm14,%%zmm15,%%zmm9\n vdpbf16ps %%zmm14,%%zmm15,%%zmm10\n vdpbf16ps %%zmm14,%%zmm15,%%zmm11\n"
      "dec %0\n jnz 1b\n vzeroupper\n"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm14",
        "xmm15", "cc");
  return bf16_chain_flops * double(iterations);
}
#else
double bf16_chains(long) { return 0; }
#endif

// ---- the TDPBF16PS peak probe: four C tiles, each 16 x 16 fp32 += [16 x 32 bf16] x [32 x 16 bf16] --
constexpr double amx_bf16_flops = 4.0 * 16 * 16 * 32 * 2;

#if defined(__x86_64__)
__attribute__((target("amx-tile,amx-bf16"))) double amx_bf16_tiles(long iterations) {
  bench::prepare_probe_tiles();
  for (long i = 0; i < iterations; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  return amx_bf16_flops * double(iterations);
}
#else
double amx_bf16_tiles(long) { return 0; }
#endif

bool has_bf16_instructions() { return hubble::cpu::features().has(hubble::cpu::Isa::avx512_bf16); }
bool has_amx_bf16() { return lowp::bf16_path_runs(lowp::Bf16Path::amx_bf16); }

// The peak the bf16 kernel is measured against: the instruction of its path (TDPBF16PS, VDPBF16PS), else FMA.
struct Probe {
  double flops_per_iteration;
  double (*run)(long);
  const char* what;
};
Probe bf16_probe() {
  if (lowp::active_bf16_path() == lowp::Bf16Path::amx_bf16) return {amx_bf16_flops, amx_bf16_tiles, "TDPBF16PS peak"};
  if (lowp::active_bf16_path() == lowp::Bf16Path::avx512_bf16) return {bf16_chain_flops, bf16_chains, "VDPBF16PS peak"};
  return {bench::fma_chain_flops, bench::fma_chains, "FMA peak (no VDPBF16PS on this path)"};
}
Probe fp32_probe() { return {bench::fma_chain_flops, bench::fma_chains, "FMA peak"}; }

double probe_gflops(const Probe& p, int nthreads, long iterations) {
  const double t0 = bench::now();
  double flops = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : flops)
  flops += p.run(iterations);
  return flops / (bench::now() - t0) * 1e-9;
}

// ---- validation ---------------------------------------------------------------------------------
// lowp::Bf16 against Naive (fp32) on the paper shapes at batch 2: every element within
// (2^-7 + 2^-15 + 2 (terms + 2) 2^-24) * sum |products| (the bound tests/test_bf16_kernels.cpp
// derives), printed as the worst error / bound ratio (<= 1 is ok).
void validate_bf16_or_die() {
  for (const auto& L : bench::paper_layers) {
    bench::ConvData d(L.geometry(2), 42);
    const ConvGeometry& g = d.g;
    Workspace<float> ws;
    std::vector<float> y(g.out_size()), dw(d.w.size()), db(g.f), dx(g.in_size());
    lowp::Bf16::forward(g, d.x.data(), d.w.data(), d.b.data(), y.data(), ws);
    lowp::Bf16::backward(g, d.x.data(), d.w.data(), d.dy.data(), dw.data(), db.data(), dx.data(), ws);
    auto as_double = [](const std::vector<float>& v, bool absolute) {
      std::vector<double> out(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = absolute ? std::abs(double(v[i])) : double(v[i]);
      return out;
    };
    Workspace<double> wsd;
    auto reference = [&](bool absolute, std::vector<double>& ry, std::vector<double>& rdw, std::vector<double>& rdb,
                         std::vector<double>& rdx) {
      const auto x = as_double(d.x, absolute), w = as_double(d.w, absolute), b = as_double(d.b, absolute),
                 dy = as_double(d.dy, absolute);
      ry.assign(g.out_size(), 0);
      rdw.assign(d.w.size(), 0);
      rdb.assign(std::size_t(g.f), 0);
      rdx.assign(g.in_size(), 0);
      Naive::forward(g, x.data(), w.data(), b.data(), ry.data(), wsd);
      Naive::backward(g, x.data(), w.data(), dy.data(), rdw.data(), rdb.data(), rdx.data(), wsd);
    };
    std::vector<double> ry, rdw, rdb, rdx, sy, sdw, sdb, sdx;
    reference(false, ry, rdw, rdb, rdx);
    reference(true, sy, sdw, sdb, sdx);
    auto ratio = [](const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale,
                    double terms) {
      const double rel = std::ldexp(1.0, -7) + std::ldexp(1.0, -15) + 2 * (terms + 2) * std::ldexp(1.0, -24);
      double worst = 0;
      for (std::size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, std::abs(got[i] - want[i]) / (rel * scale[i] + 1e-300));
      return worst;
    };
    const double per_dx = double(g.f) * std::ceil(double(g.k) / g.stride) * std::ceil(double(g.k) / g.stride);
    const double ey = ratio(y, ry, sy, double(g.patch())), ew = ratio(dw, rdw, sdw, double(g.out_pixels())),
                 eb = ratio(db, rdb, sdb, double(g.out_pixels())), ex = ratio(dx, rdx, sdx, per_dx);
    const double worst = std::max({ey, ew, eb, ex});
    // Conv2D + ReLU + MaxPool<2> in one pass: the same sums, so exactly the pooled forward.
    std::vector<float> relu_y(g.out_size());
    lowp::Bf16::forward_relu(g, d.x.data(), d.w.data(), d.b.data(), relu_y.data(), ws);
    const bool pool_ok = lowp::Bf16::forward_relu_maxpool(g, d.x.data(), d.w.data(), d.b.data(), 2, d.pooled.data(),
                                                          d.argmax.data(), ws) &&
                         d.pooled == bench::relu_pool2(g, relu_y);
    std::fprintf(stderr, "validate %-6s %s: error / bound y %.2f dw %.2f db %.2f dx %.2f, relu+pool %s (path %s) %s\n",
                 lowp::Bf16::name, L.name, ey, ew, eb, ex, pool_ok ? "exact" : "DIFFERS", lowp::chosen_bf16_path(),
                 worst <= 1.0 && pool_ok ? "ok" : "WRONG");
    if (!(worst <= 1.0) || !pool_ok) {
      std::fprintf(stderr, "bf16 gives wrong results on %s; refusing to time it\n", L.name);
      std::exit(1);
    }
  }
}

// ---- the conv benchmarks ------------------------------------------------------------------------
// forward+relu+pool: Conv2D, ReLU and MaxPool<2> in one pass, as the paper network runs its
// layers (credited with the convolution's flops only); where Tuned cannot, it is not registered.
enum Pass { kForward, kForwardBackward, kForwardReluPool };
const char* pass_name[] = {"forward", "forward+backward", "forward+relu+pool"};

template <class V>
void conv_benchmark(benchmark::State& st, int layer, Pass pass, int batch, int nthreads, const Probe& probe) {
  const int before = bench::threads();
  bench::set_threads(nthreads);
  bench::ConvData d(bench::paper_layers[layer].geometry(batch), 7);
  Workspace<float> ws;
  const bool need_dx = layer != 0;  // conv1's input gradient is never needed
  auto run = [&] {
    if (pass == kForwardReluPool) {
      V::forward_relu_maxpool(d.g, d.x.data(), d.w.data(), d.b.data(), 2, d.pooled.data(), d.argmax.data(), ws);
      return;
    }
    V::forward(d.g, d.x.data(), d.w.data(), d.b.data(), d.y.data(), ws);
    if (pass == kForwardBackward)
      V::backward(d.g, d.x.data(), d.w.data(), d.dy.data(), d.dw.data(), d.db.data(), need_dx ? d.dx.data() : nullptr,
                  ws);
  };
  run();  // warm-up: workspace allocation, weights packed
  const double flops = d.g.forward_flops() * (pass != kForwardBackward ? 1.0 : need_dx ? 3.0 : 2.0);
  const long probe_iters = std::max(1L, long(flops / 2 / nthreads / probe.flops_per_iteration));  // ~half the call
  std::vector<double> rate, ratio, peak;
  for (auto _ : st) {
    const double t0 = bench::now();
    run();
    const double t = bench::now() - t0;
    st.SetIterationTime(t);
    const double p = probe_gflops(probe, nthreads, probe_iters);
    rate.push_back(flops / t * 1e-9);
    peak.push_back(p);
    ratio.push_back(rate.back() / p);
  }
  st.counters["GFLOP/s"] = bench::median(rate);
  st.counters["%peak"] = 100.0 * bench::median(ratio);
  st.counters["peak GFLOP/s"] = bench::median(peak);
  st.counters["img/s"] = double(batch) * bench::median(rate) * 1e9 / flops;
  st.SetLabel(std::string("% of ") + probe.what);
  bench::set_threads(before);
}

template <class V>
void register_variant(const char* vname, const Probe& probe, int nthreads) {
  for (int layer = 0; layer < 4; ++layer)
    for (int pass : {kForward, kForwardBackward, kForwardReluPool})
      for (int batch : {1, 64}) {
        if (pass == kForwardReluPool) {  // only where the variant pools in the same pass
          Workspace<float> probe_ws;
          bench::ConvData d(bench::paper_layers[layer].geometry(batch), 1);
          if (!V::forward_relu_maxpool(d.g, d.x.data(), d.w.data(), d.b.data(), 2, d.pooled.data(), d.argmax.data(),
                                       probe_ws))
            continue;
        }
        const std::string name = std::string("Bf16/") + bench::paper_layers[layer].name + "/" + vname + "/" +
                                 pass_name[pass] + "/batch:" + std::to_string(batch) +
                                 "/threads:" + std::to_string(nthreads);
        benchmark::RegisterBenchmark(
            name.c_str(),
            [=](benchmark::State& st) { conv_benchmark<V>(st, layer, Pass(pass), batch, nthreads, probe); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      }
}

void peak_benchmark(benchmark::State& st, int nthreads, const Probe& probe, long iterations) {
  double gflops = 0;
  int runs = 0;
  for (auto _ : st) {
    const double t0 = bench::now();
    gflops += probe_gflops(probe, nthreads, iterations);
    st.SetIterationTime(bench::now() - t0);
    ++runs;
  }
  st.counters["GFLOP/s"] = gflops / std::max(runs, 1);
}

}  // namespace

int main(int argc, char** argv) {
  // --bf16_path=NAME forces a path (generic, avx2, avx512_bf16, amx_bf16); taken out before Google Benchmark reads the
  // rest.
  for (int i = 1; i < argc; ++i) {
    const char* prefix = "--bf16_path=";
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) != 0) continue;
    const std::string want = argv[i] + std::strlen(prefix);
    bool known = false;
    for (lowp::Bf16Path p : lowp::all_bf16_paths)
      if (want == lowp::name_of(p)) {
        try {
          lowp::force_bf16_path(p);
        } catch (const hubble::Error& e) {
          std::fprintf(stderr, "bench_bf16: %s\n", e.what());
          return 1;
        }
        known = true;
      }
    if (!known) {
      std::fprintf(stderr, "bench_bf16: unknown --bf16_path '%s' (generic, avx2, avx512_bf16, amx_bf16)\n",
                   want.c_str());
      return 1;
    }
    std::copy(argv + i + 1, argv + argc, argv + i);
    --argc;
    --i;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::fprintf(stderr, "CPU: %s\nbf16 path: %s\n", hubble::cpu::describe().c_str(), lowp::chosen_bf16_path());
  validate_bf16_or_die();
  bench::validate_or_die<Tuned>();
  const int all = bench::threads();
  if (has_bf16_instructions()) {
    for (int t = 1; t <= all; ++t) {
      double best = 0;
      for (int trial = 0; trial < 3; ++trial)
        best = std::max(best, probe_gflops({bf16_chain_flops, bf16_chains, ""}, t, 1 << 22));
      std::fprintf(stderr, "VDPBF16PS peak, %d thread(s): %.1f GFLOP/s\n", t, best);
      benchmark::RegisterBenchmark(("PeakBf16/threads:" + std::to_string(t)).c_str(),
                                   [t](benchmark::State& st) {
                                     peak_benchmark(st, t, {bf16_chain_flops, bf16_chains, ""}, 1 << 20);
                                   })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  } else {
    std::fprintf(stderr, "skipped: VDPBF16PS peak probe: this CPU lacks avx512_bf16 (or HUBBLE_CPU_LIMIT hides it)\n");
  }
  if (has_amx_bf16()) {
    for (int t = 1; t <= all; ++t)
      benchmark::RegisterBenchmark(("PeakAmxBf16/threads:" + std::to_string(t)).c_str(),
                                   [t](benchmark::State& st) {
                                     peak_benchmark(st, t, {amx_bf16_flops, amx_bf16_tiles, ""}, 1 << 16);
                                   })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  } else {
    std::fprintf(stderr, "skipped: TDPBF16PS peak probe: %s\n",
                 lowp::bf16_path_unavailable(lowp::Bf16Path::amx_bf16).c_str());
  }
  register_variant<lowp::Bf16>("bf16", bf16_probe(), all);
  register_variant<Tuned>("tuned", fp32_probe(), all);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
