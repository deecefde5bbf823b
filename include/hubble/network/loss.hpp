#pragma once
// Categorical cross-entropy fused with softmax, computed from the logits z for stability:
//   p = softmax(z),  t = (1 - eps) onehot(label) + eps / K   (eps = label smoothing, K classes)
//   loss_i = w_label * (logsumexp(z_i) - sum_k t_k z_ik)       (w = optional class weights)
//   loss   = mean_i loss_i     (divided by N even with class weights; PyTorch's
//                               CrossEntropyLoss(weight=...) divides by sum_i w_label_i instead)
//   dloss/dz_i = w_label * (p_i - t_i) / N
// The fused gradient avoids softmax's Jacobian and the log of a tiny probability.
#include <algorithm>
#include <cmath>
#include <span>
#include <type_traits>
#include <vector>

#include "hubble/core/tensor.hpp"

namespace hubble {

struct LossOptions {
  double label_smoothing = 0.0;        // 0: plain one-hot targets (the paper)
  std::vector<double> class_weights;   // empty: every class weighs 1
};

// Loss and accuracy over a batch.
struct BatchStats {
  double loss = 0.0;      // mean loss per sample
  double accuracy = 0.0;  // fraction of argmax(logits) == label
  int correct = 0;
  int count = 0;
};

template <class T>
int argmax_row(const T* row, int k) {
  return int(std::max_element(row, row + k) - row);
}

// Fills dlogits (same shape as logits) when it is not null.
template <class T>
BatchStats softmax_cross_entropy(const Tensor<T>& logits, std::span<const int> labels, const LossOptions& opt,
                                 std::type_identity_t<Tensor<T>>* dlogits) {
  const int n = logits.batch(), k = int(logits.sample_size());
  HUBBLE_CHECK(int(labels.size()) == n, "softmax_cross_entropy: ", labels.size(), " labels for a batch of ", n);
  HUBBLE_CHECK(opt.class_weights.empty() || int(opt.class_weights.size()) == k, "softmax_cross_entropy: ",
               opt.class_weights.size(), " class weights for ", k, " classes");
  if (dlogits) dlogits->resize(n, logits.height(), logits.width(), logits.channels());
  BatchStats s;
  s.count = n;
  std::vector<double> p(k);
  for (int i = 0; i < n; ++i) {
    const int y = labels[i];
    HUBBLE_CHECK(y >= 0 && y < k, "softmax_cross_entropy: label ", y, " outside 0..", k - 1);
    const T* z = logits.sample(i);
    const double m = double(*std::max_element(z, z + k));
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += (p[j] = std::exp(double(z[j]) - m));
    const double lse = m + std::log(sum);
    const double w = opt.class_weights.empty() ? 1.0 : opt.class_weights[y];
    const double eps = opt.label_smoothing;
    double target_dot_z = 0;
    for (int j = 0; j < k; ++j) {
      const double t = (j == y ? 1.0 - eps : 0.0) + eps / k;
      target_dot_z += t * double(z[j]);
      if (dlogits) dlogits->sample(i)[j] = T(w * (p[j] / sum - t) / n);
    }
    s.loss += w * (lse - target_dot_z);
    s.correct += argmax_row(z, k) == y;
  }
  s.loss /= n;
  s.accuracy = double(s.correct) / n;
  return s;
}

}  // namespace hubble
