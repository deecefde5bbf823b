#pragma once
// train::TrainConfig — the settings of a training run — and what of them a checkpoint records.
//
//   train::TrainConfig cfg = train::config_from(train::paper_recipe());
//   cfg.out_dir = "runs/x";
//   check_config(cfg);                         // hubble::Error for impossible settings
//   std::map<std::string, std::string> fp = fingerprint(cfg);   // "train/..." -> value
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/data/survey_augment.hpp"
#include "hubble/metrics/json.hpp"
#include "hubble/train/recipes.hpp"

namespace hubble::train {

struct TrainConfig {
  std::string recipe = "custom";
  int epochs = 50;
  int batch_size = 32;
  OptimizerKind optimizer = OptimizerKind::adam;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.9;
  Schedule schedule = Schedule::constant;
  double warmup_epochs = 0.0;
  double final_lr_fraction = 0.0;
  double label_smoothing = 0.0;
  std::vector<double> class_weights;  // empty: all 1
  Augment augment = Augment::none;
  data::SurveyJitter jitter;          // augment == survey: the ranges each view is drawn from
  int repeats = 1;
  bool tta = false;
  std::uint64_t seed = 1;
  int threads = 0;                    // OpenMP threads; 0 leaves OpenMP's default
  int shards = 0;                     // > 0: the sharded schedule (train/sharded.hpp); 0: one sequential order
  std::string out_dir;                // empty: no files written
  bool resume = false;                // continue from out_dir/last.h5
  std::map<std::string, std::string> metadata;  // stored in every checkpoint (class names, data, ...)
};

inline TrainConfig config_from(const Recipe& r) {
  TrainConfig c;
  c.recipe = r.name;
  c.epochs = r.epochs;
  c.batch_size = r.batch_size;
  c.optimizer = r.optimizer;
  c.lr = r.lr;
  c.weight_decay = r.weight_decay;
  c.momentum = r.momentum;
  c.schedule = r.schedule;
  c.warmup_epochs = r.warmup_epochs;
  c.final_lr_fraction = r.final_lr_fraction;
  c.label_smoothing = r.label_smoothing;
  c.augment = r.augment;
  c.repeats = r.repeats;
  c.tta = r.tta;
  c.jitter.photometric_probability = r.survey_photometric;
  c.class_weights = r.class_weights;
  return c;
}

// Refuses settings no run can use.
inline void check_config(const TrainConfig& c) {
  HUBBLE_CHECK(c.epochs >= 0, "train: epochs must be >= 0, not ", c.epochs);
  HUBBLE_CHECK(c.batch_size > 0, "train: batch size must be positive, not ", c.batch_size);
  HUBBLE_CHECK(c.lr > 0 && std::isfinite(c.lr), "train: learning rate must be positive, not ", c.lr);
  HUBBLE_CHECK(c.repeats > 0, "train: repeats must be positive, not ", c.repeats);
  HUBBLE_CHECK(c.label_smoothing >= 0 && c.label_smoothing < 1, "train: label smoothing must be in [0, 1), not ",
               c.label_smoothing);
  HUBBLE_CHECK(c.threads >= 0, "train: threads must be >= 0, not ", c.threads);
  HUBBLE_CHECK(c.shards >= 0, "train: shards must be >= 0, not ", c.shards);
  HUBBLE_CHECK(c.warmup_epochs >= 0 && c.final_lr_fraction >= 0 && c.final_lr_fraction <= 1,
               "train: warm-up epochs must be >= 0 and the final lr fraction in [0, 1]");
}

// The settings that decide the numbers a run computes, as checkpoint metadata ("train/..."):
// resuming with any of them changed would not continue the same run.
inline std::map<std::string, std::string> fingerprint(const TrainConfig& c) {
  std::string weights;
  for (double w : c.class_weights) {
    if (!weights.empty()) weights += ',';
    weights += json::number(w);
  }
  std::map<std::string, std::string> f = {{"train/recipe", c.recipe},
                                          {"train/batch_size", std::to_string(c.batch_size)},
                                          {"train/optimizer", name_of(c.optimizer)},
                                          {"train/lr", json::number(c.lr)},
                                          {"train/weight_decay", json::number(c.weight_decay)},
                                          {"train/momentum", json::number(c.momentum)},
                                          {"train/schedule", name_of(c.schedule)},
                                          {"train/warmup_epochs", json::number(c.warmup_epochs)},
                                          {"train/final_lr_fraction", json::number(c.final_lr_fraction)},
                                          {"train/label_smoothing", json::number(c.label_smoothing)},
                                          {"train/class_weights", weights},
                                          {"train/augment", name_of(c.augment)},
                                          {"train/repeats", std::to_string(c.repeats)},
                                          {"train/seed", std::to_string(c.seed)}};
  if (c.schedule == Schedule::cosine) f["train/epochs"] = std::to_string(c.epochs);  // the curve's length
  if (c.shards > 0) f["train/shards"] = std::to_string(c.shards);  // absent: the sequential schedule
  return f;
}

}  // namespace hubble::train
