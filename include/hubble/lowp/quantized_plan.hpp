#pragma once
// Post-training int8 quantisation of a trained network, and the int8 inference that runs it.
//
//   lowp::InferencePlan plan = lowp::plan_of(net);                      // BatchNorm folded in
//   lowp::Calibration cal = lowp::calibrate(plan, images, n, lowp::CalibrationMethod::percentile);
//   lowp::QuantizedPlan q(plan, cal);                                   // weights quantised and packed once
//   std::vector<float> probabilities = q.run(images, n);                // n x classes
//
// What is quantised, and how (kernels/lowp/int8_conv.hpp has the arithmetic):
//   input        u8, the range calibration saw (images in [0, 1] get scale 1/255, zero point 0:
//                hubble's images come from u8 pixels, so this step loses nothing)
//   conv stage i s8 weights, one scale per filter (absmax / 127); i32 sums; the output, after the
//                fused ReLU and MaxPool, requantised to u8 with the range calibrated for stage i
//   last conv    requantised to u8 when the int8 Dense below reads it, else written in fp32
//   first Dense  when Flatten feeds it (HeadPrecision::int8, the default): s8 weights, one scale per
//                unit, over the last conv stage's u8 codes, written in fp32 after bias and ReLU. It is
//                the same sum as a 1x1 convolution of a 1x1 image with `in` channels, so the int8
//                convolution kernels run it. PaperNet's 1 MB of fp32 weights become 256 KB: 2-4%
//                of a batch-1 forward and 5-8% at batch 64 on a Xeon with AMX (docs/kernels.md,
//                "The int8 Dense")
//   the rest     GlobalAvgPool and a Dense after it (ImprovedNet: 0.01% of its multiply-adds),
//                every later Dense (PaperNet's second: 2,570 weights) and Softmax in fp32: their
//                inputs have no calibrated code, and they cost too little to be worth one
// Calibration observes every conv stage's output on training images through the fp32 plan and
// chooses a range per stage (lowp/calibration.hpp: minmax, percentile or entropy).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/kernels/default.hpp"
#include "hubble/kernels/lowp/int8_conv.hpp"
#include "hubble/lowp/calibration.hpp"
#include "hubble/lowp/inference_plan.hpp"

namespace hubble::lowp {

// The real-value ranges int8 codes cover: the input's and each conv stage's output's.
struct Calibration {
  CalibrationMethod method = CalibrationMethod::minmax;
  double percentile = 0.9999;
  int images = 0;
  Range input;
  std::vector<Range> conv_outputs;
};

// Runs the fp32 plan over images x [n][h][w][c] in batches and records the ranges `method`
// chooses for the input and every conv stage's output but the last, whose range is minmax.
inline Calibration calibrate(const InferencePlan& plan, const float* x, int n, CalibrationMethod method,
                             double percentile = 0.9999, int batch = 32) {
  HUBBLE_CHECK(n > 0, "calibrate: needs at least one image");
  HUBBLE_CHECK(batch > 0, "calibrate: the batch must be > 0, not ", batch);
  const std::size_t per_image = std::size_t(plan.h) * plan.w * plan.c;
  // The input is not calibrated statistically (clipping pixels would change the image itself):
  // only its extremes are needed.
  float in_min = 0.0f, in_max = 0.0f;
  for (std::size_t i = 0, size = std::size_t(n) * per_image; i < size; ++i) {
    HUBBLE_CHECK(std::isfinite(x[i]), "calibration: a non-finite value (", x[i], ") among the observed activations");
    in_min = std::min(in_min, x[i]);
    in_max = std::max(in_max, x[i]);
  }
  std::vector<RangeObserver> stages(plan.convs.size());
  for (int first = 0; first < n; first += batch) {
    const int m = std::min(batch, n - first);
    const float* xb = x + std::size_t(first) * per_image;
    run_fp32<kernels::Tuned>(plan, xb, m, [&](std::size_t i, const float* v, std::size_t count) {
      stages[i].observe(std::span<const float>(v, count));
    });
  }
  Calibration c;
  c.method = method;
  c.percentile = percentile;
  c.images = n;
  c.input = {in_min, in_max};  // the range always holds 0
  if (c.input.lo >= 0.0f && c.input.hi <= 1.0f) c.input = {0.0f, 1.0f};
  // The last stage's codes are read only by an int8 Dense, the classifier: its range is the whole
  // observed one. Clipping it (entropy) kept fp32's class on 99.25% of 798 cross-validation
  // images against 99.4% (PaperNet, 4 folds; docs/kernels.md, "The int8 Dense").
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const bool last = i + 1 == stages.size();
    c.conv_outputs.push_back(stages[i].range(last ? CalibrationMethod::minmax : method, percentile, 256));
  }
  return c;
}

// One conv stage's int8 form: what a quantised model file stores (lowp/quantized_file.hpp).
struct QuantizedStage {
  kernels::lowp::PerChannelS8 weights;  // s8 [k*k*c][f] and the per-filter scales
  std::vector<float> bias;              // [f], fp32 (BatchNorm folded in)
  kernels::lowp::U8Quant out;           // the stage's output code (the last stage's: the int8 Dense's input)
};

// The int8 form of the first Dense (in inputs, out units).
struct QuantizedDense {
  kernels::lowp::PerChannelS8 weights;  // s8 [in][out] and the per-unit scales
  std::vector<float> bias;              // [out], fp32
};

// Which part of the head runs in int8: none, or the first Dense where Flatten feeds it.
enum class HeadPrecision { fp32, int8 };

class QuantizedPlan {
 public:
  // Quantises `plan` with the ranges of `cal`; `head` says whether its first Dense runs in int8
  // too (only where Flatten feeds it: after GlobalAvgPool the head stays fp32 either way).
  QuantizedPlan(const InferencePlan& plan, const Calibration& cal,
                kernels::lowp::Int8Path path = kernels::lowp::int8_path(), HeadPrecision head = HeadPrecision::int8)
      : plan_(plan), path_(path) {
    HUBBLE_CHECK(cal.conv_outputs.size() == plan.convs.size(), "QuantizedPlan: the calibration has ",
                 cal.conv_outputs.size(), " conv ranges, the plan ", plan.convs.size(), " conv stages");
    input_ = kernels::lowp::choose_u8_quant(cal.input.lo, cal.input.hi);
    std::vector<QuantizedStage> stages;
    for (std::size_t i = 0; i < plan.convs.size(); ++i) {
      const PlanConv& s = plan.convs[i];
      stages.push_back({kernels::lowp::quantize_per_channel(s.w.data(), int(s.g.patch()), s.g.f), s.b,
                        kernels::lowp::choose_u8_quant(cal.conv_outputs[i].lo, cal.conv_outputs[i].hi)});
    }
    std::optional<QuantizedDense> dense;
    if (head == HeadPrecision::int8 && int8_dense_applies(plan)) {
      const PlanDense& d = plan.dense.front();
      dense = QuantizedDense{kernels::lowp::quantize_per_channel(d.w.data(), d.in, d.out), d.b};
    }
    build(std::move(stages), std::move(dense));
  }

  // From stages already in int8 (a quantised model file), and the first Dense's int8 form if it has
  // one. `plan` gives the structure and the fp32 rest of the head; its int8 layers' weights are
  // replaced by the dequantised s8 ones, so run_fp32(plan()) computes what this model's weights
  // mean in exact arithmetic.
  QuantizedPlan(InferencePlan plan, kernels::lowp::U8Quant input, std::vector<QuantizedStage> stages,
                std::optional<QuantizedDense> dense, kernels::lowp::Int8Path path = kernels::lowp::int8_path())
      : plan_(std::move(plan)), path_(path), input_(input) {
    HUBBLE_CHECK(stages.size() == plan_.convs.size(), "QuantizedPlan: ", stages.size(), " int8 stages for ",
                 plan_.convs.size(), " conv stages");
    for (std::size_t i = 0; i < stages.size(); ++i) {
      PlanConv& s = plan_.convs[i];
      const auto& q = stages[i].weights;
      HUBBLE_CHECK(std::size_t(q.rows) == s.g.patch() && q.f == s.g.f, "QuantizedPlan: ", s.name,
                   "'s int8 weights are ", q.rows, " x ", q.f, ", the stage needs ", s.g.patch(), " x ", s.g.f);
      s.w = q.dequantized();
      s.b = stages[i].bias;
    }
    if (dense) {
      HUBBLE_CHECK(int8_dense_applies(plan_), "QuantizedPlan: ", plan_.architecture,
                   " has no Dense right after Flatten to run in int8");
      PlanDense& d = plan_.dense.front();
      const auto& q = dense->weights;
      HUBBLE_CHECK(q.rows == d.in && q.f == d.out && q.q.size() == std::size_t(d.in) * std::size_t(d.out) &&
                       q.scale.size() == std::size_t(d.out) && dense->bias.size() == std::size_t(d.out),
                   "QuantizedPlan: ", d.name, "'s int8 weights are ", q.rows, " x ", q.f, ", the layer needs ", d.in,
                   " x ", d.out);
      d.w = q.dequantized();
      d.b = dense->bias;
    }
    build(std::move(stages), std::move(dense));
  }

  // Whether the first Dense of `plan` can run in int8: Flatten feeds it the last conv stage's codes.
  static bool int8_dense_applies(const InferencePlan& plan) {
    return plan.bridge == Bridge::flatten && !plan.convs.empty() && !plan.dense.empty();
  }

  // The path asked for; a stage with a short patch may run on another (conv_path_for: amx_int8
  // leaves conv1's 75 codes to VNNI).
  kernels::lowp::Int8Path path() const { return path_; }
  const InferencePlan& plan() const { return plan_; }
  kernels::lowp::U8Quant input_quant() const { return input_; }
  const std::vector<QuantizedStage>& stages() const { return stages_; }
  // The first Dense's int8 form, or nullptr when the whole head runs in fp32.
  const QuantizedDense* dense() const { return dense_ ? &*dense_ : nullptr; }

  // Probabilities (or scores, for a plan without Softmax) of images x [n][h][w][c], n x classes.
  // Not for concurrent calls on one object: the activations' buffers are kept between calls.
  std::vector<float> run(const float* x, int n) const {
    HUBBLE_CHECK(n > 0, "QuantizedPlan::run: needs at least one image");
    const std::size_t in_size = std::size_t(n) * plan_.h * plan_.w * plan_.c;
    grow(a_, in_size);
    kernels::lowp::quantize_u8_simd(x, in_size, input_, a_.data());
    kernels::lowp::U8Quant xq = input_;
    int h = plan_.h, w = plan_.w, c = plan_.c;
    for (std::size_t i = 0; i < stages_.size(); ++i) {
      const PlanConv& s = plan_.convs[i];
      const auto& weights = packed_[i];
      kernels::ConvGeometry g = s.g;
      g.n = n;
      HUBBLE_CHECK(g.h == h && g.w == w && g.c == c, "QuantizedPlan: ", s.name, " expects ", g.h, "x", g.w, "x", g.c,
                   " inputs, not ", h, "x", w, "x", c);
      const int oh = s.pool ? g.oh / s.pool : g.oh, ow = s.pool ? g.ow / s.pool : g.ow;
      const std::size_t out_size = std::size_t(n) * oh * ow * g.f;
      if (i + 1 == stages_.size() && !dense_) {  // the last integer layer writes fp32 for the head
        grow(f_, out_size);
        if (s.pool) kernels::lowp::conv_relu_maxpool_f32(g, a_.data(), xq, weights, s.pool, f_.data());
        else kernels::lowp::conv_u8_to_f32(g, a_.data(), xq, weights, s.relu, f_.data());
      } else {
        grow(b_, out_size);
        const auto yq = stages_[i].out;
        if (s.pool) kernels::lowp::conv_relu_maxpool_u8(g, a_.data(), xq, weights, s.pool, yq, b_.data());
        else kernels::lowp::conv_u8_to_u8(g, a_.data(), xq, weights, s.relu, yq, b_.data());
        a_.swap(b_);
        xq = yq;
      }
      h = oh, w = ow, c = g.f;
    }
    if (!dense_) return run_head(plan_, f_, n, h, w, c);
    // Flatten is free in NHWC: image i's codes are one row of in = h*w*c, in the order of the
    // Dense's rows. The Dense is their 1x1 convolution (dense_geometry).
    const PlanDense& d = plan_.dense.front();
    HUBBLE_CHECK(std::size_t(h) * w * c == std::size_t(d.in), "QuantizedPlan: ", d.name, " expects ", d.in,
                 " inputs, not ", std::size_t(h) * w * c);
    std::vector<float> out(std::size_t(n) * d.out);
    kernels::lowp::conv_u8_to_f32(dense_geometry(n), a_.data(), xq, packed_.back(), d.relu, out.data());
    return run_dense(plan_, std::move(out), n, 1);
  }

 private:
  void build(std::vector<QuantizedStage> stages, std::optional<QuantizedDense> dense) {
    HUBBLE_CHECK(!plan_.convs.empty(), "QuantizedPlan: ", plan_.architecture, " has no convolution to quantise");
    kernels::lowp::check_u8_quant(input_, "QuantizedPlan input");
    for (std::size_t i = 0; i < stages.size(); ++i) {
      const PlanConv& s = plan_.convs[i];
      HUBBLE_CHECK(s.relu || !s.pool, "QuantizedPlan: ", s.name,
                   " pools without a ReLU, which the int8 path does not fuse");
      kernels::lowp::check_u8_quant(stages[i].out, "QuantizedPlan stage output");
      const auto layer_path = kernels::lowp::conv_path_for(path_, int(s.g.patch()));
      packed_.push_back(
          kernels::lowp::prepare_int8_conv(s.g.k, s.g.c, stages[i].weights, stages[i].bias.data(), layer_path));
    }
    if (dense) {  // packed last, after the conv stages
      const PlanDense& d = plan_.dense.front();
      packed_.push_back(kernels::lowp::prepare_int8_conv(1, d.in, dense->weights, dense->bias.data(),
                                                         kernels::lowp::conv_path_for(path_, d.in)));
    }
    stages_ = std::move(stages);
    dense_ = std::move(dense);
  }

  // The first Dense as a convolution: n images of 1 x 1 pixel and `in` channels, a 1x1 kernel.
  kernels::ConvGeometry dense_geometry(int n) const {
    const PlanDense& d = plan_.dense.front();
    kernels::ConvGeometry g;
    g.n = n, g.h = g.w = 1, g.c = d.in, g.k = 1, g.stride = 1, g.oh = g.ow = 1, g.f = d.out;
    return g;
  }

  // Buffers only grow: the ping-pong swaps a_ and b_, and a resize up to the input's size would
  // zero-fill megabytes on every call (2% of a batch-64 forward, perf).
  template <class V>
  static void grow(V& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
  }

  InferencePlan plan_;
  kernels::lowp::Int8Path path_;
  kernels::lowp::U8Quant input_;
  std::vector<QuantizedStage> stages_;
  std::optional<QuantizedDense> dense_;
  std::vector<kernels::lowp::Int8ConvWeights> packed_;  // stages_' (then dense_'s) weights, packed for conv_path_for
  mutable std::vector<std::uint8_t> a_, b_;             // activations, ping-pong
  mutable std::vector<float> f_;                        // the last conv stage's fp32 output
};

}  // namespace hubble::lowp
