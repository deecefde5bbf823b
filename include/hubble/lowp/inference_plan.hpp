#pragma once
// InferencePlan: a trained network rewritten for inference only, as a run-time list of stages
//
//   input [n][h][w][c]
//   -> conv stages:   Conv2D (+ BatchNorm folded into its weights) [+ ReLU] [+ MaxPool]
//   -> bridge:        Flatten, or GlobalAvgPool
//   -> dense stages:  Dense [+ ReLU]          (Dropout is the identity at inference: dropped)
//   -> [Softmax]
//
// the form the low-precision path quantises (one scale per stage's output, one per filter), and
// that run_fp32() executes as the reference the quantised model is measured against.
//
// Folding BatchNorm (inference mode) into the convolution before it, per filter f:
//   BN(conv(x))[f] = gamma[f] * (conv(x)[f] - mean[f]) / sqrt(var[f] + eps) + beta[f]
//                  = conv'(x)[f]   with  w'[.,.,.,f] = s[f] * w[.,.,.,f],
//                                        b'[f] = s[f] * (b[f] - mean[f]) + beta[f],  s = gamma / sqrt(var + eps)
// ReLU and MaxPool commute (max is monotone), so their order after a conv does not matter.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/kernels/conv_geometry.hpp"
#include "hubble/kernels/gemm.hpp"
#include "hubble/kernels/naive.hpp"
#include "hubble/network/describe.hpp"

namespace hubble::lowp {

struct PlanConv {
  std::string name;         // the Conv2D layer's name ("conv2d_1")
  kernels::ConvGeometry g;  // per call: set g.n to the batch
  std::vector<float> w, b;  // [k][k][c][f] and [f], BatchNorm folded in
  bool batchnorm_folded = false;
  bool relu = false;
  int pool = 0;              // MaxPool<pool> (stride == pool) after the conv, or 0
  int out_h = 0, out_w = 0;  // after the pool
};

struct PlanDense {
  std::string name;
  int in = 0, out = 0;
  std::vector<float> w, b;  // [in][out] and [out]
  bool relu = false;
};

enum class Bridge { flatten, global_avg_pool };

struct InferencePlan {
  std::string architecture;
  int h = 0, w = 0, c = 0;
  std::vector<PlanConv> convs;
  Bridge bridge = Bridge::flatten;
  std::vector<PlanDense> dense;
  bool softmax = false;
  int classes() const { return dense.empty() ? 0 : dense.back().out; }
};

namespace plan_detail {
inline const ArrayView& array(const LayerDesc& l, const char* name) {
  for (const auto& a : l.arrays)
    if (a.name == name) return a;
  detail::fail("inference plan: layer ", l.name, " (", l.spec, ") has no array '", name, "'");
}
inline std::vector<float> copy(const ArrayView& a) { return std::vector<float>(a.data, a.data + a.size()); }
}  // namespace plan_detail

// The plan of a described network. Refuses, naming the layer, any layer or order it cannot run
// (a D4 layer, a pool whose stride is not its size, a BatchNorm not right after a Conv2D, ...).
inline InferencePlan plan_of(const NetworkDesc& net) {
  InferencePlan plan;
  plan.architecture = net.architecture;
  plan.h = net.h;
  plan.w = net.w;
  plan.c = net.c;
  enum class Part { convs, dense, done } part = Part::convs;
  const auto refuse = [&](const LayerDesc& l, const char* why) {
    detail::fail("inference plan: cannot run layer ", l.name, " (", l.spec, ") of ", net.architecture, ": ", why);
  };
  for (const LayerDesc& l : net.layers) {
    if (part == Part::done) refuse(l, "nothing may follow Softmax");
    if (l.kind == "Conv2D") {
      if (part != Part::convs) refuse(l, "a Conv2D after Flatten or GlobalAvgPool");
      PlanConv s;
      s.name = l.name;
      s.g.h = l.in_h, s.g.w = l.in_w, s.g.c = l.in_c;
      s.g.k = l.kernel, s.g.stride = l.stride, s.g.pad_top = l.pad_top, s.g.pad_left = l.pad_left;
      s.g.oh = l.out_h, s.g.ow = l.out_w, s.g.f = l.filters;
      s.w = plan_detail::copy(plan_detail::array(l, "kernel"));
      s.b = plan_detail::copy(plan_detail::array(l, "bias"));
      s.out_h = l.out_h, s.out_w = l.out_w;
      plan.convs.push_back(std::move(s));
    } else if (l.kind == "BatchNorm") {
      if (part != Part::convs || plan.convs.empty() || plan.convs.back().relu || plan.convs.back().pool ||
          plan.convs.back().batchnorm_folded)
        refuse(l, "BatchNorm is folded into the Conv2D right before it, and there is none");
      PlanConv& s = plan.convs.back();
      const auto gamma = plan_detail::array(l, "gamma"), beta = plan_detail::array(l, "beta");
      const auto mean = plan_detail::array(l, "moving_mean"), var = plan_detail::array(l, "moving_variance");
      const int f = s.g.f;
      HUBBLE_CHECK(int(gamma.size()) == f, "inference plan: ", l.name, " has ", gamma.size(), " channels, not ", f);
      for (int j = 0; j < f; ++j) {
        const double scale = double(gamma.data[j]) / std::sqrt(double(var.data[j]) + l.eps);
        for (std::size_t i = std::size_t(j); i < s.w.size(); i += std::size_t(f)) s.w[i] = float(scale * s.w[i]);
        s.b[std::size_t(j)] = float(scale * (double(s.b[std::size_t(j)]) - mean.data[j]) + beta.data[j]);
      }
      s.batchnorm_folded = true;
    } else if (l.kind == "ReLU") {
      if (part == Part::convs && !plan.convs.empty() && !plan.convs.back().relu) plan.convs.back().relu = true;
      else if (part == Part::dense && !plan.dense.empty() && !plan.dense.back().relu) plan.dense.back().relu = true;
      else refuse(l, "a ReLU is fused into the Conv2D or Dense before it, and there is none");
    } else if (l.kind == "MaxPool") {
      if (part != Part::convs || plan.convs.empty() || plan.convs.back().pool)
        refuse(l, "a MaxPool must follow a Conv2D");
      if (l.stride != l.pool) refuse(l, "only pools whose stride is their size are fused");
      plan.convs.back().pool = l.pool;
      plan.convs.back().out_h = l.out_h, plan.convs.back().out_w = l.out_w;
    } else if (l.kind == "Flatten" || l.kind == "GlobalAvgPool") {
      if (part != Part::convs) refuse(l, "a second Flatten or GlobalAvgPool");
      plan.bridge = l.kind == "Flatten" ? Bridge::flatten : Bridge::global_avg_pool;
      part = Part::dense;
    } else if (l.kind == "Dropout") {
      // the identity at inference
    } else if (l.kind == "Dense") {
      if (part != Part::dense) refuse(l, "a Dense before Flatten or GlobalAvgPool");
      PlanDense d;
      d.name = l.name;
      d.in = l.in_c, d.out = l.units;
      d.w = plan_detail::copy(plan_detail::array(l, "kernel"));
      d.b = plan_detail::copy(plan_detail::array(l, "bias"));
      plan.dense.push_back(std::move(d));
    } else if (l.kind == "Softmax") {
      if (part != Part::dense || plan.dense.empty()) refuse(l, "Softmax must end the network, after a Dense");
      plan.softmax = true;
      part = Part::done;
    } else {
      refuse(l, "this kind of layer has no inference-plan form");
    }
  }
  HUBBLE_CHECK(!plan.dense.empty(), "inference plan: ", net.architecture, " ends without a Dense layer");
  return plan;
}

template <class Net>
InferencePlan plan_of(Net& net) {
  return plan_of(describe(net));
}

// ---- the fp32 reference execution -----------------------------------------------------------------
// y[n][h/P][w/P][f] = max over each P x P window of x (NHWC; a last row or column that fills no
// window is dropped, as MaxPool does).
inline void max_pool(const float* x, int n, int h, int w, int c, int p, float* y) {
  const int oh = h / p, ow = w / p;
  for (int i = 0; i < n; ++i)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int f = 0; f < c; ++f) {
          float m = -INFINITY;
          for (int dy = 0; dy < p; ++dy)
            for (int dx = 0; dx < p; ++dx)
              m = std::max(m, x[((std::size_t(i) * h + oy * p + dy) * w + ox * p + dx) * c + f]);
          y[((std::size_t(i) * oh + oy) * ow + ox) * c + f] = m;
        }
}

// Dense layers plan.dense[first..] and Softmax, in fp32, from their input cur [n][dense[first].in].
// Shared by the fp32 and the int8 runs (the int8 one may have run the first Dense itself).
inline std::vector<float> run_dense(const InferencePlan& plan, std::vector<float> cur, int n, std::size_t first = 0) {
  std::vector<float> out;
  for (std::size_t j = first; j < plan.dense.size(); ++j) {
    const PlanDense& d = plan.dense[j];
    HUBBLE_CHECK(cur.size() == std::size_t(n) * d.in, "inference plan: ", d.name, " expects ", d.in, " inputs, not ",
                 cur.size() / std::size_t(n));
    out.resize(std::size_t(n) * d.out);
    kernels::gemm::Epilogue<float> ep;  // the same product as DenseLayer::forward
    ep.bias = d.b.data();
    ep.relu = d.relu;
    kernels::gemm::gemm(kernels::gemm::Trans::no, kernels::gemm::Trans::no, n, d.out, d.in, cur.data(), d.in,
                        d.w.data(), d.out, out.data(), d.out, ep);
    cur.swap(out);
  }
  if (plan.softmax) {
    const int k = plan.classes();
    for (int i = 0; i < n; ++i) {
      float* r = cur.data() + std::size_t(i) * k;
      const float m = *std::max_element(r, r + k);
      double z = 0;
      for (int j = 0; j < k; ++j) z += std::exp(double(r[j] - m));
      for (int j = 0; j < k; ++j) r[j] = float(std::exp(double(r[j] - m)) / z);
    }
  }
  return cur;
}

// The head, in fp32: the bridge (GlobalAvgPool or Flatten) of the last conv stage's output
// features [n][h][w][c], then run_dense.
inline std::vector<float> run_head(const InferencePlan& plan, const std::vector<float>& features, int n, int h, int w,
                                   int c) {
  std::vector<float> cur;
  if (plan.bridge == Bridge::global_avg_pool) {
    cur.assign(std::size_t(n) * c, 0.0f);
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < h * w; ++p)
        for (int f = 0; f < c; ++f) cur[std::size_t(i) * c + f] += features[(std::size_t(i) * h * w + p) * c + f];
    for (float& v : cur) v /= float(h * w);
  } else {
    cur.assign(features.begin(), features.begin() + std::ptrdiff_t(std::size_t(n) * h * w * c));
  }
  return run_dense(plan, std::move(cur), n);
}

// Softmax (or, without one, the scores) of images x [n][h][w][c], n x classes, in fp32: the
// figure a quantised plan is compared with. Kernel is the convolution variant (Naive, the
// reference, by default); observe(i, values, count) sees conv stage i's output (after its ReLU
// and pool), which is how calibration reads the ranges.
template <class Kernel = kernels::Naive, class Observe>
std::vector<float> run_fp32(const InferencePlan& plan, const float* x, int n, Observe&& observe) {
  std::vector<float> cur(x, x + std::size_t(n) * plan.h * plan.w * plan.c), out;
  int h = plan.h, w = plan.w, c = plan.c;
  kernels::Workspace<float> ws;
  for (std::size_t i = 0; i < plan.convs.size(); ++i) {
    const PlanConv& s = plan.convs[i];
    kernels::ConvGeometry g = s.g;
    g.n = n;
    HUBBLE_CHECK(g.h == h && g.w == w && g.c == c, "inference plan: ", s.name, " expects ", g.h, "x", g.w, "x", g.c,
                 " inputs, not ", h, "x", w, "x", c);
    out.assign(g.out_size(), 0.0f);
    Kernel::forward(g, cur.data(), s.w.data(), s.b.data(), out.data(), ws);
    if (s.relu)
      for (float& v : out) v = std::max(v, 0.0f);
    h = g.oh, w = g.ow, c = g.f;
    if (s.pool) {
      cur.assign(std::size_t(n) * (h / s.pool) * (w / s.pool) * c, 0.0f);
      max_pool(out.data(), n, h, w, c, s.pool, cur.data());
      h /= s.pool, w /= s.pool;
    } else {
      cur.swap(out);
    }
    observe(i, static_cast<const float*>(cur.data()), cur.size());
  }
  return run_head(plan, cur, n, h, w, c);
}

template <class Kernel = kernels::Naive>
std::vector<float> run_fp32(const InferencePlan& plan, const float* x, int n) {
  return run_fp32<Kernel>(plan, x, n, [](std::size_t, const float*, std::size_t) {});
}

}  // namespace hubble::lowp
