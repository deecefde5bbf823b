#pragma once
// Scoring a network on a set of images: loss, accuracy, per-image probabilities, predictions.
//
//   train::Evaluation e = train::evaluate_network(net, images, indices, /*tta=*/true, /*batch=*/32);
//   std::cout << metrics::format_table(e.report(names));
#include <algorithm>
#include <cmath>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/shape.hpp"
#include "hubble/core/tensor.hpp"
#include "hubble/data/augment.hpp"
#include "hubble/data/image_set.hpp"
#include "hubble/metrics/classification.hpp"

namespace hubble::train {

// Evaluation of a set: per-image probabilities and predictions, loss and accuracy.
struct Evaluation {
  int classes = 0;
  std::vector<int> labels, predictions;
  std::vector<float> probabilities;  // size() x classes
  double loss = 0;                   // mean cross-entropy (no smoothing, no class weights)
  double accuracy = 0;
  int size() const { return int(labels.size()); }
  metrics::Report report(std::vector<std::string> names = {}) const {
    return metrics::report(labels, predictions, classes, std::move(names));
  }
};

// Refuses images of another size than the network's input, and labels outside its classes.
template <class Net>
void check_images(const data::ImageSet& images, const char* what) {
  using S = typename Net::input_shape;
  HUBBLE_CHECK(images.height == S::h && images.width == S::w && images.channels == S::c, "train: the ", what,
               " images are ", images.height, "x", images.width, "x", images.channels, " but the network takes ",
               S::h, "x", S::w, "x", S::c);
  for (int l : images.labels)
    HUBBLE_CHECK(l >= 0 && l < Net::classes, "train: label ", l, " outside the network's 0..", Net::classes - 1);
}

// Loss, accuracy and predictions of `net` on images[indices] in eval mode (no dropout), in
// batches of `batch_size`. With tta, the softmax probabilities are averaged over the 8 dihedral
// views of each image. should_stop() is polled before each batch; a stop scores what was done.
template <class Net>
Evaluation evaluate_network(Net& net, const data::ImageSet& images, const std::vector<int>& indices, bool tta,
                            int batch_size, const std::function<bool()>& should_stop = {}) {
  using T = typename Net::scalar;
  check_images<Net>(images, "evaluation");
  HUBBLE_CHECK(batch_size > 0, "train: batch size must be positive, not ", batch_size);
  constexpr int K = Net::classes;
  Evaluation e;
  e.classes = K;
  e.probabilities.assign(indices.size() * K, 0.0f);
  Tensor<T> x;
  std::vector<double> probs(std::size_t(batch_size) * K);
  std::vector<data::Dihedral> views;
  const int n_views = tta ? 8 : 1;
  double loss_sum = 0;
  long long correct = 0;
  for (std::size_t first = 0; first < indices.size(); first += std::size_t(batch_size)) {
    if (should_stop && should_stop()) break;
    const std::size_t count = std::min<std::size_t>(std::size_t(batch_size), indices.size() - first);
    const std::span<const int> idx(indices.data() + first, count);
    std::fill(probs.begin(), probs.end(), 0.0);
    for (int v = 0; v < n_views; ++v) {
      views.assign(count, data::all_dihedral[std::size_t(v)]);
      data::to_tensor(images, idx, x, tta ? std::span<const data::Dihedral>(views) : std::span<const data::Dihedral>());
      net.forward(x, Mode::eval);
      const Tensor<T>& z = net.logits();
      for (std::size_t k = 0; k < count; ++k) {
        const T* row = z.sample(int(k));
        const double m = double(*std::max_element(row, row + K));
        double sum = 0;
        for (int j = 0; j < K; ++j) sum += std::exp(double(row[j]) - m);
        for (int j = 0; j < K; ++j) probs[k * K + std::size_t(j)] += std::exp(double(row[j]) - m) / sum / n_views;
      }
    }
    for (std::size_t k = 0; k < count; ++k) {
      const int y = images.labels[std::size_t(idx[k])];
      const double* p = probs.data() + k * K;
      const int pred = int(std::max_element(p, p + K) - p);
      e.labels.push_back(y);
      e.predictions.push_back(pred);
      for (int j = 0; j < K; ++j) e.probabilities[(first + k) * K + std::size_t(j)] = float(p[j]);
      loss_sum += -std::log(std::max(p[y], 1e-300));
      correct += pred == y;
    }
  }
  e.probabilities.resize(e.labels.size() * K);
  e.loss = e.labels.empty() ? 0.0 : loss_sum / double(e.labels.size());
  e.accuracy = e.labels.empty() ? 0.0 : double(correct) / double(e.labels.size());
  return e;
}

}  // namespace hubble::train
