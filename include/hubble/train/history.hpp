#pragma once
// The history of a run: one EpochRecord per finished epoch, kept in every checkpoint as the
// columns training/history/<field> (float64[epochs]) and written as metrics.jsonl lines.
//
//   store_history(history, data);                      // before save_checkpoint(...)
//   std::vector<EpochRecord> h = history_from(data, "runs/x/last.h5");
//
// Numbers read back from a checkpoint are doubles that a damaged or hand-made file can set to
// anything; those that become ints (epochs) are checked to be finite whole numbers in range
// first (checkpoint_whole_number), with an Error naming the file, never converted blindly.
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/metrics/json.hpp"

namespace hubble::train {

// One line of the history (and of metrics.jsonl).
struct EpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;
  double val_loss = std::numeric_limits<double>::quiet_NaN(), val_accuracy = std::numeric_limits<double>::quiet_NaN();
  double lr = 0;          // learning rate of the epoch's last step
  double seconds = 0;     // wall time of training + validation
  double images_per_second = 0;
  bool best = false;

  json::Object to_json() const {
    return json::Object()
        .add("epoch", epoch)
        .add("train_loss", train_loss)
        .add("train_accuracy", train_accuracy)
        .add("val_loss", val_loss)
        .add("val_accuracy", val_accuracy)
        .add("lr", lr)
        .add("seconds", seconds)
        .add("images_per_second", images_per_second)
        .add("best", best);
  }
};

// `value`, read from checkpoint `source` as `what`, as an int in [lo, hi]; an Error naming the
// file when it is not a finite whole number in that range (a cast would be undefined behaviour).
inline int checkpoint_whole_number(double value, long long lo, long long hi, const std::string& source,
                                   const std::string& what) {
  if (!(std::isfinite(value) && value == std::floor(value) && value >= double(lo) && value <= double(hi))) {
    std::ostringstream v;
    v.precision(17);
    v << value;
    ::hubble::detail::fail(source, ": ", what, " is ", v.str(), ", not a whole number in ", lo, "..", hi,
                           " (damaged checkpoint?)");
  }
  return int(value);
}
inline int checkpoint_whole_number(long long value, long long lo, long long hi, const std::string& source,
                                   const std::string& what) {
  HUBBLE_CHECK(value >= lo && value <= hi, source, ": ", what, " is ", value, ", not in ", lo, "..", hi,
               " (damaged checkpoint?)");
  return int(value);
}

// Adds the history's columns to `d.values` (history/<field>).
inline void store_history(const std::vector<EpochRecord>& h, CheckpointData& d) {
  std::map<std::string, std::vector<double>> cols;
  for (const EpochRecord& r : h) {
    cols["epoch"].push_back(r.epoch);
    cols["train_loss"].push_back(r.train_loss);
    cols["train_accuracy"].push_back(r.train_accuracy);
    cols["val_loss"].push_back(r.val_loss);
    cols["val_accuracy"].push_back(r.val_accuracy);
    cols["lr"].push_back(r.lr);
    cols["seconds"].push_back(r.seconds);
    cols["images_per_second"].push_back(r.images_per_second);
    cols["best"].push_back(r.best ? 1.0 : 0.0);
  }
  for (auto& [k, v] : cols) d.values["history/" + k] = std::move(v);
}

// The history stored in a checkpoint (training/history/<field>); `source` names the checkpoint
// in errors. Record i must be epoch i + 1: the history of one run, in order. A column shorter
// than history/epoch reads as NaN.
inline std::vector<EpochRecord> history_from(const CheckpointData& d, const std::string& source = "checkpoint") {
  const auto column = [&](const std::string& f) -> const std::vector<double>& {
    static const std::vector<double> none;
    const auto it = d.values.find("history/" + f);
    return it == d.values.end() ? none : it->second;
  };
  const std::vector<double>& epoch = column("epoch");
  std::vector<EpochRecord> h;
  for (std::size_t i = 0; i < epoch.size(); ++i) {
    const auto at = [&](const std::string& f) {
      const auto& v = column(f);
      return i < v.size() ? v[i] : std::numeric_limits<double>::quiet_NaN();
    };
    EpochRecord r;
    r.epoch = checkpoint_whole_number(epoch[i], 1, std::numeric_limits<int>::max(), source,
                                      "training/history/epoch[" + std::to_string(i) + "]");
    HUBBLE_CHECK(std::size_t(r.epoch) == i + 1, source, ": training/history/epoch[", i, "] is ", r.epoch,
                 ", expected ", i + 1, " (the history must list epochs 1, 2, ... in order; damaged checkpoint?)");
    r.train_loss = at("train_loss");
    r.train_accuracy = at("train_accuracy");
    r.val_loss = at("val_loss");
    r.val_accuracy = at("val_accuracy");
    r.lr = at("lr");
    r.seconds = at("seconds");
    r.images_per_second = at("images_per_second");
    r.best = at("best") == 1.0;
    h.push_back(r);
  }
  return h;
}

// metrics.jsonl: one JSON object per line, one line per epoch.
inline std::string history_jsonl(const std::vector<EpochRecord>& h) {
  std::string text;
  for (const EpochRecord& r : h) text += r.to_json().str() + "\n";
  return text;
}

}  // namespace hubble::train
