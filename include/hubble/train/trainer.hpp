#pragma once
// train::Trainer — the training loop behind examples/galaxy10_train.cpp, as library code so
// tests can drive it with tiny networks.
//
//   train::TrainConfig cfg = train::config_from(train::paper_recipe());
//   cfg.out_dir = "runs/x";                                  // checkpoints + metrics.jsonl
//   train::Trainer<PaperNet> trainer(net, cfg, callbacks);
//   train::FitResult r = trainer.fit(images, split.train, split.validation);
//   train::Evaluation e = trainer.evaluate(test_images, all_indices, cfg.tta);
//
// Exactness. Everything random in an epoch is derived from (seed, epoch): the order of the
// training images and the on-the-fly dihedral views. Dropout draws from the network's own
// streams, which checkpoints save, and the learning rate is a function of the optimiser's step
// count, which checkpoints save too. So a run resumed from the checkpoint of epoch k continues
// bit for bit like the uninterrupted run, provided it uses the same settings and the same
// number of OpenMP threads (threads split some sums differently).
//
// Per epoch, with out_dir set: `last.h5` (always) and `best.h5` (when the epoch is the best so
// far: highest validation accuracy, or lowest training loss without a validation set) are
// written atomically, best first; `metrics.jsonl` (one JSON object per epoch) is rewritten
// atomically from the history held in the checkpoint, so it always agrees with `last.h5`.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/core/shape.hpp"
#include "hubble/data/augment.hpp"
#include "hubble/data/image_set.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/io/text_file.hpp"
#include "hubble/metrics/classification.hpp"
#include "hubble/metrics/json.hpp"
#include "hubble/network/loss.hpp"
#include "hubble/optim/adam.hpp"
#include "hubble/optim/rmsprop.hpp"
#include "hubble/optim/sgd.hpp"
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
  int repeats = 1;
  bool tta = false;
  std::uint64_t seed = 1;
  int threads = 0;                    // OpenMP threads; 0 leaves OpenMP's default
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
  return c;
}

// The settings that decide the numbers a run computes, as checkpoint metadata ("train/..."):
// resuming with any of them changed would not continue the same run.
inline std::map<std::string, std::string> fingerprint(const TrainConfig& c) {
  std::string weights;
  for (double w : c.class_weights) {
    if (!weights.empty()) weights += ',';
    weights += json::number(w);
  }
  return {{"train/recipe", c.recipe},
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
}

// Progress inside an epoch, after each batch.
struct BatchProgress {
  int epoch = 0, epochs = 0;         // 1-based epoch
  int batch = 0, batches = 0;        // 1-based batch of this epoch
  long long images = 0, epoch_images = 0;
  double loss = 0, accuracy = 0;     // running means over this epoch so far
  double images_per_second = 0, elapsed_seconds = 0, eta_seconds = 0;  // eta: rest of this epoch
  double lr = 0;
};

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

struct Callbacks {
  std::function<void(const BatchProgress&)> on_batch;   // after every training batch
  std::function<void(const EpochRecord&)> on_epoch;     // after validation and checkpoints
  std::function<void(const std::string&)> on_message;   // notes: resuming, warnings
  std::function<bool()> should_stop;                    // polled after every batch (Ctrl-C)
};

struct FitResult {
  std::vector<EpochRecord> history;  // all epochs, including those before a resume
  int start_epoch = 0;               // epochs already done when this fit() began
  int best_epoch = 0;                // 1-based; 0 when none
  double best_value = std::numeric_limits<double>::quiet_NaN();  // val accuracy or train loss
  bool interrupted = false;          // should_stop() said so; the epoch in progress was abandoned
};

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

template <class Net>
class Trainer {
 public:
  using T = typename Net::scalar;
  using OptimizerVariant = std::variant<Adam<T>, SGD<T>, RMSprop<T>>;

  Trainer(Net& net, TrainConfig config, Callbacks callbacks = {})
      : net_(net), cfg_(std::move(config)), cb_(std::move(callbacks)), opt_(make_optimizer(cfg_)) {
    HUBBLE_CHECK(cfg_.epochs >= 0, "train: epochs must be >= 0, not ", cfg_.epochs);
    HUBBLE_CHECK(cfg_.batch_size > 0, "train: batch size must be positive, not ", cfg_.batch_size);
    HUBBLE_CHECK(cfg_.lr > 0 && std::isfinite(cfg_.lr), "train: learning rate must be positive, not ", cfg_.lr);
    HUBBLE_CHECK(cfg_.repeats > 0, "train: repeats must be positive, not ", cfg_.repeats);
    HUBBLE_CHECK(cfg_.label_smoothing >= 0 && cfg_.label_smoothing < 1, "train: label smoothing must be in [0, 1), not ",
                 cfg_.label_smoothing);
    HUBBLE_CHECK(cfg_.threads >= 0, "train: threads must be >= 0, not ", cfg_.threads);
    HUBBLE_CHECK(cfg_.warmup_epochs >= 0 && cfg_.final_lr_fraction >= 0 && cfg_.final_lr_fraction <= 1,
                 "train: warm-up epochs must be >= 0 and the final lr fraction in [0, 1]");
    if (cfg_.threads > 0) omp_set_num_threads(cfg_.threads);
  }

  const TrainConfig& config() const { return cfg_; }
  OptimizerState<T>& optimizer() {
    return std::visit([](auto& o) -> OptimizerState<T>& { return o; }, opt_);
  }

  // The learning rate of update number `step` (0-based) of a run with `steps_per_epoch`.
  double learning_rate(long long step, long long steps_per_epoch) const {
    if (cfg_.schedule == Schedule::constant) return cfg_.lr;
    const double warm = cfg_.warmup_epochs * double(steps_per_epoch);
    const double total = double(cfg_.epochs) * double(steps_per_epoch);
    if (double(step) < warm) return cfg_.lr * double(step + 1) / warm;
    const double progress = std::clamp((double(step) - warm) / std::max(1.0, total - warm - 1.0), 0.0, 1.0);
    const double f = cfg_.final_lr_fraction;
    return cfg_.lr * (f + (1.0 - f) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
  }

  // The training order of epoch `epoch` (0-based) over n images (each `repeats` times).
  static std::vector<int> epoch_order(int n, int repeats, std::uint64_t seed, int epoch) {
    std::vector<int> order;
    order.reserve(std::size_t(n) * std::size_t(repeats));
    for (int r = 0; r < repeats; ++r)
      for (int i = 0; i < n; ++i) order.push_back(i);
    Rng rng = stream(seed, epoch, 1);
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[std::size_t(rng.below(i))]);  // Fisher-Yates
    return order;
  }
  // The stream of purpose `salt` for epoch `epoch`: (seed, epoch, salt) -> independent Rng.
  static Rng stream(std::uint64_t seed, int epoch, std::uint64_t salt) {
    return Rng(seed).split(0x5EED).split(std::uint64_t(epoch) * 16 + salt);
  }

  // Trains on images[train], validating on images[validation] (may be empty) after every epoch.
  FitResult fit(const data::ImageSet& images, const std::vector<int>& train, const std::vector<int>& validation) {
    check_images(images, "training");
    HUBBLE_CHECK(!train.empty(), "train: the training set is empty");
    for (const std::vector<int>* list : {&train, &validation})
      for (int i : *list) HUBBLE_CHECK(i >= 0 && i < images.size(), "train: image index ", i, " outside the set of ", images.size());

    // The items one epoch draws from: each training image, or (paper, rot4) each image in its
    // 4 rotations, item 4k + r = image train[k] turned by r * 90 degrees. The rotation is applied
    // when the batch is built, so the x4 set is never stored (full Galaxy10: 2.8 GB saved).
    const int per_image = cfg_.augment == Augment::rot4 ? 4 : 1;
    HUBBLE_CHECK(per_image == 1 || images.height == images.width, "train: rot4 needs square images, not ",
                 images.height, " x ", images.width);
    const int base = int(train.size()) * per_image;
    const long long per_epoch = (long long)base * cfg_.repeats;
    const long long steps_per_epoch = (per_epoch + cfg_.batch_size - 1) / cfg_.batch_size;

    FitResult result;
    const bool has_val = !validation.empty();
    std::map<std::string, std::string> meta = fingerprint(cfg_);
    meta["train/train_images"] = std::to_string(train.size());
    meta["train/validation_images"] = std::to_string(validation.size());
    if (cfg_.schedule == Schedule::cosine) meta["train/epochs"] = std::to_string(cfg_.epochs);
    const int threads = cfg_.threads > 0 ? cfg_.threads : omp_get_max_threads();

    if (!cfg_.out_dir.empty()) {
      std::filesystem::create_directories(cfg_.out_dir);
      remove_stale_temporaries();
    }
    const std::string last_path = path_in_out("last.h5"), best_path = path_in_out("best.h5");
    if (cfg_.resume) {
      HUBBLE_CHECK(!cfg_.out_dir.empty(), "train: resume needs an output folder");
      HUBBLE_CHECK(std::filesystem::exists(last_path), last_path, ": nothing to resume (no checkpoint there)");
      CheckpointData d = load_checkpoint(last_path, net_, &optimizer());
      std::string mismatches;
      for (const auto& [key, value] : meta) {
        const std::string saved = d.meta(key, "(unset)");
        if (saved != value) mismatches += "\n  " + key.substr(6) + ": checkpoint " + saved + ", now " + value;
      }
      HUBBLE_CHECK(mismatches.empty(), last_path, ": cannot resume with different settings:", mismatches,
                   "\n(use the original settings, or start a new run in another folder)");
      const std::string saved_threads = d.meta("train/threads");
      if (saved_threads != std::to_string(threads) && cb_.on_message)
        cb_.on_message("note: the checkpoint was trained with " + saved_threads + " threads, now " +
                       std::to_string(threads) + "; the result will not match an uninterrupted run bit for bit");
      result.start_epoch = int(d.epoch);
      result.history = history_from(d);
      result.best_epoch = int(d.value("best_epoch", 0));
      result.best_value = d.value("best_value", std::numeric_limits<double>::quiet_NaN());
      HUBBLE_CHECK(int(result.history.size()) == result.start_epoch, last_path, ": history holds ",
                   result.history.size(), " epochs but the checkpoint is at epoch ", result.start_epoch);
      if (cb_.on_message)
        cb_.on_message("resuming from " + last_path + " after epoch " + std::to_string(d.epoch) + " of " +
                       std::to_string(cfg_.epochs));
    } else if (!cfg_.out_dir.empty()) {
      HUBBLE_CHECK(!std::filesystem::exists(last_path), cfg_.out_dir,
                   ": already holds a run (last.h5); resume it or choose another output folder");
    }

    Tensor<T> x;
    std::vector<int> batch_index, batch_labels;
    std::vector<data::Dihedral> views;
    LossOptions loss_options{cfg_.label_smoothing, cfg_.class_weights};
    using clock = std::chrono::steady_clock;

    for (int epoch = result.start_epoch; epoch < cfg_.epochs; ++epoch) {
      const auto t0 = clock::now();
      const std::vector<int> order = epoch_order(base, cfg_.repeats, cfg_.seed, epoch);
      std::vector<data::Dihedral> epoch_views;
      if (cfg_.augment == Augment::dihedral) {
        Rng aug = stream(cfg_.seed, epoch, 2);
        epoch_views.reserve(order.size());
        for (std::size_t k = 0; k < order.size(); ++k) epoch_views.push_back(data::random_dihedral(aug));
      }
      double loss_sum = 0, lr = 0;
      long long correct = 0, seen = 0;
      const int batches = int(steps_per_epoch);
      for (int b = 0; b < batches; ++b) {
        const std::size_t first = std::size_t(b) * std::size_t(cfg_.batch_size);
        const std::size_t count = std::min<std::size_t>(std::size_t(cfg_.batch_size), order.size() - first);
        batch_index.resize(count);
        batch_labels.resize(count);
        views.clear();
        for (std::size_t k = 0; k < count; ++k) {
          const int item = order[first + k];
          batch_index[k] = train[std::size_t(item / per_image)];
          batch_labels[k] = images.labels[std::size_t(batch_index[k])];
          if (!epoch_views.empty()) views.push_back(epoch_views[first + k]);
          else if (per_image == 4) views.push_back(data::Dihedral(item % 4));
        }
        data::to_tensor(images, std::span<const int>(batch_index), x, std::span<const data::Dihedral>(views));
        lr = learning_rate(optimizer().steps, steps_per_epoch);
        const BatchStats s = std::visit(
            [&](auto& o) {
              o.set_learning_rate(lr);
              return net_.train_step(x, std::span<const int>(batch_labels), o, loss_options);
            },
            opt_);
        loss_sum += s.loss * s.count;
        correct += s.correct;
        seen += s.count;
        if (cb_.on_batch) {
          BatchProgress p;
          p.epoch = epoch + 1;
          p.epochs = cfg_.epochs;
          p.batch = b + 1;
          p.batches = batches;
          p.images = seen;
          p.epoch_images = per_epoch;
          p.loss = loss_sum / double(seen);
          p.accuracy = double(correct) / double(seen);
          p.elapsed_seconds = std::chrono::duration<double>(clock::now() - t0).count();
          p.images_per_second = p.elapsed_seconds > 0 ? double(seen) / p.elapsed_seconds : 0;
          p.eta_seconds = p.images_per_second > 0 ? double(per_epoch - seen) / p.images_per_second : 0;
          p.lr = lr;
          cb_.on_batch(p);
        }
        if (cb_.should_stop && cb_.should_stop()) {
          result.interrupted = true;
          return result;
        }
      }
      const double train_seconds = std::chrono::duration<double>(clock::now() - t0).count();

      EpochRecord rec;
      rec.epoch = epoch + 1;
      rec.train_loss = loss_sum / double(seen);
      rec.train_accuracy = double(correct) / double(seen);
      rec.lr = lr;
      rec.images_per_second = train_seconds > 0 ? double(seen) / train_seconds : 0;
      if (has_val) {
        const Evaluation e = evaluate(images, validation, cfg_.tta);
        rec.val_loss = e.loss;
        rec.val_accuracy = e.accuracy;
      }
      if (cb_.should_stop && cb_.should_stop()) {  // stopped during validation: not a complete epoch
        result.interrupted = true;
        return result;
      }
      const double value = has_val ? rec.val_accuracy : rec.train_loss;
      rec.best = result.best_epoch == 0 || std::isnan(result.best_value) ||
                 (has_val ? value > result.best_value : value < result.best_value);
      if (rec.best) {
        result.best_epoch = rec.epoch;
        result.best_value = value;
      }
      rec.seconds = std::chrono::duration<double>(clock::now() - t0).count();
      result.history.push_back(rec);

      if (!cfg_.out_dir.empty()) {
        CheckpointData d;
        d.epoch = epoch + 1;
        d.rngs["epoch_streams_root"] = Rng(cfg_.seed).split(0x5EED).state();
        d.metadata = cfg_.metadata;
        for (const auto& [k, v] : meta) d.metadata[k] = v;
        d.metadata["train/threads"] = std::to_string(threads);
        d.metadata["train/best_metric"] = has_val ? "validation accuracy" : "training loss";
        d.values["best_epoch"] = {double(result.best_epoch)};
        d.values["best_value"] = {result.best_value};
        store_history(result.history, d);
        if (rec.best) save_checkpoint(best_path, net_, &optimizer(), d);
        save_checkpoint(last_path, net_, &optimizer(), d);
        write_jsonl(result.history);
      }
      if (cb_.on_epoch) cb_.on_epoch(rec);
    }
    return result;
  }

  // Loss, accuracy and predictions of the network on images[indices] in eval mode (no dropout).
  // With tta, the softmax probabilities are averaged over the 8 dihedral views of each image.
  Evaluation evaluate(const data::ImageSet& images, const std::vector<int>& indices, bool tta) {
    return evaluate_network(net_, images, indices, tta, cfg_.batch_size, cb_.should_stop);
  }

  static Evaluation evaluate_network(Net& net, const data::ImageSet& images, const std::vector<int>& indices, bool tta,
                                     int batch_size, const std::function<bool()>& should_stop = {}) {
    check_images(images, "evaluation");
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

  // The history stored in a checkpoint (training/history/<field>).
  static std::vector<EpochRecord> history_from(const CheckpointData& d) {
    std::vector<EpochRecord> h;
    const auto get = [&](const std::string& f) -> const std::vector<double>& {
      static const std::vector<double> none;
      const auto it = d.values.find("history/" + f);
      return it == d.values.end() ? none : it->second;
    };
    const auto& epoch = get("epoch");
    for (std::size_t i = 0; i < epoch.size(); ++i) {
      EpochRecord r;
      const auto at = [&](const std::string& f) {
        const auto& v = get(f);
        return i < v.size() ? v[i] : std::numeric_limits<double>::quiet_NaN();
      };
      r.epoch = int(epoch[i]);
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

 private:
  static OptimizerVariant make_optimizer(const TrainConfig& c) {
    switch (c.optimizer) {
      case OptimizerKind::sgd: {
        typename SGD<T>::Options o;
        o.lr = c.lr;
        o.momentum = c.momentum;
        return SGD<T>(o);
      }
      case OptimizerKind::rmsprop: {
        typename RMSprop<T>::Options o;
        o.lr = c.lr;
        return RMSprop<T>(o);
      }
      case OptimizerKind::adam:
      default: {
        typename Adam<T>::Options o;
        o.lr = c.lr;
        o.weight_decay = c.weight_decay;
        return Adam<T>(o);
      }
    }
  }

  static void check_images(const data::ImageSet& images, const char* what) {
    using S = typename Net::input_shape;
    HUBBLE_CHECK(images.height == S::h && images.width == S::w && images.channels == S::c, "train: the ", what,
                 " images are ", images.height, "x", images.width, "x", images.channels, " but the network takes ",
                 S::h, "x", S::w, "x", S::c);
    for (int l : images.labels)
      HUBBLE_CHECK(l >= 0 && l < Net::classes, "train: label ", l, " outside the network's 0..", Net::classes - 1);
  }

  std::string path_in_out(const std::string& name) const {
    return cfg_.out_dir.empty() ? std::string() : (std::filesystem::path(cfg_.out_dir) / name).string();
  }

  // A run killed while writing leaves "<name>.tmp<pid>" files; they are never valid files.
  void remove_stale_temporaries() const {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(cfg_.out_dir, ec)) {
      const std::string name = entry.path().filename().string();
      for (const char* stem : {"last.h5.tmp", "best.h5.tmp", "metrics.jsonl.tmp"})
        if (name.rfind(stem, 0) == 0) std::filesystem::remove(entry.path(), ec);
    }
  }

  static void store_history(const std::vector<EpochRecord>& h, CheckpointData& d) {
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

  void write_jsonl(const std::vector<EpochRecord>& h) const {
    std::string text;
    for (const EpochRecord& r : h) text += r.to_json().str() + "\n";
    io::write_text_atomically(path_in_out("metrics.jsonl"), text);
  }

 private:
  Net& net_;
  TrainConfig cfg_;
  Callbacks cb_;
  OptimizerVariant opt_;
};

}  // namespace hubble::train
