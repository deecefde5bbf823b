#pragma once
// Stratified, seeded train/validation split.
//
// For every class c (in label order) the indices with label c are shuffled (Fisher-Yates with
// a hubble::Rng stream of their own, derived from the seed and c) and the first
// round(validation_fraction * n_c) go to validation, the rest to training. So each class keeps
// its proportion, the result depends only on (labels, fraction, seed), and a class's split does
// not change when another class gains or loses images. Both lists come back sorted ascending;
// shuffle per epoch in the training loop.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"

namespace hubble::data {

struct Split {
  std::vector<int> train, validation;
};

// Fisher-Yates with hubble::Rng (std::shuffle's use of the generator is implementation-defined,
// so results would differ between standard libraries).
template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[std::size_t(rng.below(i))]);
}

namespace detail {
// The indices of each class (label order), each class shuffled with its own stream of `seed`.
inline std::vector<std::vector<int>> shuffled_by_class(const std::vector<int>& labels, std::uint64_t seed,
                                                       const char* caller) {
  int classes = 0;
  for (int l : labels) {
    HUBBLE_CHECK(l >= 0, caller, ": negative label ", l);
    classes = std::max(classes, l + 1);
  }
  std::vector<std::vector<int>> by_class(static_cast<std::size_t>(classes));
  for (std::size_t i = 0; i < labels.size(); ++i) by_class[std::size_t(labels[i])].push_back(int(i));
  for (int c = 0; c < classes; ++c) {
    Rng rng = Rng(seed).split(std::uint64_t(c) + 1);
    shuffle(by_class[std::size_t(c)], rng);
  }
  return by_class;
}
}  // namespace detail

inline Split stratified_split(const std::vector<int>& labels, double validation_fraction, std::uint64_t seed) {
  HUBBLE_CHECK(validation_fraction >= 0.0 && validation_fraction <= 1.0,
               "stratified_split: validation_fraction ", validation_fraction, " is outside [0, 1]");
  Split split;
  for (const std::vector<int>& members : detail::shuffled_by_class(labels, seed, "stratified_split")) {
    const auto n_val = std::size_t(std::llround(validation_fraction * double(members.size())));
    split.validation.insert(split.validation.end(), members.begin(), members.begin() + std::ptrdiff_t(n_val));
    split.train.insert(split.train.end(), members.begin() + std::ptrdiff_t(n_val), members.end());
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

// Fold `fold` of a stratified `folds`-way partition, as a Split: validation = that fold, training =
// the other folds. Each class is shuffled as in stratified_split (same streams) and dealt round
// robin, so the folds of a class differ in size by at most one and, over fold = 0 .. folds-1,
// every image is validated exactly once. Depends only on (labels, folds, fold, seed).
inline Split stratified_fold(const std::vector<int>& labels, int folds, int fold, std::uint64_t seed) {
  HUBBLE_CHECK(folds >= 2, "stratified_fold: need at least 2 folds, not ", folds);
  HUBBLE_CHECK(fold >= 0 && fold < folds, "stratified_fold: fold ", fold, " is outside 0 .. ", folds - 1);
  Split split;
  for (const std::vector<int>& members : detail::shuffled_by_class(labels, seed, "stratified_fold"))
    for (std::size_t k = 0; k < members.size(); ++k)
      (int(k % std::size_t(folds)) == fold ? split.validation : split.train).push_back(members[k]);
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

}  // namespace hubble::data
