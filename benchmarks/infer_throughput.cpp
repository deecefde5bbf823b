// hubble's side of the ONNX Runtime comparison (benchmarks/compare_onnxruntime.py): inference of
// one checkpoint through the typed network (PaperNet / ImprovedNet, net.forward in eval mode) and
// through hubble::Model, the façade embedders use, with the same weights and the same inputs.
//
//   infer_throughput make-checkpoint paper|improved OUT.h5 [--seed S]
//       seeded initial weights, with biases (and ImprovedNet's BatchNorm moving statistics) drawn
//       too, so that every exported node does real work; no training needed to time inference
//   infer_throughput predict CKPT.h5 --batch N --inputs IN.f32 --probs OUT.f32 [--seed S]
//       writes N seeded images (float32, NCHW: what the ONNX model takes) and Model's probabilities
//       (N x classes float32); prints how far the typed network's probabilities are from Model's
//   infer_throughput throughput CKPT.h5 --batch N [--seconds S] [--threads T] [--first typed|model]
//       images/s of both, each timed for at least S seconds after warm-up, one after the other
//   infer_throughput latency CKPT.h5 [--calls C] [--threads T]
//       C single-image calls of Model::predict (and of the typed network), each timed: median, p99
//   infer_throughput profile CKPT.h5 --batch N [--steps S] [--threads T]
//       per-layer forward times: the network's own chain (fused steps as one row, as forward() runs
//       them) on a copy of its layers; the chain's output is checked against net.forward's
//   infer_throughput calls CKPT.h5 --path typed|model-batch|model-values|model-bytes [--batch N] [--calls C]
//       C calls of one path inside counted_calls(), for callgrind's instruction counts (below)
// The typed network is loaded as an embedder running inference should use it, with
// net.set_weights_constant(true) (as hubble::Model does, and as ONNX Runtime treats its
// initializers); --weights-constant 0 leaves it off, so that every forward re-reads the weights
// the convolutions prepared, as during training.
// int8 (lowp::QuantizedPlan, the other side of compare_onnxruntime.py --int8):
//   infer_throughput quantize CKPT.h5 OUT.int8.h5 [--batch N] [--seed S]
//       post-training int8 of the checkpoint, calibrated (percentile) on N seeded images (default
//       32, drawn with another seed than predict-int8's), written as a hubble-int8 model file
//   infer_throughput predict-int8 MODEL.int8.h5 --batch N --inputs IN.f32 --probs OUT.f32 [--seed S]
//       as predict: the seeded images (NCHW) and QuantizedPlan::run's probabilities
//   infer_throughput throughput-int8 MODEL.int8.h5 --batch N [--seconds S] [--threads T]
//       images/s of QuantizedPlan::run
// Every mode prints one JSON object on stdout; errors go to stderr with exit status 1.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "hubble/improved_net.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/lowp/quantized_file.hpp"
#include "hubble/lowp/quantized_plan.hpp"
#include "hubble/model.hpp"
#include "hubble/paper_net.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using namespace hubble;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Args {
  std::string mode, path, out;
  int batch = 1, threads = 0, calls = 1000, steps = 10;
  double seconds = 2.0;
  std::uint64_t seed = 1;
  std::string inputs, probs, first = "typed", call_path = "typed";
  bool weights_constant = true;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(
      stderr,
      "infer_throughput: %s\n"
      "usage: infer_throughput make-checkpoint paper|improved OUT.h5 [--seed S]\n"
      "       infer_throughput predict CKPT.h5 --batch N --inputs IN.f32 --probs OUT.f32 [--seed S]\n"
      "       infer_throughput throughput CKPT.h5 --batch N [--seconds S] [--threads T] [--first typed|model]\n"
      "                        (every mode that loads the typed network: [--weights-constant 0|1], default 1)\n"
      "       infer_throughput latency CKPT.h5 [--calls C] [--threads T]\n"
      "       infer_throughput profile CKPT.h5 --batch N [--steps S] [--threads T]\n"
      "       infer_throughput calls CKPT.h5 --path typed|model-batch|model-values|model-bytes [--batch N] [--calls "
      "C]\n"
      "       infer_throughput quantize CKPT.h5 OUT.int8.h5 [--batch N] [--seed S]\n"
      "       infer_throughput predict-int8 MODEL.int8.h5 --batch N --inputs IN.f32 --probs OUT.f32 [--seed S]\n"
      "       infer_throughput throughput-int8 MODEL.int8.h5 --batch N [--seconds S] [--threads T]\n",
      why.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      positional.push_back(s);
      continue;
    }
    if (i + 1 >= argc) usage(s + " needs a value");
    const std::string v = argv[++i];
    const auto number = [&](double lo) {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end || !(d >= lo)) usage(s + ": bad value '" + v + "'");
      return d;
    };
    if (s == "--batch") a.batch = int(number(1));
    else if (s == "--threads") a.threads = int(number(1));
    else if (s == "--calls") a.calls = int(number(1));
    else if (s == "--steps") a.steps = int(number(1));
    else if (s == "--seconds") a.seconds = number(0);
    else if (s == "--seed") a.seed = std::uint64_t(number(0));
    else if (s == "--inputs") a.inputs = v;
    else if (s == "--probs") a.probs = v;
    else if (s == "--path") a.call_path = v;
    else if (s == "--weights-constant") a.weights_constant = number(0) != 0;
    else if (s == "--first") {
      if (v != "typed" && v != "model") usage("--first takes typed or model");
      a.first = v;
    } else usage("unknown option " + s);
  }
  if (positional.empty()) usage("no mode given");
  a.mode = positional[0];
  static const char* const modes[] = {"make-checkpoint", "predict",  "throughput",   "latency",        "profile",
                                      "calls",           "quantize", "predict-int8", "throughput-int8"};
  if (std::find(std::begin(modes), std::end(modes), a.mode) == std::end(modes)) usage("unknown mode " + a.mode);
  if (a.mode == "make-checkpoint" || a.mode == "quantize") {
    if (positional.size() != 3) usage(a.mode + " takes an input (network name or checkpoint) and an output file");
    a.path = positional[1];
    a.out = positional[2];
  } else {
    if (positional.size() != 2) usage(a.mode + " takes one checkpoint");
    a.path = positional[1];
  }
  return a;
}

// n images of seeded pixels (bytes / 255, as training scales them), NHWC; each image has its own
// brightness range and colour balance, so that the network's predictions differ between images.
Tensor<float> images(int n, int h, int w, int channels, std::uint64_t seed) {
  Tensor<float> x(n, h, w, channels);
  Rng r(seed);
  for (int b = 0; b < n; ++b) {
    std::vector<int> lo(std::size_t(channels), 0), span(std::size_t(channels), 0);
    for (int c = 0; c < channels; ++c) {
      lo[std::size_t(c)] = int(r.below(160));
      span[std::size_t(c)] = 1 + int(r.below(std::uint64_t(256 - lo[std::size_t(c)])));
    }
    float* v = x.sample(b);
    for (std::size_t i = 0; i < x.sample_size(); ++i) {
      const std::size_t c = i % std::size_t(channels);
      v[i] = float(lo[c] + int(r.below(std::uint64_t(span[c])))) / 255.0f;
    }
  }
  return x;
}
template <class S>
Tensor<float> images(int n, std::uint64_t seed) {
  return images(n, S::h, S::w, S::c, seed);
}

// x [n][h][w][c] as NCHW, what the ONNX models take.
std::vector<float> to_nchw(const Tensor<float>& x) {
  const int n = x.batch(), h = x.height(), w = x.width(), c = x.channels();
  std::vector<float> nchw(x.size());
  for (int b = 0; b < n; ++b)
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < w; ++xx)
        for (int k = 0; k < c; ++k) nchw[((std::size_t(b) * c + k) * h + y) * w + xx] = x(b, y, xx, k);
  return nchw;
}

void write_floats(const std::string& path, const float* v, std::size_t n) {
  std::ofstream f(path, std::ios::binary);
  HUBBLE_CHECK(f, path, ": cannot open for writing");
  f.write(reinterpret_cast<const char*>(v), std::streamsize(n * sizeof(float)));
  HUBBLE_CHECK(f, path, ": write failed");
}

// Images/s of step() (which handles `batch` images) over at least `seconds`, after warm-up calls.
template <class F>
double rate(F&& step, int batch, double seconds) {
  for (int i = 0; i < 3; ++i) step();
  long steps = 0;
  const double t0 = now();
  double t = 0;
  do {
    step();
    ++steps;
    t = now() - t0;
  } while (t < seconds);
  return double(steps) * batch / t;
}

// Median and 99th percentile (nearest rank) of per-call times of two paths, milliseconds. The
// paths take turns in blocks of 50 calls, so that both see the same machine (timed one after the
// other, hubble::Model, timed first, measured up to 40% slower than the typed network on a Zen 3 VM,
// with the same kernels; taking turns, 3-10%). Blocks, not single calls:
// each path has its own weights and buffers, and alternating call by call timed both with the
// other's data in the caches. The first two calls of a block, which warm them, are not counted.
template <class F, class G>
std::array<std::pair<double, double>, 2> latency(F&& call_a, G&& call_b, int calls) {
  constexpr int block = 50, warm = 2;
  std::vector<double> ta, tb;
  const auto run_block = [](auto& call, std::vector<double>& t, int n) {
    for (int i = 0; i < warm; ++i) call();
    for (int i = 0; i < n; ++i) {
      const double t0 = now();
      call();
      t.push_back((now() - t0) * 1e3);
    }
  };
  for (int done = 0; done < calls; done += block) {
    const int n = std::min(block, calls - done);
    run_block(call_a, ta, n);
    run_block(call_b, tb, n);
  }
  const auto ranks = [](std::vector<double>& t) {
    std::sort(t.begin(), t.end());
    const auto rank = [&](double q) {
      return t[std::min(t.size() - 1, std::size_t(std::ceil(q * double(t.size())) - 1))];
    };
    return std::pair{rank(0.5), rank(0.99)};
  };
  return {ranks(ta), ranks(tb)};
}

// The instruction set this program's float kernels run (kernels/fp32/isa.hpp: the build's own,
// or the AVX-512 copy picked at run time).
const char* kernel_isa() { return kernels::fp32_path_name(); }

std::string json_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    o += ch;
  }
  return o + "\"";
}

// ---- per-layer profile -------------------------------------------------------------------------
// The forward chain of Network (network/sequential.hpp, forward_from) on a copy of the network's
// layers, timing each step: a fused Conv2D+ReLU(+MaxPool) is one step, as in forward().
template <class Net>
struct LayerTimer {
  using Layers = typename Net::layers_type;
  using Plan = FusionPlan<Layers, float>;
  static constexpr std::size_t N = Net::layer_count;
  struct Step {
    std::string name, kind;
    double seconds = 0;
  };
  Layers layers;
  std::array<Tensor<float>, N> acts;
  std::vector<Step> steps;
  std::size_t at = 0;  // step index within the current pass
  bool timing = false;
  const Tensor<float>* output = nullptr;

  explicit LayerTimer(const Net& net) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { ((std::get<I>(layers) = net.template layer<I>()), ...); }
    (std::make_index_sequence<N>{});
  }
  void pass(const Tensor<float>& x, bool time_it) {
    at = 0;
    timing = time_it;
    run<0>(x);
  }
  void record(std::size_t first, std::size_t last, double seconds) {
    if (at == steps.size()) {
      Step s;
      for (std::size_t i = first; i <= last; ++i) {
        s.name += (i > first ? "+" : "") + Net::layer_names()[i];
        s.kind += std::string(i > first ? "+" : "") + kind_of(i);
      }
      steps.push_back(s);
    }
    if (timing) steps[at].seconds += seconds;
    ++at;
  }
  static const char* kind_of(std::size_t i) {
    const char* k = "";
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((i == I ? (k = Net::template layer_type<I>::kind, 0) : 0), ...);
    }
    (std::make_index_sequence<N>{});
    return k;
  }
  template <std::size_t I>
  void run(const Tensor<float>& x) {
    if constexpr (I < N) {
      if constexpr (Plan::template conv_bn_relu<I>()) {  // inference: BatchNorm folded
        const double t0 = now();
        const std::size_t last = fused::forward_conv_bn_relu<Plan, I>(layers, x, acts);
        record(I, last, now() - t0);
        output = &acts[last];
        if (last == I + 3) run<I + 4>(acts[last]);
        else run<I + 3>(acts[last]);
      } else if constexpr (Plan::template conv_relu<I>()) {
        const double t0 = now();
        const std::size_t last = fused::forward_conv_relu<Plan, I>(layers, x, acts);
        record(I, last, now() - t0);
        if (last == I + 2) {
          output = &acts[I + 2];
          run<I + 3>(acts[I + 2]);
        } else {
          output = &acts[I + 1];
          run<I + 2>(acts[I + 1]);
        }
      } else {
        const double t0 = now();
        std::get<I>(layers).forward(x, acts[I], Mode::eval);
        record(I, I, now() - t0);
        output = &acts[I];
        run<I + 1>(acts[I]);
      }
    }
  }
};

// ---- the modes, for one network type -----------------------------------------------------------
template <class Net>
std::unique_ptr<Net> load_typed(const Args& a) {
  auto net = std::make_unique<Net>();
  load_checkpoint(a.path, *net);
  net->set_weights_constant(a.weights_constant);
  return net;
}

template <class Net>
void predict_mode(const Args& a) {
  using S = typename Net::input_shape;
  HUBBLE_CHECK(!a.inputs.empty() && !a.probs.empty(), "predict: --inputs and --probs are required");
  auto net = load_typed<Net>(a);
  const Model model = Model::load(a.path);
  const Tensor<float> x = images<S>(a.batch, a.seed);
  const std::vector<float> p = model.predict(x);
  const Tensor<float>& q = net->forward(x, Mode::eval);
  double diff = 0;
  for (std::size_t i = 0; i < p.size(); ++i) diff = std::max(diff, std::abs(double(p[i]) - double(q[i])));
  // NCHW for ONNX.
  std::vector<float> nchw(x.size());
  for (int n = 0; n < a.batch; ++n)
    for (int y = 0; y < S::h; ++y)
      for (int xx = 0; xx < S::w; ++xx)
        for (int c = 0; c < S::c; ++c) nchw[((std::size_t(n) * S::c + c) * S::h + y) * S::w + xx] = x(n, y, xx, c);
  write_floats(a.inputs, nchw.data(), nchw.size());
  write_floats(a.probs, p.data(), p.size());
  std::printf(
      "{\"architecture\": %s, \"batch\": %d, \"classes\": %d, \"typed_vs_model_max_abs_diff\": %s, "
      "\"isa\": %s}\n",
      json_string(model.architecture()).c_str(), a.batch, Net::classes, json_number(diff).c_str(),
      json_string(kernel_isa()).c_str());
}

template <class Net>
void throughput_mode(const Args& a) {
  using S = typename Net::input_shape;
  auto net = load_typed<Net>(a);
  const Model model = Model::load(a.path);
  const Tensor<float> x = images<S>(a.batch, a.seed);
  double typed = 0, facade = 0;
  const auto time_typed = [&] { typed = rate([&] { net->forward(x, Mode::eval); }, a.batch, a.seconds); };
  const auto time_model = [&] { facade = rate([&] { (void)model.predict(x); }, a.batch, a.seconds); };
  if (a.first == "typed") {
    time_typed();
    time_model();
  } else {
    time_model();
    time_typed();
  }
  std::printf("{\"batch\": %d, \"typed\": %s, \"model\": %s}\n", a.batch, json_number(typed).c_str(),
              json_number(facade).c_str());
}

template <class Net>
void latency_mode(const Args& a) {
  using S = typename Net::input_shape;
  auto net = load_typed<Net>(a);
  const Model model = Model::load(a.path);
  const Tensor<float> x = images<S>(1, a.seed);
  const std::span<const float> one(x.data(), x.size());
  const auto [m, t] = latency([&] { (void)model.predict(one); }, [&] { net->forward(x, Mode::eval); }, a.calls);
  const auto [m50, m99] = m;
  const auto [t50, t99] = t;
  std::printf(
      "{\"calls\": %d, \"model_median_ms\": %s, \"model_p99_ms\": %s, \"typed_median_ms\": %s, \"typed_p99_ms\": %s}\n",
      a.calls, json_number(m50).c_str(), json_number(m99).c_str(), json_number(t50).c_str(), json_number(t99).c_str());
}

// C calls of one inference path, after two warm-up calls, inside counted_calls: for instruction
// counts that do not depend on the machine's load,
//   valgrind --tool=callgrind --toggle-collect='*counted_calls*' infer_throughput calls CKPT --path P
template <class F>
[[gnu::noinline]] void counted_calls(F&& f, int calls) {
  for (int i = 0; i < calls; ++i) f();
}

template <class Net>
void calls_mode(const Args& a) {
  using S = typename Net::input_shape;
  auto net = load_typed<Net>(a);
  const Model model = Model::load(a.path);
  const Tensor<float> x = images<S>(a.batch, a.seed);
  std::vector<std::uint8_t> bytes(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) bytes[i] = std::uint8_t(std::lround(x[i] * 255.0f));
  const auto go = [&](auto&& f) {
    f();
    f();
    counted_calls(f, a.calls);
  };
  if (a.call_path == "typed") go([&] { net->forward(x, Mode::eval); });
  else if (a.call_path == "model-batch") go([&] { (void)model.predict(x); });
  else if (a.call_path == "model-values" && a.batch == 1)
    go([&] { (void)model.predict(std::span<const float>(x.data(), x.size())); });
  else if (a.call_path == "model-bytes" && a.batch == 1)
    go([&] { (void)model.predict(std::span<const std::uint8_t>(bytes)); });
  else usage("calls: --path is typed, model-batch, or (batch 1) model-values or model-bytes");
  std::printf("{\"path\": %s, \"batch\": %d, \"calls\": %d}\n", json_string(a.call_path).c_str(), a.batch, a.calls);
}

template <class Net>
void profile_mode(const Args& a) {
  using S = typename Net::input_shape;
  auto net = load_typed<Net>(a);
  const Tensor<float> x = images<S>(a.batch, a.seed);
  LayerTimer<Net> timer(*net);
  timer.pass(x, false);  // warm-up: sizes every buffer, prepares packed weights
  for (int s = 0; s < a.steps; ++s) timer.pass(x, true);
  // The chain must be the network's: same output bits as net.forward.
  const Tensor<float>& want = net->forward(x, Mode::eval);
  HUBBLE_CHECK(timer.output && timer.output->size() == want.size() &&
                   std::equal(want.data(), want.data() + want.size(), timer.output->data()),
               "profile: the timed layer chain does not reproduce net.forward's output");
  double total = 0;
  std::string rows;
  for (const auto& st : timer.steps) {
    const double ms = st.seconds / a.steps * 1e3;
    total += ms;
    rows += std::string(rows.empty() ? "" : ", ") + "{\"name\": " + json_string(st.name) +
            ", \"kind\": " + json_string(st.kind) + ", \"ms\": " + json_number(ms) + "}";
  }
  // The whole forward() over as many passes, for comparison with the sum of the steps.
  const double t0 = now();
  for (int s = 0; s < a.steps; ++s) net->forward(x, Mode::eval);
  const double forward_ms = (now() - t0) / a.steps * 1e3;
  std::printf("{\"batch\": %d, \"steps\": %d, \"total_ms\": %s, \"forward_ms\": %s, \"layers\": [%s]}\n", a.batch,
              a.steps, json_number(total).c_str(), json_number(forward_ms).c_str(), rows.c_str());
}

template <class Net>
void make_checkpoint(const Args& a) {
  auto net = std::make_unique<Net>(a.seed);
  Rng r(a.seed ^ 0x5eedULL);
  for (auto& p : net->parameters())  // biases too (initialised to 0): predictions then vary between images
    if (p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, "/bias") == 0)
      for (std::size_t i = 0; i < p.size; ++i) p.value[i] = float(r.uniform(-0.2, 0.2));
  for (auto& b : net->buffers()) {  // BatchNorm moving statistics: mean near 0, variance near 1
    const bool variance = b.name.find("variance") != std::string::npos;
    for (std::size_t i = 0; i < b.size; ++i) b.value[i] = float(variance ? r.uniform(0.5, 1.5) : r.uniform(-0.2, 0.2));
  }
  CheckpointData data;
  data.metadata["bench/made_by"] = "infer_throughput make-checkpoint (seeded initial weights, untrained)";
  save_checkpoint(a.out, *net, nullptr, data);
  std::printf("{\"checkpoint\": %s, \"architecture\": %s}\n", json_string(a.out).c_str(),
              json_string(Net::architecture()).c_str());
}

// ---- int8 ----------------------------------------------------------------------------------------
template <class Net>
void quantize_mode(const Args& a) {
  using S = typename Net::input_shape;
  auto net = load_typed<Net>(a);
  const lowp::InferencePlan plan = lowp::plan_of(*net);
  const int n = a.batch > 1 ? a.batch : 32;
  const Tensor<float> x = images<S>(n, a.seed ^ 0xca11b7a7eULL);  // not predict-int8's images
  const lowp::Calibration cal = lowp::calibrate(plan, x.data(), n, lowp::CalibrationMethod::percentile);
  const lowp::QuantizedPlan q(plan, cal);
  lowp::save_quantized(a.out, q,
                       {{"bench/made_by", "infer_throughput quantize (percentile calibration on " + std::to_string(n) +
                                              " seeded images)"}});
  std::printf("{\"int8_model\": %s, \"architecture\": %s, \"calibration_images\": %d, \"int8_path\": %s}\n",
              json_string(a.out).c_str(), json_string(Net::architecture()).c_str(), n,
              json_string(kernels::lowp::name_of(q.path())).c_str());
}

void predict_int8_mode(const Args& a) {
  HUBBLE_CHECK(!a.inputs.empty() && !a.probs.empty(), "predict-int8: --inputs and --probs are required");
  const lowp::QuantizedPlan q = lowp::load_quantized(a.path);
  const auto& plan = q.plan();
  const Tensor<float> x = images(a.batch, plan.h, plan.w, plan.c, a.seed);
  const std::vector<float> p = q.run(x.data(), a.batch);
  const std::vector<float> nchw = to_nchw(x);
  write_floats(a.inputs, nchw.data(), nchw.size());
  write_floats(a.probs, p.data(), p.size());
  std::printf("{\"architecture\": %s, \"batch\": %d, \"classes\": %d, \"int8_path\": %s}\n",
              json_string(plan.architecture).c_str(), a.batch, plan.classes(),
              json_string(kernels::lowp::name_of(q.path())).c_str());
}

void throughput_int8_mode(const Args& a) {
  const lowp::QuantizedPlan q = lowp::load_quantized(a.path);
  const auto& plan = q.plan();
  const Tensor<float> x = images(a.batch, plan.h, plan.w, plan.c, a.seed);
  const double r = rate([&] { q.run(x.data(), a.batch); }, a.batch, a.seconds);
  std::printf("{\"batch\": %d, \"int8\": %s, \"int8_path\": %s}\n", a.batch, json_number(r).c_str(),
              json_string(kernels::lowp::name_of(q.path())).c_str());
}

template <class Net>
void run_mode(const Args& a) {
  if (a.mode == "predict") predict_mode<Net>(a);
  else if (a.mode == "quantize") quantize_mode<Net>(a);
  else if (a.mode == "throughput") throughput_mode<Net>(a);
  else if (a.mode == "latency") latency_mode<Net>(a);
  else if (a.mode == "profile") profile_mode<Net>(a);
  else if (a.mode == "calls") calls_mode<Net>(a);
  else usage("unknown mode " + a.mode);
}

int run(int argc, char** argv) {
  const Args a = parse(argc, argv);
#ifdef _OPENMP
  if (a.threads > 0) omp_set_num_threads(a.threads);
#endif
  if (a.mode == "make-checkpoint") {
    if (a.path == "paper") make_checkpoint<PaperNet>(a);
    else if (a.path == "improved") make_checkpoint<ImprovedNet>(a);
    else usage("make-checkpoint: the network is paper or improved, not " + a.path);
    return 0;
  }
  if (a.mode == "predict-int8" || a.mode == "throughput-int8") {
    if (a.mode == "predict-int8") predict_int8_mode(a);
    else throughput_int8_mode(a);
    return 0;
  }
  const std::string arch = read_checkpoint_header(a.path).architecture;
  if (arch == PaperNet::architecture()) run_mode<PaperNet>(a);
  else if (arch == ImprovedNet::architecture()) run_mode<ImprovedNet>(a);
  else HUBBLE_CHECK(false, a.path, ": neither PaperNet nor ImprovedNet (architecture ", arch, ")");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "infer_throughput: %s\n", e.what());
    return 1;
  }
}
