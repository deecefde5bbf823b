#pragma once
// Finite-difference gradient checking, for layers and whole networks (use T = double).
//
// check_layer_gradients(layer, x): takes a random upstream gradient r and the scalar
//   L(x, params) = sum(r * layer.forward(x)), then compares the analytic dL/dx and dL/dparams
//   from layer.backward() with central differences (L(v + h) - L(v - h)) / 2h.
// check_network_gradients(net, x, labels): the same for the softmax cross-entropy loss of a
//   network, over every parameter array.
// Both sides run in opt.mode: in train mode Dropout draws masks and BatchNorm uses the batch's
// statistics, in eval mode neither (the gradients of the network as it predicts).
// Each probe runs on a copy of the layer/network, so a Dropout mask (its Rng state is copied
// too) is the same in every evaluation. Kinks (ReLU at 0, max-pool ties) are avoided with
// probability 1 by random inputs. Reported error per entry: |a - n| / max(|a| + |n|, floor).
// Arrays larger than max_entries are probed at max_entries random indices (drawn with
// replacement from opt.seed, so an index may come twice), not all of them.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "hubble/core/rng.hpp"
#include "hubble/core/shape.hpp"
#include "hubble/core/tensor.hpp"
#include "hubble/network/loss.hpp"

namespace hubble {

struct GradientCheckOptions {
  double step = 1e-6;                 // h
  std::size_t max_entries = 64;       // per array; 0 checks every entry
  double floor = 1e-7;                // denominator floor for the relative error
  Mode mode = Mode::train;            // for the analytic and the numeric gradients alike
  std::uint64_t seed = 7;
};

struct GradientCheckResult {
  double max_relative_error = 0.0;
  double max_absolute_error = 0.0;
  std::string worst;                  // "input[12]", "kernel[3]", "conv2d_1/bias[0]"
  std::size_t entries_checked = 0;
  bool passed(double tolerance) const { return entries_checked > 0 && max_relative_error <= tolerance; }
};

namespace detail {
inline void record(GradientCheckResult& r, const std::string& what, std::size_t i, double analytic, double numeric,
                   double floor) {
  const double abs_err = std::abs(analytic - numeric);
  const double rel = abs_err / std::max(std::abs(analytic) + std::abs(numeric), floor);
  ++r.entries_checked;
  r.max_absolute_error = std::max(r.max_absolute_error, abs_err);
  if (rel > r.max_relative_error) { r.max_relative_error = rel; r.worst = what + "[" + std::to_string(i) + "]"; }
}
// Which entries of an array of n to probe: all, or max_entries drawn uniformly at random
// (with replacement).
inline std::vector<std::size_t> probe_indices(std::size_t n, std::size_t max_entries, Rng& rng) {
  std::vector<std::size_t> idx;
  if (max_entries == 0 || n <= max_entries) { for (std::size_t i = 0; i < n; ++i) idx.push_back(i); return idx; }
  for (std::size_t i = 0; i < max_entries; ++i) idx.push_back(rng.below(n));
  return idx;
}
}  // namespace detail

template <class Layer, class T>
GradientCheckResult check_layer_gradients(const Layer& layer, const Tensor<T>& x, GradientCheckOptions opt = {}) {
  Rng rng(opt.seed);
  Layer probe = layer;
  Tensor<T> y;
  probe.forward(x, y, opt.mode);
  Tensor<T> r(y.batch(), y.height(), y.width(), y.channels());
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = T(rng.uniform(-1, 1));
  Tensor<T> dx;
  Layer analytic = layer;
  analytic.forward(x, y, opt.mode);
  analytic.backward(x, y, r, &dx);

  // L(x) on a fresh copy of the original layer, with its parameters optionally nudged.
  auto loss = [&](const Tensor<T>& input, const char* param, std::size_t pi, double delta) {
    Layer l = layer;
    if (param)
      l.for_each_parameter([&](const char* name, T* v, T*, std::size_t) { if (std::string(name) == param) v[pi] += T(delta); });
    Tensor<T> out;
    l.forward(input, out, opt.mode);
    double s = 0;
    for (std::size_t i = 0; i < out.size(); ++i) s += double(out[i]) * double(r[i]);
    return s;
  };

  GradientCheckResult res;
  Tensor<T> xp = x;
  for (std::size_t i : detail::probe_indices(x.size(), opt.max_entries, rng)) {
    const T orig = xp[i];
    xp[i] = T(orig + opt.step); const double up = loss(xp, nullptr, 0, 0);
    xp[i] = T(orig - opt.step); const double down = loss(xp, nullptr, 0, 0);
    xp[i] = orig;
    detail::record(res, "input", i, double(dx[i]), (up - down) / (2 * opt.step), opt.floor);
  }
  analytic.for_each_parameter([&](const char* name, T*, T* grad, std::size_t n) {
    for (std::size_t i : detail::probe_indices(n, opt.max_entries, rng)) {
      const double num = (loss(x, name, i, opt.step) - loss(x, name, i, -opt.step)) / (2 * opt.step);
      detail::record(res, name, i, double(grad[i]), num, opt.floor);
    }
  });
  return res;
}

template <class Net, class T>
GradientCheckResult check_network_gradients(const Net& net, const Tensor<T>& x, std::span<const int> labels,
                                            GradientCheckOptions opt = {}, const LossOptions& loss_opt = {}) {
  Rng rng(opt.seed);
  Net analytic = net;
  analytic.compute_gradients(x, labels, loss_opt, opt.mode);
  auto loss = [&](std::size_t param, std::size_t i, double delta) {
    Net n = net;
    auto ps = n.parameters();
    ps[param].value[i] += T(delta);
    n.forward(x, opt.mode);
    return softmax_cross_entropy(n.logits(), labels, loss_opt, nullptr).loss;
  };
  GradientCheckResult res;
  auto params = analytic.parameters();
  for (std::size_t p = 0; p < params.size(); ++p)
    for (std::size_t i : detail::probe_indices(params[p].size, opt.max_entries, rng)) {
      const double num = (loss(p, i, opt.step) - loss(p, i, -opt.step)) / (2 * opt.step);
      detail::record(res, params[p].name, i, double(params[p].grad[i]), num, opt.floor);
    }
  return res;
}

}  // namespace hubble
