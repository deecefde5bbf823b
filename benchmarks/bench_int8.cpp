// int8 convolution benchmarks (kernels/lowp/): each int8 path this CPU runs on the paper's four
// conv shapes, at batch 1 and 64, beside hubble's fp32 Tuned kernel on the same shape, and the
// peak of each family's multiply-add instruction measured with independent chains:
//   PeakInt8/tdpbusd        amx_int8      16,384 u8 x s8 multiply-adds per instruction (4 tiles)
//   PeakInt8/vpdpbusd_zmm   avx512_vnni   64 u8 x s8 multiply-adds per instruction
//   PeakInt8/vpdpbusd_ymm   avx_vnni      32
//   PeakInt8/vpmaddwd_ymm   avx2          16 (+ the VPADDD that accumulates them)
// int8 GOP/s counts 2 operations per multiply-add, as GFLOP/s does for fp32.
//
// Passes (every paper conv is followed by ReLU and MaxPool<2>):
//   Int8/<layer>/<path>/relu/batch:<n>        u8 -> conv -> ReLU -> u8 codes (conv_u8_to_u8)
//   Int8/<layer>/<path>/relu+pool/batch:<n>   the same with MaxPool<2> on the codes, one pass
//   Fp32/<layer>/tuned/relu/batch:<n>         kernels::Tuned::forward_relu on the same shape
// Counters: img/s, GOP/s (GFLOP/s for fp32; both credited with the convolution's 2*K*f per
// output pixel, also for the pooled pass) and %peak: the rate over the family's own peak
// (FMA peak for fp32; none for the generic path), with the peak measured once at start-up over
// all threads (HUBBLE_INT8_PEAK_GOPS=<path>:<GOP/s>,... overrides it, e.g. with quiet-machine
// values).
//
// Before anything is timed, every path's int32 sums are compared with the generic path's on
// each shape ("validate int8 <path> <layer>: ok"), and Tuned with kernels::Naive; a wrong one
// stops the program.
//
//   bench_int8                                          # everything
//   bench_int8 --benchmark_filter='conv2/.*/batch:64'   # one layer at batch 64
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "hubble/kernels/lowp/int8_conv.hpp"

namespace {

using namespace hubble::kernels;
using namespace hubble::kernels::lowp;

// ---- peak probes: twelve independent chains of one instruction, nothing else in the loop --------
constexpr int chains = 12;

#if HUBBLE_INT8_X86
HUBBLE_TARGET("avx512f,avx512bw,avx512vl,avx512vnni")
double vpdpbusd_zmm_chains(long iterations) {
  __m512i acc[chains];
  for (auto& a : acc) a = _mm512_setzero_si512();
  __m512i x = _mm512_set1_epi32(0x01010101), y = _mm512_set1_epi32(0x01010101);
  __asm__ volatile("" : "+v"(x), "+v"(y));  // unknown to the compiler: nothing is folded
  for (long i = 0; i < iterations; ++i)
    for (auto& a : acc) a = _mm512_dpbusd_epi32(a, x, y);
  __m512i sum = acc[0];
  for (int j = 1; j < chains; ++j) sum = _mm512_add_epi32(sum, acc[j]);
  alignas(64) int lanes[16];
  _mm512_storeu_si512(lanes, sum);
  volatile int sink = lanes[0];
  (void)sink;
  return 2.0 * 64 * chains * double(iterations);
}

// Four independent accumulator tiles, each TDPBUSD 16 x 16 x 64 multiply-adds.
HUBBLE_TARGET("amx-tile,amx-int8")
double tdpbusd_tiles(long iterations) {
  bench::prepare_probe_tiles();
  for (long i = 0; i < iterations; ++i) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  return 2.0 * 16 * 16 * 64 * 4 * double(iterations);
}

HUBBLE_TARGET("avx2,fma,avxvnni")
double vpdpbusd_ymm_chains(long iterations) {
  __m256i acc[chains];
  for (auto& a : acc) a = _mm256_setzero_si256();
  __m256i x = _mm256_set1_epi32(0x01010101), y = _mm256_set1_epi32(0x01010101);
  __asm__ volatile("" : "+x"(x), "+x"(y));
  for (long i = 0; i < iterations; ++i)
    for (auto& a : acc) a = _mm256_dpbusd_avx_epi32(a, x, y);
  __m256i sum = acc[0];
  for (int j = 1; j < chains; ++j) sum = _mm256_add_epi32(sum, acc[j]);
  volatile int sink = _mm256_extract_epi32(sum, 0);
  (void)sink;
  return 2.0 * 32 * chains * double(iterations);
}

HUBBLE_TARGET("avx2,fma")
double vpmaddwd_ymm_chains(long iterations) {
  __m256i acc[chains];
  for (auto& a : acc) a = _mm256_setzero_si256();
  __m256i x = _mm256_set1_epi32(0x00010001), y = _mm256_set1_epi32(0x00010001);
  __asm__ volatile("" : "+x"(x), "+x"(y));
  for (long i = 0; i < iterations; ++i)
    for (auto& a : acc) a = _mm256_add_epi32(a, _mm256_madd_epi16(x, y));
  __m256i sum = acc[0];
  for (int j = 1; j < chains; ++j) sum = _mm256_add_epi32(sum, acc[j]);
  volatile int sink = _mm256_extract_epi32(sum, 0);
  (void)sink;
  return 2.0 * 16 * chains * double(iterations);
}
#endif

// The probe of a path's instruction (ops per call), or nullptr (generic).
using Probe = double (*)(long);
Probe probe_of(Int8Path p) {
#if HUBBLE_INT8_X86
  switch (p) {
    case Int8Path::amx_int8:
      return tdpbusd_tiles;
    case Int8Path::avx512_vnni:
      return vpdpbusd_zmm_chains;
    case Int8Path::avx_vnni:
      return vpdpbusd_ymm_chains;
    case Int8Path::avx2:
      return vpmaddwd_ymm_chains;
    case Int8Path::generic:
      return nullptr;
  }
#endif
  (void)p;
  return nullptr;
}
const char* probe_name(Int8Path p) {
  switch (p) {
    case Int8Path::amx_int8:
      return "tdpbusd";
    case Int8Path::avx512_vnni:
      return "vpdpbusd_zmm";
    case Int8Path::avx_vnni:
      return "vpdpbusd_ymm";
    case Int8Path::avx2:
      return "vpmaddwd_ymm";
    case Int8Path::generic:
      return "none";
  }
  return "?";
}

// Peak GOP/s of `nthreads` threads running the probe (best of three, ~seconds each).
double measure_peak_gops(Probe probe, int nthreads, double seconds = 0.2) {
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    long iters = 1 << 16;
    double ops = 0, elapsed = 0;
    while (true) {
      ops = 0;
      const double t0 = bench::now();
#pragma omp parallel num_threads(nthreads) reduction(+ : ops)
      ops += probe(iters);
      elapsed = bench::now() - t0;
      if (elapsed > seconds) break;
      iters *= 2;
    }
    best = std::max(best, ops / elapsed * 1e-9);
  }
  return best;
}

// Each path's peak (0 for generic), from HUBBLE_INT8_PEAK_GOPS or measured.
std::map<Int8Path, double> peaks;
double fp32_peak = 0;

void measure_peaks(int nthreads) {
  std::map<std::string, double> given;
  if (const char* env = std::getenv("HUBBLE_INT8_PEAK_GOPS")) {  // "avx512_vnni:1000,avx2:300"
    std::string s = env;
    for (std::size_t at = 0; at < s.size();) {
      const std::size_t end = std::min(s.find(',', at), s.size()), colon = s.find(':', at);
      if (colon < end) given[s.substr(at, colon - at)] = std::atof(s.substr(colon + 1, end - colon - 1).c_str());
      at = end + 1;
    }
  }
  for (Int8Path p : all_int8_paths) {
    if (!available(p)) continue;
    const Probe probe = probe_of(p);
    const auto it = given.find(name_of(p));
    peaks[p] = it != given.end() ? it->second : probe ? measure_peak_gops(probe, nthreads) : 0.0;
    std::fprintf(stderr, "int8 peak %-12s (%s), %d thread(s): %.1f GOP/s%s\n", name_of(p), probe_name(p), nthreads,
                 peaks[p], it != given.end() ? " (given)" : "");
  }
  fp32_peak = bench::measure_peak_gflops(nthreads);
  std::fprintf(stderr, "fp32 FMA peak, %d thread(s): %.1f GFLOP/s\n", nthreads, fp32_peak);
}

// ---- operands -------------------------------------------------------------------------------------
// The fp32 operands of bench::ConvData, quantised: x to u8 from its range, w per output channel.
struct Int8Data {
  bench::ConvData fp;
  U8Quant xq, yq;
  std::vector<std::uint8_t> x, y, pooled;
  PerChannelS8 wq;
  Int8Data(const ConvGeometry& g, std::uint64_t seed) : fp(g, seed) {
    xq = choose_u8_quant(fp.x.data(), fp.x.size());
    x.resize(fp.x.size());
    quantize_u8(fp.x.data(), fp.x.size(), xq, x.data());
    wq = quantize_per_channel(fp.w.data(), int(g.patch()), g.f);
    yq = U8Quant{0.05f, 0};  // ReLU outputs: real 0 is code 0
    y.resize(g.out_size());
    pooled.resize(std::size_t(g.n) * (g.oh / 2) * (g.ow / 2) * g.f);
  }
};

// Every runnable path's int32 sums equal the generic path's on each paper shape (batch 2).
void validate_int8_or_die() {
  for (const auto& L : bench::paper_layers) {
    Int8Data d(L.geometry(2), 42);
    const ConvGeometry& g = d.fp.g;
    std::vector<std::int32_t> want(g.out_size()), got(g.out_size());
    conv_u8_to_i32(g, d.x.data(), d.xq, prepare_int8_conv(g.k, g.c, d.wq, d.fp.b.data(), Int8Path::generic),
                   want.data());
    for (Int8Path p : all_int8_paths) {
      if (!available(p)) {
        std::fprintf(
            stderr, "validate int8 %-12s %s: skipped (%s)\n", name_of(p), L.name,
            hubble::cpu::features().hidden_by_limit(isa_of(p)) ? "HUBBLE_CPU_LIMIT hides it" : "this CPU lacks it");
        continue;
      }
      std::fill(got.begin(), got.end(), -1);
      conv_u8_to_i32(g, d.x.data(), d.xq, prepare_int8_conv(g.k, g.c, d.wq, d.fp.b.data(), p), got.data());
      const bool ok = got == want;
      std::fprintf(stderr, "validate int8 %-12s %s: int32 sums %s\n", name_of(p), L.name,
                   ok ? "equal generic's: ok" : "differ: WRONG");
      if (!ok) {
        std::fprintf(stderr, "int8 path %s gives wrong results on %s; refusing to time it\n", name_of(p), L.name);
        std::exit(1);
      }
    }
  }
  std::fprintf(stderr, "validate int8: every path this process runs equals generic on the paper shapes: ok\n");
}

// ---- the timed calls --------------------------------------------------------------------------------
template <class Run>
void time_calls(benchmark::State& st, const ConvGeometry& g, double peak, Run&& run) {
  run();  // warm-up: scratch allocation, first touch
  const double ops = g.forward_flops();
  std::vector<double> rate;
  for (auto _ : st) {
    const double t0 = bench::now();
    run();
    const double t = bench::now() - t0;
    st.SetIterationTime(t);
    rate.push_back(ops / t * 1e-9);
  }
  const double r = bench::median(rate);  // a few calls slowed by the shared host do not move it
  st.counters["GOP/s"] = r;
  st.counters["img/s"] = double(g.n) * r * 1e9 / ops;
  st.counters["%peak"] = peak > 0 ? 100.0 * r / peak : 0.0;
}

void int8_benchmark(benchmark::State& st, int layer, Int8Path path, bool pool, int batch) {
  Int8Data d(bench::paper_layers[layer].geometry(batch), 7);
  const ConvGeometry& g = d.fp.g;
  const Int8ConvWeights W = prepare_int8_conv(g.k, g.c, d.wq, d.fp.b.data(), path);  // once, as inference does
  time_calls(st, g, peaks[path], [&] {
    if (pool) conv_relu_maxpool_u8(g, d.x.data(), d.xq, W, 2, d.yq, d.pooled.data());
    else conv_u8_to_u8(g, d.x.data(), d.xq, W, true, d.yq, d.y.data());
  });
}

void fp32_benchmark(benchmark::State& st, int layer, int batch) {
  bench::ConvData d(bench::paper_layers[layer].geometry(batch), 7);
  Workspace<float> ws;
  time_calls(st, d.g, fp32_peak, [&] { Tuned::forward_relu(d.g, d.x.data(), d.w.data(), d.b.data(), d.y.data(), ws); });
}

void peak_benchmark(benchmark::State& st, Probe probe, int nthreads) {
  double ops = 0, total = 0;
  for (auto _ : st) {
    const double t0 = bench::now();
    double o = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : o)
    o += probe(1 << 18);
    const double t = bench::now() - t0;
    st.SetIterationTime(t);
    total += t;
    ops += o;
  }
  st.counters["GOP/s"] = ops / total * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const int all = bench::threads();
  std::fprintf(stderr, "%s\nint8 path chosen: %s\n", hubble::cpu::describe().c_str(), chosen_int8_path());
  validate_int8_or_die();
  bench::validate_or_die<Tuned>();
  measure_peaks(all);
  for (Int8Path p : all_int8_paths)
    if (available(p) && probe_of(p))
      benchmark::RegisterBenchmark(
          (std::string("PeakInt8/") + probe_name(p) + "/threads:" + std::to_string(all)).c_str(),
          [p, all](benchmark::State& st) { peak_benchmark(st, probe_of(p), all); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  for (int layer = 0; layer < 4; ++layer)
    for (int batch : {1, 64}) {
      const std::string shape = std::string(bench::paper_layers[layer].name) + "/";
      const std::string tail = "/batch:" + std::to_string(batch);
      for (Int8Path p : all_int8_paths) {
        if (!available(p)) continue;
        for (bool pool : {false, true})
          benchmark::RegisterBenchmark(("Int8/" + shape + name_of(p) + (pool ? "/relu+pool" : "/relu") + tail).c_str(),
                                       [=](benchmark::State& st) { int8_benchmark(st, layer, p, pool, batch); })
              ->UseManualTime()
              ->Unit(benchmark::kMillisecond);
      }
      benchmark::RegisterBenchmark(("Fp32/" + shape + "tuned/relu" + tail).c_str(),
                                   [=](benchmark::State& st) { fp32_benchmark(st, layer, batch); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
