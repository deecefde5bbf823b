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
//   last conv    written in fp32 (no requantisation after the last integer layer)
//   head         GlobalAvgPool / Flatten and the Dense layers in fp32: PaperNet's head is 0.7% of
//                its multiply-adds, ImprovedNet's 0.01%; in time PaperNet's is more at batch 1
//                (0.020-0.024 of 0.12 ms on a Xeon: its 1 MB of fp32 weights come from beyond L2
//                on every call), which an int8 Dense would cut (docs/kernels.md, "Not yet done")
// Calibration observes every conv stage's output on training images through the fp32 plan and
// chooses a range per stage (lowp/calibration.hpp: minmax, percentile or entropy).
#include <algorithm>
#include <cmath>
#include <cstdint>
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
// chooses for the input and every conv stage's output.
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
  for (auto& s : stages) c.conv_outputs.push_back(s.range(method, percentile, 256));
  return c;
}

// One conv stage's int8 form: what a quantised model file stores (lowp/quantized_file.hpp).
struct QuantizedStage {
  kernels::lowp::PerChannelS8 weights;  // s8 [k*k*c][f] and the per-filter scales
  std::vector<float> bias;              // [f], fp32 (BatchNorm folded in)
  kernels::lowp::U8Quant out;           // the stage's output code (unused for the last stage)
};

class QuantizedPlan {
 public:
  // Quantises `plan` with the ranges of `cal`.
  QuantizedPlan(const InferencePlan& plan, const Calibration& cal,
                kernels::lowp::Int8Path path = kernels::lowp::int8_path())
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
    build(std::move(stages));
  }

  // From stages already in int8 (a quantised model file). `plan` gives the structure and the fp32
  // head; its conv weights are replaced by the dequantised s8 ones, so run_fp32(plan()) computes
  // what this model's weights mean in exact arithmetic.
  QuantizedPlan(InferencePlan plan, kernels::lowp::U8Quant input, std::vector<QuantizedStage> stages,
                kernels::lowp::Int8Path path = kernels::lowp::int8_path())
      : plan_(std::move(plan)), path_(path), input_(input) {
    HUBBLE_CHECK(stages.size() == plan_.convs.size(), "QuantizedPlan: ", stages.size(), " int8 stages for ",
                 plan_.convs.size(), " conv stages");
    for (std::size_t i = 0; i < stages.size(); ++i) {
      PlanConv& s = plan_.convs[i];
      const auto& q = stages[i].weights;
      HUBBLE_CHECK(std::size_t(q.rows) == s.g.patch() && q.f == s.g.f, "QuantizedPlan: ", s.name,
                   "'s int8 weights are ", q.rows, " x ", q.f, ", the stage needs ", s.g.patch(), " x ", s.g.f);
      s.w.resize(q.q.size());
      for (std::size_t j = 0; j < q.q.size(); ++j) s.w[j] = q.scale[j % std::size_t(q.f)] * float(q.q[j]);
      s.b = stages[i].bias;
    }
    build(std::move(stages));
  }

  // The path asked for; a stage with a short patch may run on another (conv_path_for: amx_int8
  // leaves conv1's 75 codes to VNNI).
  kernels::lowp::Int8Path path() const { return path_; }
  const InferencePlan& plan() const { return plan_; }
  kernels::lowp::U8Quant input_quant() const { return input_; }
  const std::vector<QuantizedStage>& stages() const { return stages_; }

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
      if (i + 1 == stages_.size()) {  // the last integer layer writes fp32 for the head
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
    return run_head(plan_, f_, n, h, w, c);
  }

 private:
  void build(std::vector<QuantizedStage> stages) {
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
    stages_ = std::move(stages);
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
  std::vector<kernels::lowp::Int8ConvWeights> packed_;  // stages_' weights packed for conv_path_for(path_, .)
  mutable std::vector<std::uint8_t> a_, b_;             // activations, ping-pong
  mutable std::vector<float> f_;                        // the last conv stage's fp32 output
};

}  // namespace hubble::lowp
