#pragma once
// Shared by the benchmark programs: the FMA peak probe, the paper's conv shapes, the list of
// kernel variants, and a check of every variant against kernels::Naive before anything is timed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hubble/core/rng.hpp"
#include "hubble/kernels/amx.hpp"
#include "hubble/kernels/default.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace bench {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline int threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

// The median of per-iteration figures: a few calls slowed by the shared host do not move it.
#if HUBBLE_AMX
// The AMX peak probes' set-up (bench_int8, bench_bf16): four accumulator tiles (tmm0-3) zeroed,
// two A tiles (tmm4, 5) and two B tiles (tmm6, 7) loaded from zeros, whose values do not change
// the rate. The probe then repeats one tile instruction on (0,4,6) (1,4,7) (2,5,6) (3,5,7).
__attribute__((target("amx-tile"))) inline void prepare_probe_tiles() {
  hubble::kernels::amx::configure_tiles();
  alignas(64) static const unsigned char zeros[16 * 64] = {};
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, zeros, 64);
  _tile_loadd(5, zeros, 64);
  _tile_loadd(6, zeros, 64);
  _tile_loadd(7, zeros, 64);
}
#endif

inline double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// ---- peak probe ---------------------------------------------------------------------------------
// Twelve independent chains of 8-wide FMAs: enough in flight to cover the FMA latency on both
// pipes, nothing else in the loop. Returns the flops executed (fma_chain_flops per iteration).
#if defined(__AVX2__) && defined(__FMA__) && defined(__x86_64__)
inline constexpr double fma_chain_flops = 12.0 * 8 * 2;
#else
inline constexpr double fma_chain_flops = 16.0 * 2;
#endif
inline double fma_chains(long iterations) {
  if (iterations <= 0) return 0;
#if defined(__AVX2__) && defined(__FMA__) && defined(__x86_64__)
  long n = iterations;
  __asm__ volatile(
      "vxorps %%ymm0,%%ymm0,%%ymm0\n vxorps %%ymm1,%%ymm1,%%ymm1\n vxorps %%ymm2,%%ymm2,%%ymm2\n"
      "vxorps %%ymm3,%%ymm3,%%ymm3\n vxorps %%ymm4,%%ymm4,%%ymm4\n vxorps %%ymm5,%%ymm5,%%ymm5\n"
      "vxorps %%ymm6,%%ymm6,%%ymm6\n vxorps %%ymm7,%%ymm7,%%ymm7\n vxorps %%ymm8,%%ymm8,%%ymm8\n"
      "vxorps %%ymm9,%%ymm9,%%ymm9\n vxorps %%ymm10,%%ymm10,%%ymm10\n vxorps %%ymm11,%%ymm11,%%ymm11\n"
      "vxorps %%ymm14,%%ymm14,%%ymm14\n vxorps %%ymm15,%%ymm15,%%ymm15\n"
      "1:\n"
      "vfmadd231ps %%ymm14,%%ymm15,%%ymm0\n vfmadd231ps %%ymm14,%%ymm15,%%ymm1\n vfmadd231ps %%ymm14,%%ymm15,%%ymm2\n"
      "vfmadd231ps %%ymm14,%%ymm15,%%ymm3\n vfmadd231ps %%ymm14,%%ymm15,%%ymm4\n vfmadd231ps %%ymm14,%%ymm15,%%ymm5\n"
      "vfmadd231ps %%ymm14,%%ymm15,%%ymm6\n vfmadd231ps %%ymm14,%%ymm15,%%ymm7\n vfmadd231ps %%ymm14,%%ymm15,%%ymm8\n"
      "vfmadd231ps %%ymm14,%%ymm15,%%ymm9\n vfmadd231ps %%ymm14,%%ymm15,%%ymm10\n vfmadd231ps %%ymm14,%%ymm15,%%ymm11\n"
      "dec %0\n jnz 1b\n vzeroupper\n"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm14",
        "xmm15", "cc");
  return fma_chain_flops * double(iterations);
#else
  // Portable fallback: the compiler vectorises the 16 independent chains as it can.
  float acc[16] = {};
  volatile float m = 1.0f, a = 0.0f;
  const float mm = m, aa = a;
  for (long i = 0; i < iterations; ++i)
    for (int j = 0; j < 16; ++j) acc[j] = acc[j] * mm + aa;
  volatile float sink = acc[0];
  (void)sink;
  return fma_chain_flops * double(iterations);
#endif
}

// FP32 FMA peak of `nthreads` threads, GFLOP/s: each thread runs the chains for ~seconds; the
// best of three is kept. HUBBLE_PEAK_GFLOPS overrides the probe (e.g. with a value measured on
// a quiet machine).
inline double measure_peak_gflops(int nthreads, double seconds = 0.2) {
  if (const char* env = std::getenv("HUBBLE_PEAK_GFLOPS")) return std::atof(env) * nthreads / 2.0;
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    long iters = 1 << 20;
    double flops = 0, elapsed = 0;
    while (true) {
      flops = 0;
      const double t0 = now();
#pragma omp parallel num_threads(nthreads) reduction(+ : flops)
      flops += fma_chains(iters);
      elapsed = now() - t0;
      if (elapsed > seconds) break;
      iters *= 2;
    }
    best = std::max(best, flops / elapsed * 1e-9);
  }
  return best;
}

// ---- the paper's convolutions -------------------------------------------------------------------
struct Layer {
  const char* name;
  int h, w, c, k, s, f;
  hubble::kernels::ConvGeometry geometry(int n) const {
    hubble::kernels::ConvGeometry g;
    g.n = n;
    g.h = h;
    g.w = w;
    g.c = c;
    g.k = k;
    g.stride = s;
    g.f = f;
    g.oh = (h - k) / s + 1;
    g.ow = (w - k) / s + 1;
    return g;
  }
};
inline const Layer paper_layers[4] = {
    {"conv1", 128, 128, 3, 5, 2, 32},
    {"conv2", 31, 31, 32, 3, 1, 64},
    {"conv3", 14, 14, 64, 3, 1, 128},
    {"conv4", 6, 6, 128, 3, 1, 256},
};

// Random, reproducible operands for one convolution call.
struct ConvData {
  hubble::kernels::ConvGeometry g;
  std::vector<float> x, w, b, y, dy, dw, db, dx;
  std::vector<float> pooled;         // maxpool_2(relu(y)): the output of Conv2D+ReLU+MaxPool<2>
  std::vector<std::uint8_t> argmax;  // and its window positions
  ConvData(const hubble::kernels::ConvGeometry& geo, std::uint64_t seed) : g(geo) {
    hubble::Rng r(seed);
    auto fill = [&](std::vector<float>& v, std::size_t n, double scale) {
      v.resize(n);
      for (auto& e : v) e = float(r.uniform(-scale, scale));
    };
    fill(x, g.in_size(), 1.0);
    fill(w, g.patch() * g.f, 1.0 / std::sqrt(double(g.patch())));
    fill(b, g.f, 0.1);
    fill(dy, g.out_size(), 1.0);
    y.assign(g.out_size(), 0.f);
    dw.assign(w.size(), 0.f);
    db.assign(g.f, 0.f);
    dx.assign(g.in_size(), 0.f);
    pooled.assign(std::size_t(g.n) * (g.oh / 2) * (g.ow / 2) * g.f, 0.f);
    argmax.assign(pooled.size(), 0);
  }
};

// Does the variant run Conv2D + ReLU + MaxPool<2> in one pass (the paper's pattern)?
template <class Variant>
constexpr bool fuses_pool = requires(const hubble::kernels::ConvGeometry& g, const float* p, float* q, std::uint8_t* a,
                                     hubble::kernels::Workspace<float>& ws) {
  Variant::forward_relu_maxpool(g, p, p, p, 2, q, a, ws);
};

// maxpool_2(relu(y)) of a forward output, the long way.
inline std::vector<float> relu_pool2(const hubble::kernels::ConvGeometry& g, const std::vector<float>& y) {
  const int ph = g.oh / 2, pw = g.ow / 2;
  std::vector<float> out(std::size_t(g.n) * ph * pw * g.f);
  for (int b = 0; b < g.n; ++b)
    for (int i = 0; i < ph; ++i)
      for (int j = 0; j < pw; ++j)
        for (int f = 0; f < g.f; ++f) {
          float m = 0;  // relu: the maximum is at least 0
          for (int q = 0; q < 4; ++q)
            m = std::max(m, y[((std::size_t(b) * g.oh + 2 * i + q / 2) * g.ow + 2 * j + q % 2) * g.f + f]);
          out[((std::size_t(b) * ph + i) * pw + j) * g.f + f] = m;
        }
  return out;
}

// Runs Variant on the paper's four shapes (batch 2) and compares forward, dw, db and dx with
// Naive; prints one line per layer and exits with a message when anything is off by more than
// 1e-4 relative to the largest reference value.
template <class Variant>
void validate_or_die() {
  for (const auto& L : paper_layers) {
    ConvData ref(L.geometry(2), 42), got(L.geometry(2), 42);
    hubble::kernels::Workspace<float> ws0, ws1;
    using hubble::kernels::Naive;
    Naive::forward(ref.g, ref.x.data(), ref.w.data(), ref.b.data(), ref.y.data(), ws0);
    Naive::backward(ref.g, ref.x.data(), ref.w.data(), ref.dy.data(), ref.dw.data(), ref.db.data(), ref.dx.data(), ws0);
    Variant::forward(got.g, got.x.data(), got.w.data(), got.b.data(), got.y.data(), ws1);
    Variant::backward(got.g, got.x.data(), got.w.data(), got.dy.data(), got.dw.data(), got.db.data(), got.dx.data(),
                      ws1);
    auto err = [](const std::vector<float>& a, const std::vector<float>& b) {
      double e = 0, s = 1e-30;
      for (std::size_t i = 0; i < a.size(); ++i) {
        e = std::max(e, std::abs(double(a[i]) - double(b[i])));
        s = std::max(s, std::abs(double(a[i])));
      }
      return e / s;
    };
    const double ey = err(ref.y, got.y), ew = err(ref.dw, got.dw), eb = err(ref.db, got.db), ex = err(ref.dx, got.dx);
    double ep = 0;  // Conv2D+ReLU+MaxPool<2> in one pass, where the variant has it
    std::string pool_note;
    if constexpr (fuses_pool<Variant>) {
      hubble::kernels::Workspace<float> ws2;
      if (Variant::forward_relu_maxpool(got.g, got.x.data(), got.w.data(), got.b.data(), 2, got.pooled.data(),
                                        got.argmax.data(), ws2)) {
        ep = err(relu_pool2(ref.g, ref.y), got.pooled);
        char buf[32];
        std::snprintf(buf, sizeof buf, " relu+pool %.1e", ep);
        pool_note = buf;
      }
    }
    const double worst = std::max({ey, ew, eb, ex, ep});
    std::fprintf(stderr, "validate %-20s %s: rel. error y %.1e dw %.1e db %.1e dx %.1e%s %s\n", Variant::name, L.name,
                 ey, ew, eb, ex, pool_note.c_str(), worst <= 1e-4 ? "ok" : "WRONG");
    if (!(worst <= 1e-4)) {
      std::fprintf(stderr, "%s gives wrong results on %s; refusing to time it\n", Variant::name, L.name);
      std::exit(1);
    }
  }
}

}  // namespace bench
