// The whole paper network (PaperNetT<float, Variant>): training step (forward, fused loss,
// backward, Adam) and inference, in images per second, for each convolution variant; thread
// scaling 1 -> all threads; and plain-number modes for scripts.
//
//   bench_paper_net                                    # Google Benchmark tables
//   bench_paper_net --plain train 32 [seconds] [variant]   # one line: images/s (compare_pytorch.py)
//   bench_paper_net --plain infer 64 [seconds] [variant]
//   bench_paper_net --rss 64 [steps] [variant]         # peak resident memory of a training run
//   bench_paper_net --profile 32 [steps] [variant]     # per-layer forward/backward milliseconds
// variant: any of kernels::FastVariants by its name (kernels/variants.hpp): im2col+eigen,
// im2col+packed-gemm, implicit-gemm, winograd, winograd-4x4, tuned (the default); or bf16.
// Data are random images and labels: speed does not depend on the pixel values.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <array>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "bench_common.hpp"
#include "hubble/kernels/lowp/bf16_conv.hpp"
#include "hubble/kernels/variants.hpp"
#include "hubble/paper_net.hpp"

namespace {

using namespace hubble;

struct Batch {
  Tensor<float> x;
  std::vector<int> labels;
  explicit Batch(int n, std::uint64_t seed = 1) : x(n, 128, 128, 3), labels(n) {
    Rng r(seed);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
    for (auto& l : labels) l = int(r.below(10));
  }
};

// Runs fn(std::type_identity<Net>) for the paper network on the named variant (Naive is left
// out: it is the scalar reference, far too slow for a whole network); false for an unknown name.
// "bf16" is kernels::lowp::Bf16 (bf16 products, fp32 sums and weights: galaxy10_train --precision bf16).
template <class Fn>
bool with_variant(const std::string& v, Fn&& fn) {
  if (v == "bf16") {
    fn(std::type_identity<PaperNetT<float, kernels::lowp::Bf16>>{});
    return true;
  }
  return kernels::with_variant<kernels::FastVariants>(v, [&]<class V>() { fn(std::type_identity<PaperNetT<float, V>>{}); });
}

// One training step (forward, fused loss, backward, Adam) or one inference pass of a network,
// on a fixed random batch; step() runs it.
template <class Net>
struct TrainStep {
  static constexpr int warmup = 2;
  Net net{42};
  Adam<float> adam;
  Batch b;
  explicit TrainStep(int batch) : b(batch) {}
  void step() { net.train_step(b.x, b.labels, adam); }
};
template <class Net>
struct InferStep {
  static constexpr int warmup = 3;
  Net net{42};
  Batch b;
  explicit InferStep(int batch) : b(batch) {}
  void step() { net.forward(b.x, Mode::eval); }
};

// Images per second over at least `seconds`, after Step::warmup steps.
template <class Step>
double rate(int batch, double seconds) {
  Step s(batch);
  for (int i = 0; i < Step::warmup; ++i) s.step();
  long steps = 0;
  const double t0 = bench::now();
  double t = 0;
  do {
    s.step();
    ++steps;
    t = bench::now() - t0;
  } while (t < seconds);
  return double(steps) * batch / t;
}

// The Google Benchmark form: one step per iteration, images/s (and, training, GFLOP/s of the
// direct-convolution count, 242 MFLOP an image).
template <class Step>
void step_benchmark(benchmark::State& st, int batch, int nthreads, bool training) {
  const int before = bench::threads();
  bench::set_threads(nthreads);
  Step s(batch);
  for (int i = 0; i < Step::warmup; ++i) s.step();
  double total = 0;
  for (auto _ : st) {
    const double t0 = bench::now();
    s.step();
    const double t = bench::now() - t0;
    st.SetIterationTime(t);
    total += t;
  }
  st.counters["img/s"] = double(batch) * double(st.iterations()) / total;
  if (training) st.counters["GFLOP/s"] = 242.0e6 * 1e-9 * double(batch) * double(st.iterations()) / total;
  bench::set_threads(before);
}

// Per-layer wall time of forward (train mode) and backward, averaged over `steps` batches.
template <class Net>
void profile(int n, int steps) {
  using L = typename Net::layers_type;
  constexpr std::size_t N = std::tuple_size_v<L>;
  L layers;
  Rng rng(1);
  std::apply([&](auto&... l) { (l.initialize(rng, Init::glorot_uniform), ...); }, layers);
  std::array<Tensor<float>, N> acts, grads;
  Batch b(n);
  std::array<double, N> tf{}, tb{};
  for (int r = 0; r <= steps; ++r) {  // r == 0 is the warm-up
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ([&] {
        const double t0 = bench::now();
        if constexpr (I == 0) std::get<I>(layers).forward(b.x, acts[I], Mode::train);
        else std::get<I>(layers).forward(acts[I - 1], acts[I], Mode::train);
        if (r) tf[I] += bench::now() - t0;
      }(), ...);
    }(std::make_index_sequence<N>{});
    grads[N - 1] = acts[N - 1];
    for (std::size_t i = 0; i < grads[N - 1].size(); ++i) grads[N - 1][i] = 0.01f * float(rng.uniform(-1, 1));
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ([&] {
        constexpr std::size_t J = N - 1 - I;
        const double t0 = bench::now();
        if constexpr (J == 0) std::get<J>(layers).backward(b.x, acts[J], grads[J], nullptr);
        else std::get<J>(layers).backward(acts[J - 1], acts[J], grads[J], &grads[J - 1]);
        if (r) tb[J] += bench::now() - t0;
      }(), ...);
    }(std::make_index_sequence<N>{});
  }
  double total = 0;
  std::printf("%-4s %-10s %12s %12s\n", "#", "layer", "forward ms", "backward ms");
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ([&] {
      std::printf("%-4zu %-10s %12.3f %12.3f\n", I, std::tuple_element_t<I, L>::kind, tf[I] / steps * 1e3, tb[I] / steps * 1e3);
      total += tf[I] + tb[I];
    }(), ...);
  }(std::make_index_sequence<N>{});
  std::printf("total %.2f ms per batch of %d (no optimiser step): %.0f img/s\n", total / steps * 1e3, n, n * steps / total);
}

long max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_paper_net [benchmark flags]\n"
               "       bench_paper_net --plain train|infer BATCH [SECONDS] [VARIANT]\n"
               "       bench_paper_net --rss BATCH [STEPS] [VARIANT]\n"
               "       bench_paper_net --profile BATCH [STEPS] [VARIANT]\n"
               "VARIANT: %s, or bf16 (default %s)\n",
               kernels::variant_names<kernels::FastVariants>().c_str(), kernels::Default::name);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--plain") == 0) {
    if (argc < 4) return usage();
    const std::string what = argv[2];
    const int batch = std::atoi(argv[3]);
    const double seconds = argc > 4 ? std::atof(argv[4]) : 2.0;
    const std::string variant = argc > 5 ? argv[5] : kernels::Default::name;
    if (batch <= 0 || (what != "train" && what != "infer")) return usage();
    double rate = 0;
    if (!with_variant(variant, [&]<class Net>(std::type_identity<Net>) {
          rate = what == "train" ? ::rate<TrainStep<Net>>(batch, seconds) : ::rate<InferStep<Net>>(batch, seconds);
        }))
      return usage();
    std::printf("%.2f\n", rate);
    return 0;
  }
  if (argc >= 2 && std::strcmp(argv[1], "--rss") == 0) {
    if (argc < 3) return usage();
    const int batch = std::atoi(argv[2]), steps = argc > 3 ? std::atoi(argv[3]) : 5;
    const std::string variant = argc > 4 ? argv[4] : kernels::Default::name;
    const long before = max_rss_kib();
    if (batch <= 0 || !with_variant(variant, [&]<class Net>(std::type_identity<Net>) {
          TrainStep<Net> s(batch);
          for (int i = 0; i < steps; ++i) s.step();
        }))
      return usage();
    std::printf("peak RSS %.1f MiB (%.1f MiB before building the network) training %s at batch %d\n", double(max_rss_kib()) / 1024.0,
                double(before) / 1024.0, variant.c_str(), batch);
    return 0;
  }
  if (argc >= 2 && std::strcmp(argv[1], "--profile") == 0) {
    if (argc < 3) return usage();
    const int batch = std::atoi(argv[2]), steps = argc > 3 ? std::atoi(argv[3]) : 10;
    const std::string variant = argc > 4 ? argv[4] : kernels::Default::name;
    if (batch <= 0 || !with_variant(variant, [&]<class Net>(std::type_identity<Net>) { profile<Net>(batch, steps); }))
      return usage();
    return 0;
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const int all = bench::threads();
  kernels::for_each_variant<kernels::FastVariants>([&]<class V>() {
    using Net = PaperNetT<float, V>;
    const std::string vs = V::name;
    std::vector<int> thread_counts = {all};
    if (std::is_same_v<V, kernels::Default> && all > 1) thread_counts = {1, all};
    for (int t : thread_counts) {
      for (int batch : {32, 64})
        benchmark::RegisterBenchmark(("Train/" + vs + "/batch:" + std::to_string(batch) + "/threads:" + std::to_string(t)).c_str(),
                                     [=](benchmark::State& st) { step_benchmark<TrainStep<Net>>(st, batch, t, true); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      for (int batch : {1, 64})
        benchmark::RegisterBenchmark(("Infer/" + vs + "/batch:" + std::to_string(batch) + "/threads:" + std::to_string(t)).c_str(),
                                     [=](benchmark::State& st) { step_benchmark<InferStep<Net>>(st, batch, t, false); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    }
  });
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
