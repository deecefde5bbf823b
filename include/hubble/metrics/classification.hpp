#pragma once
// Classification metrics from a confusion matrix C (rows: true class, columns: predicted):
//   accuracy      = trace(C) / sum(C)
//   precision_k   = C_kk / sum_i C_ik     (of the images predicted k, the fraction that are k)
//   recall_k      = C_kk / sum_j C_kj     (of the images of class k, the fraction found)
//   f1_k          = 2 precision_k recall_k / (precision_k + recall_k)
//   macro_*       = unweighted mean over all K classes of the per-class figure
// A ratio whose denominator is 0 (a class never predicted, never present, or an F1 whose
// precision and recall are both 0) is defined as 0, as scikit-learn's zero_division=0 does, so
// such a class pulls the macro averages down instead of disappearing from them.
#include <algorithm>
#include <iomanip>
#include <sstream>
#include <span>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/metrics/json.hpp"

namespace hubble::metrics {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int classes = 0) : k_(classes), counts_(std::size_t(classes) * std::size_t(classes), 0) {
    HUBBLE_CHECK(classes >= 0, "ConfusionMatrix: negative class count ", classes);
  }

  void add(int truth, int predicted, long long count = 1) {
    HUBBLE_CHECK(truth >= 0 && truth < k_ && predicted >= 0 && predicted < k_, "ConfusionMatrix: pair (", truth, ", ",
                 predicted, ") outside 0..", k_ - 1);
    counts_[std::size_t(truth) * std::size_t(k_) + std::size_t(predicted)] += count;
  }
  void add(std::span<const int> truth, std::span<const int> predicted) {
    HUBBLE_CHECK(truth.size() == predicted.size(), "ConfusionMatrix: ", truth.size(), " labels but ", predicted.size(),
                 " predictions");
    for (std::size_t i = 0; i < truth.size(); ++i) add(truth[i], predicted[i]);
  }

  int classes() const { return k_; }
  long long operator()(int truth, int predicted) const {
    return counts_.at(std::size_t(truth) * std::size_t(k_) + std::size_t(predicted));
  }
  long long total() const {
    long long s = 0;
    for (const long long c : counts_) s += c;
    return s;
  }
  long long row_sum(int truth) const {
    long long s = 0;
    for (int j = 0; j < k_; ++j) s += (*this)(truth, j);
    return s;
  }
  long long column_sum(int predicted) const {
    long long s = 0;
    for (int i = 0; i < k_; ++i) s += (*this)(i, predicted);
    return s;
  }
  // Row-major K x K counts.
  const std::vector<long long>& counts() const { return counts_; }

 private:
  int k_;
  std::vector<long long> counts_;
};

// a / b, with 0 / 0 (and x / 0) defined as 0.
inline double safe_ratio(double a, double b) { return b == 0.0 ? 0.0 : a / b; }

struct ClassScores {
  double precision = 0, recall = 0, f1 = 0;
  long long support = 0;  // images of this class
  long long predicted = 0;  // images predicted as this class
};

struct Report {
  std::vector<std::string> class_names;
  ConfusionMatrix confusion;
  long long total = 0;
  double accuracy = 0;
  std::vector<ClassScores> per_class;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
};

// Class names default to "0", "1", ... when `names` is empty.
inline Report report(const ConfusionMatrix& c, std::vector<std::string> names = {}) {
  const int k = c.classes();
  if (names.empty())
    for (int i = 0; i < k; ++i) names.push_back(std::to_string(i));
  HUBBLE_CHECK(int(names.size()) == k, "metrics::report: ", names.size(), " class names for ", k, " classes");
  Report r;
  r.class_names = std::move(names);
  r.confusion = c;
  r.total = c.total();
  long long correct = 0;
  for (int i = 0; i < k; ++i) correct += c(i, i);
  r.accuracy = safe_ratio(double(correct), double(r.total));
  for (int i = 0; i < k; ++i) {
    ClassScores s;
    s.support = c.row_sum(i);
    s.predicted = c.column_sum(i);
    s.precision = safe_ratio(double(c(i, i)), double(s.predicted));
    s.recall = safe_ratio(double(c(i, i)), double(s.support));
    s.f1 = safe_ratio(2.0 * s.precision * s.recall, s.precision + s.recall);
    r.macro_precision += s.precision;
    r.macro_recall += s.recall;
    r.macro_f1 += s.f1;
    r.per_class.push_back(s);
  }
  r.macro_precision = safe_ratio(r.macro_precision, k);
  r.macro_recall = safe_ratio(r.macro_recall, k);
  r.macro_f1 = safe_ratio(r.macro_f1, k);
  return r;
}

inline Report report(std::span<const int> truth, std::span<const int> predicted, int classes,
                     std::vector<std::string> names = {}) {
  ConfusionMatrix c(classes);
  c.add(truth, predicted);
  return report(c, std::move(names));
}

// The per-class table:
//   class                            precision  recall      f1  support
//   0 Disturbed Galaxies                 0.812   0.750   0.780       40
//   ...
//   macro average                        ...
//   accuracy                                                0.853     400
inline std::string format_table(const Report& r) {
  std::size_t w = 13;
  for (std::size_t i = 0; i < r.class_names.size(); ++i)
    w = std::max(w, r.class_names[i].size() + std::to_string(i).size() + 1);
  std::ostringstream os;
  os << std::fixed << std::setprecision(3);
  os << std::left << std::setw(int(w)) << "class" << std::right << std::setw(11) << "precision" << std::setw(9)
     << "recall" << std::setw(9) << "f1" << std::setw(9) << "support" << "\n";
  for (std::size_t i = 0; i < r.per_class.size(); ++i) {
    const ClassScores& s = r.per_class[i];
    os << std::left << std::setw(int(w)) << (std::to_string(i) + " " + r.class_names[i]) << std::right << std::setw(11)
       << s.precision << std::setw(9) << s.recall << std::setw(9) << s.f1 << std::setw(9) << s.support << "\n";
  }
  os << std::left << std::setw(int(w)) << "macro average" << std::right << std::setw(11) << r.macro_precision
     << std::setw(9) << r.macro_recall << std::setw(9) << r.macro_f1 << std::setw(9) << r.total << "\n";
  os << std::left << std::setw(int(w)) << "accuracy" << std::right << std::setw(29) << r.accuracy << std::setw(9)
     << r.total << "\n";
  return os.str();
}

// The confusion matrix with class names on the rows (truth) and class numbers on the columns
// (prediction), so a 10-class table stays narrow.
inline std::string format_confusion(const Report& r) {
  const int k = r.confusion.classes();
  std::size_t w = 10;
  for (std::size_t i = 0; i < r.class_names.size(); ++i)
    w = std::max(w, r.class_names[i].size() + std::to_string(i).size() + 1);
  int cell = 4;
  for (const long long c : r.confusion.counts()) cell = std::max(cell, int(std::to_string(c).size()) + 1);
  std::ostringstream os;
  os << std::left << std::setw(int(w)) << "true \\ predicted" << std::right;
  for (int j = 0; j < k; ++j) os << std::setw(cell) << j;
  os << "\n";
  for (int i = 0; i < k; ++i) {
    os << std::left << std::setw(int(w)) << (std::to_string(i) + " " + r.class_names[std::size_t(i)]) << std::right;
    for (int j = 0; j < k; ++j) os << std::setw(cell) << r.confusion(i, j);
    os << "\n";
  }
  return os.str();
}

// {"accuracy": ..., "macro_precision": ..., "macro_recall": ..., "macro_f1": ..., "count": N,
//  "per_class": [{"class": 0, "name": ..., "precision": ..., "recall": ..., "f1": ..., "support": ...}, ...],
//  "class_names": [...], "confusion_matrix": [[...], ...]}   (rows: true class)
inline json::Object to_json(const Report& r) {
  std::vector<json::Raw> per_class, rows;
  const int k = r.confusion.classes();
  for (int i = 0; i < k; ++i) {
    const ClassScores& s = r.per_class[std::size_t(i)];
    per_class.push_back(json::Object()
                            .add("class", i)
                            .add("name", r.class_names[std::size_t(i)])
                            .add("precision", s.precision)
                            .add("recall", s.recall)
                            .add("f1", s.f1)
                            .add("support", s.support));
    std::vector<long long> row;
    for (int j = 0; j < k; ++j) row.push_back(r.confusion(i, j));
    rows.push_back({json::render(row)});
  }
  return json::Object()
      .add("accuracy", r.accuracy)
      .add("macro_precision", r.macro_precision)
      .add("macro_recall", r.macro_recall)
      .add("macro_f1", r.macro_f1)
      .add("count", r.total)
      .add("per_class", per_class)
      .add("class_names", r.class_names)
      .add("confusion_matrix", rows);
}

}  // namespace hubble::metrics
