#pragma once
// Calibration for post-training quantisation: which range [lo, hi] of a tensor's real values the
// 256 codes of an 8-bit integer should cover, chosen from the values a trained network actually
// produces on training images.
//
// A range too wide wastes codes on values that never occur (every step is coarser); a range too
// narrow clips the rare large values. The three methods trade these differently:
//   minmax      lo = min, hi = max of everything seen. Nothing is clipped; one outlier can
//               stretch the step for all the other values.
//   percentile  hi = the p-th percentile of the positive values (lo likewise of the negative
//               ones): clips the rarest (1 - p) of them, e.g. p = 0.9999.
//   entropy     hi = the threshold whose quantised histogram loses the least information against
//               the full one: minimise KL(P || Q) over candidate thresholds, where P is the
//               histogram clipped at the threshold (the clipped mass added to its last bin) and
//               Q is P squeezed into `levels` codes and spread back uniformly over the bins that
//               were non-zero (the method NVIDIA's TensorRT introduced for int8).
//
// RangeObserver streams values into a histogram of fixed bin count whose range doubles, by
// merging neighbouring bins, whenever a value falls outside it: every value lands in exactly one
// bin, nothing is stored per value, and a whole calibration set passes through once.
//   positive values -> pos_[b] for b = floor(x / width),  width = range / bins
//   negative values -> neg_[b] for b = floor(-x / width)
// Activations after ReLU (and the input image) are never negative, so neg_ stays empty for them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"

namespace hubble::lowp {

enum class CalibrationMethod { minmax, percentile, entropy };

inline const char* name_of(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::minmax:
      return "minmax";
    case CalibrationMethod::percentile:
      return "percentile";
    case CalibrationMethod::entropy:
      return "entropy";
  }
  return "?";
}

inline CalibrationMethod parse_calibration_method(const std::string& s) {
  if (s == "minmax") return CalibrationMethod::minmax;
  if (s == "percentile") return CalibrationMethod::percentile;
  if (s == "entropy") return CalibrationMethod::entropy;
  detail::fail("unknown calibration method '", s, "' (choose minmax, percentile or entropy)");
}

struct Range {
  float lo = 0, hi = 0;
};

class RangeObserver {
 public:
  static constexpr int bins = 2048;

  RangeObserver() : pos_(bins, 0), neg_(bins, 0) {}

  void observe(std::span<const float> values) {
    for (float v : values) {
      HUBBLE_CHECK(std::isfinite(v), "calibration: a non-finite value (", v, ") among the observed activations");
      min_ = std::min(min_, v);
      max_ = std::max(max_, v);
      const float a = std::fabs(v);
      if (a > 0 && (width_ == 0 || a >= width_ * bins)) grow_to(a);
      if (v > 0) ++pos_[bin_of(v)];
      else if (v < 0) ++neg_[bin_of(-v)];
      else ++zeros_;
      ++count_;
    }
  }

  std::uint64_t count() const { return count_; }
  float min() const { return min_; }
  float max() const { return max_; }
  // Width of one bin (0 until a non-zero value was seen).
  double bin_width() const { return width_; }
  std::span<const std::uint64_t> positive_histogram() const { return pos_; }

  // The range `method` chooses. `percentile` is p for the percentile method; `levels` is the
  // number of codes one side of zero gets in the entropy method (256 for u8 of non-negative
  // data, 128 for each side of a signed range).
  Range range(CalibrationMethod method, double percentile = 0.9999, int levels = 256) const {
    HUBBLE_CHECK(count_ > 0, "calibration: no values were observed");
    HUBBLE_CHECK(percentile > 0.5 && percentile <= 1.0, "calibration: the percentile must be in (0.5, 1], not ",
                 percentile);
    HUBBLE_CHECK(levels >= 2 && levels <= bins, "calibration: levels must be in [2, ", bins, "], not ", levels);
    const float lo = std::min(min_, 0.0f), hi = std::max(max_, 0.0f);  // the range always holds 0
    if (method == CalibrationMethod::minmax || width_ == 0) return {lo, hi};
    const auto side = [&](const std::vector<std::uint64_t>& h, float extreme) -> float {
      if (extreme == 0) return 0;
      const float t =
          method == CalibrationMethod::percentile ? percentile_threshold(h, percentile) : entropy_threshold(h, levels);
      return std::min(t, extreme);
    };
    return {-side(neg_, -lo), side(pos_, hi)};
  }

 private:
  std::size_t bin_of(float a) const {
    return std::min<std::size_t>(std::size_t(double(a) / width_), std::size_t(bins - 1));
  }
  // Doubles the range until a fits, merging bins pairwise (bin b joins bin b / 2).
  void grow_to(float a) {
    if (width_ == 0) {
      // The first non-zero value sets a range a power of two above it, so that ranges of
      // different observers of the same data agree.
      width_ = std::ldexp(1.0, int(std::ceil(std::log2(double(a) * 1.0000001)))) / bins;
      return;
    }
    while (a >= width_ * bins) {
      for (auto* h : {&pos_, &neg_}) {
        for (int b = 0; b < bins / 2; ++b) (*h)[b] = (*h)[2 * b] + (*h)[2 * b + 1];
        std::fill(h->begin() + bins / 2, h->end(), 0);
      }
      width_ *= 2;
    }
  }

  // The smallest bin edge below which a share p of the side's values lie (zeros count below).
  float percentile_threshold(const std::vector<std::uint64_t>& h, double p) const {
    std::uint64_t total = zeros_;
    for (auto c : h) total += c;
    const double want = p * double(total);
    double seen = double(zeros_);
    for (int b = 0; b < bins; ++b) {
      seen += double(h[b]);
      if (seen >= want) return float((b + 1) * width_);
    }
    return float(bins * width_);
  }

  // The KL-divergence threshold (see the top of the file); candidates are bin edges from
  // `levels` bins on.
  float entropy_threshold(const std::vector<std::uint64_t>& h, int levels) const {
    int last = bins;
    while (last > 0 && h[last - 1] == 0) --last;
    if (last <= levels) return float(last * width_);  // every occupied bin gets its own code
    double best_kl = INFINITY;
    int best = last;
    std::vector<double> p(static_cast<std::size_t>(last)), q(static_cast<std::size_t>(last));
    for (int i = levels; i <= last; ++i) {
      // P: the first i bins, with everything beyond added to the last one (what clipping does).
      double outliers = 0;
      for (int b = i; b < last; ++b) outliers += double(h[b]);
      for (int b = 0; b < i; ++b) p[b] = double(h[b]);
      p[i - 1] += outliers;
      // Q: the first i bins (unclipped) merged into `levels` groups, each group's mass spread
      // evenly over the bins where P is non-zero.
      for (int g = 0; g < levels; ++g) {
        const int start = int(std::int64_t(g) * i / levels), stop = int(std::int64_t(g + 1) * i / levels);
        double mass = 0;
        int nonzero = 0;
        for (int b = start; b < stop; ++b) {
          mass += double(h[b]);
          nonzero += p[b] != 0;
        }
        for (int b = start; b < stop; ++b) q[b] = p[b] != 0 ? mass / nonzero : 0.0;
      }
      double p_sum = 0, q_sum = 0;
      for (int b = 0; b < i; ++b) p_sum += p[b], q_sum += q[b];
      if (q_sum == 0) continue;
      double kl = 0;
      for (int b = 0; b < i; ++b) {
        if (p[b] == 0) continue;
        const double pb = p[b] / p_sum, qb = q[b] / q_sum;
        // A bin P has and Q lacks (a clipped last bin whose group held nothing else) costs as if
        // Q had a small floor there, as the reference implementation's smoothing does.
        kl += pb * std::log(pb / std::max(qb, 1e-12));
      }
      if (kl < best_kl) best_kl = kl, best = i;
    }
    return float(best * width_);
  }

  std::vector<std::uint64_t> pos_, neg_;
  std::uint64_t zeros_ = 0, count_ = 0;
  double width_ = 0;
  float min_ = INFINITY, max_ = -INFINITY;
};

}  // namespace hubble::lowp
