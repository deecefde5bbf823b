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
// fit() is a loop over epochs and batches with hooks (Callbacks); the rest lives beside it:
//   train/config.hpp      TrainConfig, config_from, fingerprint (the settings a checkpoint records)
//   train/history.hpp     EpochRecord, the history kept in checkpoints and metrics.jsonl
//   train/run_folder.hpp  the output folder: its lock, last.h5 / best.h5, resuming, metrics.jsonl
//   train/evaluation.hpp  Evaluation, evaluate_network
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
//
// Sharded schedule (cfg.shards = S > 0; train/sharded.hpp). Each step sums S micro-batch
// gradients in a fixed binary tree, so the same run on 1, 2, 4, ... S processes (set_exchange,
// hubble/distributed/mpi.hpp) gives the same weights bit for bit. With several processes, the
// training list may hold -1 for the images of shards this process does not own (it never reads
// them); only rank 0 validates and writes the output folder, and the others start from rank 0's
// state (a resumed run too).
//
// Divergence. A batch whose loss is NaN or infinite, or weights that are no longer finite at
// the end of an epoch, stop fit() with NonFiniteLoss (a hubble::Error) naming the epoch and the
// batch. Nothing of that epoch is saved: last.h5 and best.h5 stay those of the last complete one.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/core/shape.hpp"
#include "hubble/data/augment.hpp"
#include "hubble/data/galaxy10.hpp"
#include "hubble/data/image_set.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/network/loss.hpp"
#include "hubble/optim/adam.hpp"
#include "hubble/optim/rmsprop.hpp"
#include "hubble/optim/sgd.hpp"
#include "hubble/train/config.hpp"
#include "hubble/train/evaluation.hpp"
#include "hubble/train/history.hpp"
#include "hubble/train/recipes.hpp"
#include "hubble/train/run_folder.hpp"
#include "hubble/train/sharded.hpp"

namespace hubble::train {

// Progress inside an epoch, after each batch.
struct BatchProgress {
  int epoch = 0, epochs = 0;         // 1-based epoch
  int batch = 0, batches = 0;        // 1-based batch of this epoch
  long long images = 0, epoch_images = 0;
  double loss = 0, accuracy = 0;     // running means over this epoch so far
  double images_per_second = 0, elapsed_seconds = 0, eta_seconds = 0;  // eta: rest of this epoch
  double lr = 0;
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

// The training diverged: a loss or a weight is NaN or infinite. epoch and batch are 1-based.
class NonFiniteLoss : public Error {
 public:
  NonFiniteLoss(const std::string& message, int at_epoch, int at_batch) : Error(message), epoch(at_epoch), batch(at_batch) {}
  int epoch, batch;
};

template <class Net>
class Trainer {
 public:
  using T = typename Net::scalar;
  using OptimizerVariant = std::variant<Adam<T>, SGD<T>, RMSprop<T>>;

  Trainer(Net& net, TrainConfig config, Callbacks callbacks = {})
      : net_(net), cfg_(std::move(config)), cb_(std::move(callbacks)), opt_(make_optimizer(cfg_)),
        loss_options_{cfg_.label_smoothing, cfg_.class_weights} {
    check_config(cfg_);
    if (cfg_.threads > 0) omp_set_num_threads(cfg_.threads);
  }

  const TrainConfig& config() const { return cfg_; }
  // The processes a sharded run spreads over (kept by reference; default: this one alone).
  void set_exchange(Exchange& exchange) { exchange_ = &exchange; }
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
    if (cfg_.shards > 0) return fit_sharded(images, train, validation);
    const Plan plan = plan_for(images, train, validation);
    std::optional<RunFolder> folder;  // locked for the whole fit
    if (!cfg_.out_dir.empty()) folder.emplace(cfg_.out_dir);
    const RunFolder* out = folder ? &*folder : nullptr;
    FitResult result = begin(out, plan);
    for (int epoch = result.start_epoch; epoch < cfg_.epochs; ++epoch) {
      const auto t0 = clock::now();
      EpochRecord rec;
      rec.epoch = epoch + 1;
      if (!train_epoch(images, train, plan, rec, result, out) || !validate(images, validation, rec)) {
        result.interrupted = true;  // the epoch in progress is abandoned; last.h5 keeps the one before
        return result;
      }
      end_epoch(rec, plan, t0, result, out);
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
    return ::hubble::train::evaluate_network<Net>(net, images, indices, tta, batch_size, should_stop);
  }

  // The history stored in a checkpoint (training/history/<field>); see train/history.hpp.
  static std::vector<EpochRecord> history_from(const CheckpointData& d, const std::string& source = "checkpoint") {
    return ::hubble::train::history_from(d, source);
  }

 private:
  using clock = std::chrono::steady_clock;

  // What every epoch of this fit() shares.
  struct Plan {
    // The items one epoch draws from: each training image, or (rot4) each image in its 4
    // rotations, item 4k + r = image train[k] turned by r * 90 degrees. The rotation is applied
    // when the batch is built, so the x4 set is never stored (full Galaxy10: 2.8 GB saved).
    int per_image = 1;
    int items = 0;
    long long per_epoch = 0;  // items x repeats
    int batches = 0;
    bool validating = false;
    std::map<std::string, std::string> settings;  // the fingerprint, with the set sizes
    int threads = 1;
  };

  Plan plan_for(const data::ImageSet& images, const std::vector<int>& train, const std::vector<int>& validation) const {
    check_training_images(images);
    HUBBLE_CHECK(!train.empty(), "train: the training set is empty");
    for (const std::vector<int>* list : {&train, &validation})
      for (int i : *list) HUBBLE_CHECK(i >= 0 && i < images.size(), "train: image index ", i, " outside the set of ", images.size());
    Plan p = base_plan(images, train.size(), validation.size());
    p.batches = int((p.per_epoch + cfg_.batch_size - 1) / cfg_.batch_size);
    return p;
  }

  // Survey augmentation cuts its views from a wider source image; every other mode trains on the
  // network's own input size.
  void check_training_images(const data::ImageSet& images) const {
    constexpr int side = Net::input_shape::h;
    if (cfg_.augment != Augment::survey || (images.height == side && images.width == side)) {
      check_images<Net>(images, "training");
      return;
    }
    HUBBLE_CHECK(images.height == images.width && images.height > side && images.channels == Net::input_shape::c,
                 "train: survey augmentation needs square ", Net::input_shape::c, "-band images of at least ", side,
                 " pixels a side, not ", images.height, " x ", images.width, " x ", images.channels);
  }

  // What both schedules' plans share; batches is left to each.
  Plan base_plan(const data::ImageSet& images, std::size_t train_size, std::size_t validation_size) const {
    Plan p;
    p.per_image = cfg_.augment == Augment::rot4 ? 4 : 1;
    HUBBLE_CHECK(p.per_image == 1 || images.height == images.width, "train: rot4 needs square images, not ",
                 images.height, " x ", images.width);
    p.items = int(train_size) * p.per_image;
    p.per_epoch = (long long)p.items * cfg_.repeats;
    p.validating = validation_size > 0;
    p.settings = fingerprint(cfg_);
    p.settings["train/train_images"] = std::to_string(train_size);
    p.settings["train/validation_images"] = std::to_string(validation_size);
    p.threads = cfg_.threads > 0 ? cfg_.threads : omp_get_max_threads();
    return p;
  }

  // A fresh run (refusing a folder that already holds one), or the state of the run resumed.
  FitResult begin(const RunFolder* folder, const Plan& plan) {
    FitResult result;
    if (!cfg_.resume) {
      if (folder) folder->refuse_existing_run();
      return result;
    }
    HUBBLE_CHECK(folder != nullptr, "train: resume needs an output folder");
    const RunState s = folder->resume(net_, optimizer(), plan.settings, cfg_.epochs);
    if (s.threads != std::to_string(plan.threads) && cb_.on_message)
      cb_.on_message("note: the checkpoint was trained with " + s.threads + " threads, now " +
                     std::to_string(plan.threads) + "; the result will not match an uninterrupted run bit for bit");
    result.start_epoch = s.epoch;
    result.history = s.history;
    result.best_epoch = s.best_epoch;
    result.best_value = s.best_value;
    if (cb_.on_message)
      cb_.on_message("resuming from " + folder->last_path() + " after epoch " + std::to_string(s.epoch) + " of " +
                     std::to_string(cfg_.epochs));
    return result;
  }

  // One pass over the training items in the order of epoch rec.epoch; false when should_stop()
  // asked to stop. Fills the record's training figures.
  bool train_epoch(const data::ImageSet& images, const std::vector<int>& train, const Plan& plan, EpochRecord& rec,
                   const FitResult& result, const RunFolder* folder) {
    const int epoch = rec.epoch - 1;
    const auto t0 = clock::now();
    const std::vector<int> order = epoch_order(plan.items, cfg_.repeats, cfg_.seed, epoch);
    const std::vector<data::Dihedral> views = epoch_views(order.size(), epoch);
    double loss_sum = 0, lr = 0;
    long long correct = 0, seen = 0;
    survey_base_ = stream(cfg_.seed, epoch, 3)();  // survey augmentation: this epoch's views
    for (int b = 0; b < plan.batches; ++b) {
      load_batch(images, train, plan, order, views, b);
      lr = learning_rate(optimizer().steps, plan.batches);
      const BatchStats s = step(lr);
      if (!std::isfinite(s.loss))
        diverged("the training loss became " + number_text(s.loss), rec.epoch, b + 1, plan.batches, lr, result, folder);
      loss_sum += s.loss * s.count;
      correct += s.correct;
      seen += s.count;
      report_batch(rec.epoch, b, plan, seen, loss_sum, correct, lr, t0);
      if (stop_requested()) return false;
    }
    const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    rec.train_loss = loss_sum / double(seen);
    rec.train_accuracy = double(correct) / double(seen);
    rec.lr = lr;
    rec.images_per_second = seconds > 0 ? double(seen) / seconds : 0;
    return true;
  }

  // Scores the validation set (if any) into the record; false when should_stop() asked to stop
  // meanwhile (the epoch is then not complete).
  bool validate(const data::ImageSet& images, const std::vector<int>& validation, EpochRecord& rec) {
    if (!validation.empty()) {
      // Survey views are cut from a wider source; the network is scored on the plain centre crop.
      constexpr int side = Net::input_shape::h;
      if (images.height != side && eval_source_ != &images) {
        eval_images_ = data::centre_crop(images, side);
        eval_source_ = &images;
      }
      const Evaluation e = evaluate(images.height != side ? eval_images_ : images, validation, cfg_.tta);
      rec.val_loss = e.loss;
      rec.val_accuracy = e.accuracy;
    }
    return !stop_requested();
  }

  // A complete epoch: is it the best so far, its checkpoints, the on_epoch hook.
  // on_batch's view of the epoch after its batch b (0-based): running means, speed and ETA.
  void report_batch(int epoch, int b, const Plan& plan, long long seen, double loss_sum, long long correct, double lr,
                    clock::time_point t0) const {
    if (!cb_.on_batch) return;
    BatchProgress p;
    p.epoch = epoch;
    p.epochs = cfg_.epochs;
    p.batch = b + 1;
    p.batches = plan.batches;
    p.images = seen;
    p.epoch_images = plan.per_epoch;
    p.loss = loss_sum / double(seen);
    p.accuracy = double(correct) / double(seen);
    p.elapsed_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    p.images_per_second = p.elapsed_seconds > 0 ? double(seen) / p.elapsed_seconds : 0;
    p.eta_seconds = p.images_per_second > 0 ? double(plan.per_epoch - seen) / p.images_per_second : 0;
    p.lr = lr;
    cb_.on_batch(p);
  }

  void end_epoch(EpochRecord& rec, const Plan& plan, clock::time_point t0, FitResult& result, const RunFolder* folder) {
    if (!weights_finite())  // checked before anything of this epoch is kept
      diverged("the weights are no longer finite", rec.epoch, plan.batches, plan.batches, rec.lr, result, folder);
    const double value = plan.validating ? rec.val_accuracy : rec.train_loss;
    rec.best = result.best_epoch == 0 || std::isnan(result.best_value) ||
               (plan.validating ? value > result.best_value : value < result.best_value);
    if (rec.best) {
      result.best_epoch = rec.epoch;
      result.best_value = value;
    }
    rec.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    result.history.push_back(rec);
    if (folder)
      folder->save_epoch(net_, optimizer(), checkpoint_data(rec.epoch, plan), result.history, result.best_epoch,
                         result.best_value);
    if (cb_.on_epoch) cb_.on_epoch(rec);
  }

  // The dihedral view of each item of epoch `epoch` (dihedral augmentation), drawn from the
  // epoch's own stream; empty otherwise.
  std::vector<data::Dihedral> epoch_views(std::size_t items, int epoch) const {
    std::vector<data::Dihedral> views;
    if (cfg_.augment != Augment::dihedral && cfg_.augment != Augment::survey) return views;
    Rng aug = stream(cfg_.seed, epoch, 2);
    views.reserve(items);
    for (std::size_t k = 0; k < items; ++k) views.push_back(data::random_dihedral(aug));
    return views;
  }

  // Batch b of the epoch's order into x_ and batch_labels_.
  void load_batch(const data::ImageSet& images, const std::vector<int>& train, const Plan& plan,
                  const std::vector<int>& order, const std::vector<data::Dihedral>& epoch_views, int b) {
    const std::size_t first = std::size_t(b) * std::size_t(cfg_.batch_size);
    const std::size_t count = std::min<std::size_t>(std::size_t(cfg_.batch_size), order.size() - first);
    load_micro_batch(images, train, plan, order, epoch_views, first, count);
  }

  // One optimiser update on the loaded batch at learning rate lr.
  BatchStats step(double lr) {
    return std::visit(
        [&](auto& o) {
          o.set_learning_rate(lr);
          return net_.train_step(x_, std::span<const int>(batch_labels_), o, loss_options_);
        },
        opt_);
  }

  // ---- the sharded schedule (train/sharded.hpp) -----------------------------------------------

  FitResult fit_sharded(const data::ImageSet& images, const std::vector<int>& train, const std::vector<int>& validation) {
    Exchange& ex = exchange();
    const bool root = ex.rank() == 0;
    check_sharding(cfg_.shards, cfg_.batch_size, ex.ranks());
    HUBBLE_CHECK(root || validation.empty(), "train: only rank 0 validates; rank ", ex.rank(), " was given ",
                 validation.size(), " validation images");
    const Plan plan = plan_sharded(images, train, validation);
    std::optional<RunFolder> folder;
    if (root && !cfg_.out_dir.empty()) folder.emplace(cfg_.out_dir);
    const RunFolder* out = folder ? &*folder : nullptr;
    FitResult result;
    if (root) result = begin(out, plan);
    share_start(result);  // every rank starts from rank 0's weights, optimiser state and epoch
    for (int epoch = result.start_epoch; epoch < cfg_.epochs; ++epoch) {
      const auto t0 = clock::now();
      EpochRecord rec;
      rec.epoch = epoch + 1;
      if (!train_epoch_sharded(images, train, plan, rec, result, out) || !validate(images, validation, rec)) {
        result.interrupted = true;
        return result;
      }
      end_epoch(rec, plan, t0, result, out);
    }
    return result;
  }

  Plan plan_sharded(const data::ImageSet& images, const std::vector<int>& train, const std::vector<int>& validation) const {
    check_training_images(images);
    HUBBLE_CHECK(!train.empty(), "train: the training set is empty");
    const ShardBlock mine = shard_block(cfg_.shards, exchange().rank(), exchange().ranks());
    for (std::size_t p = 0; p < train.size(); ++p) {
      const int i = train[p];
      if (i == -1 && !mine.owns(int(p % std::size_t(cfg_.shards)))) continue;  // another rank's image
      HUBBLE_CHECK(i >= 0 && i < images.size(), "train: image index ", i, " of training position ", p,
                   " outside the set of ", images.size());
    }
    for (int i : validation)
      HUBBLE_CHECK(i >= 0 && i < images.size(), "train: image index ", i, " outside the set of ", images.size());
    Plan p = base_plan(images, train.size(), validation.size());
    const long long largest_shard = (long long)shard_positions(int(train.size()), cfg_.shards, 0).size() * p.per_image * cfg_.repeats;
    const long long per_shard_batch = cfg_.batch_size / cfg_.shards;
    p.batches = int((largest_shard + per_shard_batch - 1) / per_shard_batch);
    return p;
  }

  // Rank 0's weights, moving statistics, optimiser state and finished epochs to every rank.
  void share_start(FitResult& result) {
    Exchange& ex = exchange();
    if (ex.ranks() == 1) return;
    OptimizerState<T>& opt = optimizer();
    auto params = net_.parameters();
    long long head[3] = {result.start_epoch, opt.steps, (long long)opt.slots.size()};
    ex.broadcast(std::as_writable_bytes(std::span<long long>(head, 3)));
    result.start_epoch = int(head[0]);
    opt.steps = head[1];
    if (ex.rank() != 0 && head[2] > 0) {
      HUBBLE_CHECK(head[2] == (long long)(params.size() * std::size_t(opt.slots_per_param())), "train: rank 0's ",
                   opt.name(), " state has ", head[2], " arrays, this network needs ", params.size() * std::size_t(opt.slots_per_param()));
      opt.slots.clear();
      for (const auto& p : params)
        for (int k = 0; k < opt.slots_per_param(); ++k) opt.slots.emplace_back(p.size, T(0));
    }
    for (auto& p : params) ex.broadcast(std::as_writable_bytes(std::span<T>(p.value, p.size)));
    for (auto& b : net_.buffers()) ex.broadcast(std::as_writable_bytes(std::span<T>(b.value, b.size)));
    for (auto& s : opt.slots) ex.broadcast(std::as_writable_bytes(std::span<T>(s)));
  }

  bool train_epoch_sharded(const data::ImageSet& images, const std::vector<int>& train, const Plan& plan,
                           EpochRecord& rec, const FitResult& result, const RunFolder* folder) {
    Exchange& ex = exchange();
    const int epoch = rec.epoch - 1, S = cfg_.shards, m = cfg_.batch_size / S;
    const ShardBlock mine = shard_block(S, ex.rank(), ex.ranks());
    const auto t0 = clock::now();
    std::vector<std::vector<int>> orders(static_cast<std::size_t>(S));
    std::vector<std::vector<data::Dihedral>> views(static_cast<std::size_t>(S));
    std::vector<long long> shard_items(static_cast<std::size_t>(S));
    for (int j = 0; j < S; ++j) {
      shard_items[std::size_t(j)] = (long long)shard_positions(int(train.size()), S, j).size() * plan.per_image * cfg_.repeats;
      if (!mine.owns(j)) continue;
      orders[std::size_t(j)] = shard_epoch_order(int(train.size()), plan.per_image, cfg_.repeats, S, j, cfg_.seed, epoch);
      if (cfg_.augment == Augment::dihedral || cfg_.augment == Augment::survey) {
        Rng aug = shard_view_stream(cfg_.seed, epoch, j);
        for (std::size_t k = 0; k < orders[std::size_t(j)].size(); ++k) views[std::size_t(j)].push_back(data::random_dihedral(aug));
      }
    }
    auto params = net_.parameters();
    auto buffers = net_.buffers();
    std::size_t values = 0;
    for (const auto& p : params) values += p.size;
    for (const auto& b : buffers) values += b.size;
    shard_sums_.assign(std::size_t(mine.count), std::vector<T>(values));
    param_offset_.assign(1, 0);  // parameter q's gradients sit at [param_offset_[q], param_offset_[q + 1])
    for (const auto& p : params) param_offset_.push_back(param_offset_.back() + p.size);
    layer_params_.assign(Net::layer_count, {0, 0});  // layer i's parameters: [first, end) of params
    for (std::size_t i = 0, q = 0; i < Net::layer_count; ++i) {
      const std::string prefix = Net::layer_names()[i] + "/";
      layer_params_[i].first = q;
      while (q < params.size() && params[q].name.rfind(prefix, 0) == 0) ++q;
      layer_params_[i].second = q;
    }
    stat_sums_.assign(std::size_t(mine.count), std::vector<double>(3));
    std::vector<std::vector<T>> moving_before;  // BatchNorm's moving statistics at the start of the step
    double loss_sum = 0, lr = 0;
    long long correct = 0, seen = 0;
    for (int b = 0; b < plan.batches; ++b) {
      lr = learning_rate(optimizer().steps, plan.batches);
      long long n = 0;
      for (int j = 0; j < S; ++j) n += std::clamp<long long>(shard_items[std::size_t(j)] - (long long)b * m, 0, m);
      moving_before.clear();
      for (const auto& buf : buffers) moving_before.emplace_back(buf.value, buf.value + buf.size);
      // How many items each of this rank's shards gives this step; the last one that gives any is
      // back-propagated with the hook that sends each layer's summed gradients at once.
      std::vector<std::size_t> counts(std::size_t(mine.count), 0);
      int last = -1;
      for (int k = 0; k < mine.count; ++k) {
        const std::size_t first = std::size_t(b) * std::size_t(m), size = orders[std::size_t(mine.first + k)].size();
        counts[std::size_t(k)] = first < size ? std::min<std::size_t>(std::size_t(m), size - first) : 0;
        if (counts[std::size_t(k)] > 0) last = k;
        std::fill(stat_sums_[std::size_t(k)].begin(), stat_sums_[std::size_t(k)].end(), 0.0);
        if (counts[std::size_t(k)] == 0)  // this shard has run out: it adds nothing
          std::fill(shard_sums_[std::size_t(k)].begin(), shard_sums_[std::size_t(k)].end(), T(0));
      }
      const bool overlap = last >= 0 && ex.overlaps();
      for (int k = 0; k < mine.count; ++k) {
        const std::size_t count = counts[std::size_t(k)];
        if (count == 0) continue;
        const int j = mine.first + k;
        std::vector<T>& sum = shard_sums_[std::size_t(k)];
        std::vector<double>& stats = stat_sums_[std::size_t(k)];
        survey_base_ = shard_view_stream(cfg_.seed, epoch, j).split(3)();
        load_micro_batch(images, train, plan, orders[std::size_t(j)], views[std::size_t(j)], std::size_t(b) * std::size_t(m), count);
        std::vector<Rng*> streams = net_.random_streams();
        for (std::size_t l = 0; l < streams.size(); ++l)
          *streams[l] = shard_dropout_stream(cfg_.seed, optimizer().steps, j, int(l));
        for (std::size_t q = 0; q < buffers.size(); ++q) std::copy(moving_before[q].begin(), moving_before[q].end(), buffers[q].value);
        const T scale = T(double(count) / double(n));  // 1/S exactly when every shard is full
        const auto copy_scaled = [&](std::size_t first_param, std::size_t end_param) {
          for (std::size_t q = first_param; q < end_param; ++q)
            for (std::size_t i = 0; i < params[q].size; ++i) sum[param_offset_[q] + i] = params[q].grad[i] * scale;
        };
        if (overlap && k == last)  // each layer's gradients leave as soon as its backward is done
          net_.set_backward_hook([&](std::size_t layer) {
            const auto [first_param, end_param] = layer_params_[layer];
            if (first_param == end_param) return;
            copy_scaled(first_param, end_param);
            const std::size_t lo = param_offset_[first_param], hi = param_offset_[end_param];
            tree_sum_range(shard_sums_, mine.count, lo, hi);
            ex.start_sum(std::span<T>(shard_sums_[0].data() + lo, hi - lo));
          });
        const BatchStats s = net_.compute_gradients(x_, std::span<const int>(batch_labels_), loss_options_);
        net_.set_backward_hook({});
        if (!(overlap && k == last)) copy_scaled(0, params.size());
        std::size_t at = param_offset_.back();
        for (const auto& buf : buffers)
          for (std::size_t i = 0; i < buf.size; ++i) sum[at++] = buf.value[i] * scale;
        stats[0] = s.loss * double(s.count);
        stats[1] = double(s.correct);
      }
      if (overlap) {  // the gradients are on their way; the moving statistics follow, then wait
        const std::size_t lo = param_offset_.back();
        tree_sum_range(shard_sums_, mine.count, lo, values);
        if (values > lo) ex.start_sum(std::span<T>(shard_sums_[0].data() + lo, values - lo));
        ex.wait();
      } else {
        tree_sum(shard_sums_, mine.count);
        ex.sum(std::span<T>(shard_sums_[0]));
      }
      tree_sum(stat_sums_, mine.count);
      stat_sums_[0][2] = stop_requested() ? 1.0 : 0.0;
      ex.sum(std::span<double>(stat_sums_[0]));
      std::size_t at = 0;
      for (auto& p : params)
        for (std::size_t i = 0; i < p.size; ++i) p.grad[i] = shard_sums_[0][at++];
      for (auto& buf : buffers)
        for (std::size_t i = 0; i < buf.size; ++i) buf.value[i] = shard_sums_[0][at++];
      std::visit([&](auto& o) { o.set_learning_rate(lr); o.step(params); }, opt_);
      const double loss = stat_sums_[0][0] / double(n);
      if (!std::isfinite(loss))
        diverged("the training loss became " + number_text(loss), rec.epoch, b + 1, plan.batches, lr, result, folder);
      loss_sum += stat_sums_[0][0];
      correct += (long long)stat_sums_[0][1];
      seen += n;
      report_batch(rec.epoch, b, plan, seen, loss_sum, correct, lr, t0);
      if (stat_sums_[0][2] > 0) return false;  // some rank was asked to stop: all stop here
    }
    const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    rec.train_loss = loss_sum / double(seen);
    rec.train_accuracy = double(correct) / double(seen);
    rec.lr = lr;
    rec.images_per_second = seconds > 0 ? double(seen) / seconds : 0;
    return true;
  }

  Exchange& exchange() const { return exchange_ ? *exchange_ : local_exchange_; }

  // Items order[first, first + count) of one shard into x_ and batch_labels_.
  void load_micro_batch(const data::ImageSet& images, const std::vector<int>& train, const Plan& plan,
                        const std::vector<int>& order, const std::vector<data::Dihedral>& views, std::size_t first,
                        std::size_t count) {
    batch_index_.resize(count);
    batch_labels_.resize(count);
    batch_views_.clear();
    for (std::size_t k = 0; k < count; ++k) {
      const int item = order[first + k];
      batch_index_[k] = train[std::size_t(item / plan.per_image)];
      batch_labels_[k] = images.labels[std::size_t(batch_index_[k])];
      if (!views.empty()) batch_views_.push_back(views[first + k]);
      else if (plan.per_image == 4) batch_views_.push_back(data::Dihedral(item % 4));
    }
    if (cfg_.augment == Augment::survey) {
      // Item p of the order draws from its own stream (survey_base_, p): the same pixels for any
      // thread count and, in the sharded schedule, for any number of ranks.
      batch_seeds_.resize(count);
      for (std::size_t k = 0; k < count; ++k) batch_seeds_[k] = Rng(survey_base_ ^ (0x9E3779B97F4A7C15ull * (first + k + 1)))();
      data::survey_tensor(images, std::span<const int>(batch_index_), std::span<const data::Dihedral>(batch_views_),
                          std::span<const std::uint64_t>(batch_seeds_), cfg_.jitter, Net::input_shape::h, x_);
      return;
    }
    data::to_tensor(images, std::span<const int>(batch_index_), x_, std::span<const data::Dihedral>(batch_views_));
  }

  bool stop_requested() const { return cb_.should_stop && cb_.should_stop(); }

  bool weights_finite() {
    for (const auto& p : net_.parameters())
      for (std::size_t i = 0; i < p.size; ++i)
        if (!std::isfinite(p.value[i])) return false;
    return true;
  }

  // What a checkpoint of finished epoch `finished` records besides the network, the optimiser
  // and the history.
  CheckpointData checkpoint_data(int finished, const Plan& plan) const {
    CheckpointData d;
    d.epoch = finished;
    d.rngs["epoch_streams_root"] = Rng(cfg_.seed).split(0x5EED).state();
    d.metadata = cfg_.metadata;
    for (const auto& [k, v] : plan.settings) d.metadata[k] = v;
    d.metadata["train/threads"] = std::to_string(plan.threads);
    d.metadata["train/best_metric"] = plan.validating ? "validation accuracy" : "training loss";
    return d;
  }

  [[noreturn]] void diverged(const std::string& what, int epoch, int batch, int batches, double lr,
                             const FitResult& result, const RunFolder* folder) const {
    const int kept = int(result.history.size());
    std::string note;
    if (!folder) note = "nothing was saved (no output folder)";
    else if (kept > 0 && folder->holds_run())
      note = "the last good checkpoint, " + folder->last_path() + " (epoch " + std::to_string(kept) + "), is kept";
    else note = "no epoch was finished, so no checkpoint was written";
    throw NonFiniteLoss("train: " + what + " in epoch " + std::to_string(epoch) + ", batch " + std::to_string(batch) +
                            " of " + std::to_string(batches) + " (learning rate " + number_text(lr) +
                            "); training stopped. The learning rate may be too high for this network and data; " +
                            note + ".",
                        epoch, batch);
  }

  static std::string number_text(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+infinity" : "-infinity";
    return json::number(v);
  }

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

  Net& net_;
  TrainConfig cfg_;
  Callbacks cb_;
  OptimizerVariant opt_;
  LossOptions loss_options_;
  Tensor<T> x_;  // the batch being trained on
  std::vector<int> batch_index_, batch_labels_;
  std::vector<data::Dihedral> batch_views_;
  std::uint64_t survey_base_ = 0;            // survey augmentation: this epoch's (or shard's) stream
  std::vector<std::uint64_t> batch_seeds_;    // survey augmentation: each item's stream
  data::ImageSet eval_images_;                // survey augmentation: the centre crops validated on,
  const data::ImageSet* eval_source_ = nullptr;  // cut from this set
  mutable LocalExchange local_exchange_;
  Exchange* exchange_ = nullptr;  // nullptr: local_exchange_
  std::vector<std::vector<T>> shard_sums_;       // sharded: this rank's shards' scaled gradients
  std::vector<std::vector<double>> stat_sums_;   // sharded: their loss sums, correct counts, stop flag
  std::vector<std::size_t> param_offset_;        // sharded: where each parameter's gradients start
  std::vector<std::pair<std::size_t, std::size_t>> layer_params_;  // sharded: each layer's parameters
};

}  // namespace hubble::train
