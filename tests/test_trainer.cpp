// The training loop: exact resume, schedules, augmentation modes, checkpoints and refusals.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>

#include "hubble/hubble.hpp"
#include "hubble/train/run_folder.hpp"
#include "hubble/train/trainer.hpp"
#include "checkpoint_edit.hpp"
#include "support.hpp"
#include "tiny_images.hpp"

using namespace hubble;
namespace fs = std::filesystem;

namespace {
using test_support::error_of;
using test_support::tiny_images;
using TinyNet = Sequential<Input<12, 12, 3>, Conv2D<4, 3>, ReLU, MaxPool<2>, Flatten, Dropout<0.25>, Dense<4>, Softmax>;

std::vector<int> range(int a, int b) {
  std::vector<int> v;
  for (int i = a; i < b; ++i) v.push_back(i);
  return v;
}

// A fresh (absent) path in this process's scratch folder (removed at exit).
fs::path scratch(const std::string& name) {
  static const test_support::TempDir dir("trainer");
  fs::remove_all(dir.path() / name);
  return dir.path() / name;
}

train::TrainConfig base_config(const fs::path& out) {
  train::TrainConfig c;
  c.epochs = 3;
  c.batch_size = 8;
  c.seed = 5;
  c.threads = 2;
  c.augment = train::Augment::dihedral;
  c.out_dir = out.string();
  return c;
}

bool same_weights(TinyNet& a, TinyNet& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  for (std::size_t p = 0; p < pa.size(); ++p)
    for (std::size_t i = 0; i < pa[p].size; ++i)
      if (pa[p].value[i] != pb[p].value[i]) return false;
  return true;
}

}  // namespace

TEST_CASE("trainer: 2 epochs + resume 1 gives bit-for-bit the weights of 3 uninterrupted epochs") {
  const data::ImageSet images = tiny_images(48, 1);
  const std::vector<int> train = range(0, 40), val = range(40, 48);
  for (const train::Schedule schedule : {train::Schedule::constant, train::Schedule::cosine}) {
    CAPTURE(train::name_of(schedule));
    TinyNet full(11);
    train::TrainConfig c = base_config(scratch(std::string("full_") + train::name_of(schedule)));
    c.schedule = schedule;
    c.warmup_epochs = 1;
    train::Trainer<TinyNet> t_full(full, c);
    const train::FitResult r_full = t_full.fit(images, train, val);
    REQUIRE(r_full.history.size() == 3);
    CHECK_FALSE(r_full.interrupted);

    // Interrupted run: stop (like Ctrl-C) during epoch 3, after epoch 2's checkpoint.
    TinyNet part(11);
    train::TrainConfig c2 = c;
    c2.out_dir = scratch(std::string("part_") + train::name_of(schedule)).string();
    int epochs_done = 0;
    train::Callbacks cb;
    cb.on_epoch = [&](const train::EpochRecord&) { ++epochs_done; };
    cb.should_stop = [&] { return epochs_done == 2; };
    train::Trainer<TinyNet> t_part(part, c2, cb);
    const train::FitResult r_part = t_part.fit(images, train, val);
    CHECK(r_part.interrupted);
    CHECK(r_part.history.size() == 2);
    CHECK_FALSE(same_weights(full, part));

    TinyNet resumed(999);  // other initial weights and dropout streams: all must come from last.h5
    train::TrainConfig c3 = c2;
    c3.resume = true;
    std::vector<std::string> messages;
    train::Callbacks cb3;
    cb3.on_message = [&](const std::string& m) { messages.push_back(m); };
    train::Trainer<TinyNet> t_resumed(resumed, c3, cb3);
    const train::FitResult r_resumed = t_resumed.fit(images, train, val);
    CHECK(r_resumed.start_epoch == 2);
    REQUIRE(r_resumed.history.size() == 3);
    CHECK(same_weights(full, resumed));
    CHECK(t_resumed.optimizer().steps == t_full.optimizer().steps);
    CHECK(t_resumed.optimizer().slots == t_full.optimizer().slots);
    CHECK(resumed.random_streams()[0]->state() == full.random_streams()[0]->state());
    for (int e = 0; e < 3; ++e) {
      CHECK(r_resumed.history[std::size_t(e)].train_loss == r_full.history[std::size_t(e)].train_loss);
      CHECK(r_resumed.history[std::size_t(e)].val_accuracy == r_full.history[std::size_t(e)].val_accuracy);
    }
    REQUIRE_FALSE(messages.empty());
    CHECK(messages[0].find("resuming") != std::string::npos);

    // metrics.jsonl agrees with the history: one line per epoch.
    std::ifstream jl(fs::path(c3.out_dir) / "metrics.jsonl");
    int lines = 0;
    for (std::string line; std::getline(jl, line);) {
      ++lines;
      CHECK(line.find("\"epoch\": " + std::to_string(lines)) != std::string::npos);
    }
    CHECK(lines == 3);
    CHECK(fs::exists(fs::path(c3.out_dir) / "best.h5"));
  }
}

TEST_CASE("trainer: resuming refuses changed settings, a missing checkpoint and overwriting a run") {
  const data::ImageSet images = tiny_images(24, 2);
  const fs::path out = scratch("refusals");
  TinyNet net(1);
  train::TrainConfig c = base_config(out);
  c.epochs = 1;
  train::Trainer<TinyNet>(net, c).fit(images, range(0, 16), range(16, 24));

  const std::string again = error_of([&] { train::Trainer<TinyNet>(net, c).fit(images, range(0, 16), range(16, 24)); });
  CHECK(again.find("already holds a run") != std::string::npos);

  train::TrainConfig changed = c;
  changed.resume = true;
  changed.epochs = 2;
  changed.batch_size = 4;
  const std::string msg = error_of([&] { train::Trainer<TinyNet>(net, changed).fit(images, range(0, 16), range(16, 24)); });
  CHECK(msg.find("different settings") != std::string::npos);
  CHECK(msg.find("batch_size: checkpoint 8, now 4") != std::string::npos);

  train::TrainConfig nothing = c;
  nothing.resume = true;
  nothing.out_dir = scratch("empty").string();
  CHECK(error_of([&] { train::Trainer<TinyNet>(net, nothing).fit(images, range(0, 16), {}); }).find("nothing to resume") !=
        std::string::npos);
}

TEST_CASE("trainer: learning-rate schedules") {
  TinyNet net(1);
  train::TrainConfig c;
  c.lr = 0.01;
  c.epochs = 10;
  train::Trainer<TinyNet> constant(net, c);
  CHECK(constant.learning_rate(0, 5) == 0.01);
  CHECK(constant.learning_rate(49, 5) == 0.01);

  c.schedule = train::Schedule::cosine;
  c.warmup_epochs = 2;
  c.final_lr_fraction = 0.1;
  train::Trainer<TinyNet> cosine(net, c);
  CHECK(cosine.learning_rate(0, 5) == doctest::Approx(0.001));  // 1/10 of the warm-up
  CHECK(cosine.learning_rate(9, 5) == doctest::Approx(0.01));   // end of warm-up
  CHECK(cosine.learning_rate(10, 5) == doctest::Approx(0.01));  // start of the decay
  CHECK(cosine.learning_rate(30, 5) < 0.01);
  CHECK(cosine.learning_rate(30, 5) > cosine.learning_rate(40, 5));
  CHECK(cosine.learning_rate(49, 5) == doctest::Approx(0.001));  // last step: final fraction
}

TEST_CASE("trainer: the epoch order is a seeded permutation that changes every epoch") {
  const auto a = train::Trainer<TinyNet>::epoch_order(20, 1, 7, 0);
  const auto b = train::Trainer<TinyNet>::epoch_order(20, 1, 7, 0);
  const auto c = train::Trainer<TinyNet>::epoch_order(20, 1, 7, 1);
  const auto d = train::Trainer<TinyNet>::epoch_order(20, 1, 8, 0);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != d);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == range(0, 20));
  const auto twice = train::Trainer<TinyNet>::epoch_order(5, 2, 7, 0);
  CHECK(twice.size() == 10);
  CHECK(std::count(twice.begin(), twice.end(), 3) == 2);
}

TEST_CASE("trainer: it learns the tiny task, and rot4 shows every training image 4 times per epoch") {
  const data::ImageSet images = tiny_images(64, 3);
  TinyNet net(2);
  train::TrainConfig c;
  c.epochs = 6;
  c.batch_size = 8;
  c.lr = 0.01;
  c.augment = train::Augment::none;
  long long epoch_images = 0;
  train::Callbacks cb;
  cb.on_batch = [&](const train::BatchProgress& p) { epoch_images = p.epoch_images; };
  train::Trainer<TinyNet> t(net, c, cb);
  const train::FitResult r = t.fit(images, range(0, 48), range(48, 64));
  CHECK(epoch_images == 48);
  CHECK(r.history.back().val_accuracy >= 0.75);  // chance is 0.25
  CHECK(r.history.back().train_loss < r.history.front().train_loss);
  CHECK(r.best_epoch >= 1);

  TinyNet net4(2);
  c.epochs = 1;
  c.augment = train::Augment::rot4;
  train::Trainer<TinyNet> t4(net4, c, cb);
  t4.fit(images, range(0, 48), {});
  CHECK(epoch_images == 4 * 48);
}

TEST_CASE("trainer: rot4 trains exactly as on the stored x4 set of rotate4, without storing it") {
  const data::ImageSet images = tiny_images(20, 4);
  const std::vector<int> train = range(2, 20);
  TinyNet a(7), b(7);
  train::TrainConfig c;
  c.epochs = 1;
  c.batch_size = 8;
  c.seed = 9;
  c.augment = train::Augment::rot4;
  train::Trainer<TinyNet>(a, c).fit(images, train, {});

  // The same epoch by hand, from the materialised rotations.
  const data::ImageSet x4 = data::rotate4(images, train);
  const std::vector<int> order = train::Trainer<TinyNet>::epoch_order(x4.size(), 1, c.seed, 0);
  Adam<float> adam;
  Tensor<float> x;
  for (std::size_t first = 0; first < order.size(); first += 8) {
    const std::vector<int> batch(order.begin() + long(first), order.begin() + long(std::min(order.size(), first + 8)));
    std::vector<int> labels;
    for (int i : batch) labels.push_back(x4.labels[std::size_t(i)]);
    data::to_tensor(x4, std::span<const int>(batch), x);
    b.train_step(x, labels, adam);
  }
  CHECK(same_weights(a, b));
}

TEST_CASE("trainer: without validation the best checkpoint follows the training loss") {
  const data::ImageSet images = tiny_images(32, 4);
  TinyNet net(3);
  train::TrainConfig c = base_config(scratch("no_val"));
  c.epochs = 2;
  c.lr = 0.01;
  const train::FitResult r = train::Trainer<TinyNet>(net, c).fit(images, range(0, 32), {});
  REQUIRE(r.history.size() == 2);
  CHECK(std::isnan(r.history[0].val_accuracy));
  CHECK(r.best_value == std::min(r.history[0].train_loss, r.history[1].train_loss));
  const CheckpointData d = read_checkpoint_data((fs::path(c.out_dir) / "best.h5").string());
  CHECK(d.meta("train/best_metric") == "training loss");
  CHECK(d.epoch == r.best_epoch);
}

TEST_CASE("trainer: evaluation gives probabilities, and test-time averaging is exact on symmetric images") {
  data::ImageSet images = tiny_images(8, 5);
  // Make images 0..3 invariant under the 8 symmetries (a value depending on the distance to the centre).
  for (int i = 0; i < 4; ++i)
    for (int y = 0; y < 12; ++y)
      for (int x = 0; x < 12; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          const int dy = std::min(y, 11 - y), dx = std::min(x, 11 - x);
          images.image(i)[(y * 12 + x) * 3 + ch] = std::uint8_t(20 * std::min(dy, dx) + 10 * std::max(dy, dx) + ch);
        }
  TinyNet net(4);
  const train::Evaluation plain = train::Trainer<TinyNet>::evaluate_network(net, images, range(0, 8), false, 3);
  const train::Evaluation tta = train::Trainer<TinyNet>::evaluate_network(net, images, range(0, 8), true, 3);
  REQUIRE(plain.size() == 8);
  for (int i = 0; i < 8; ++i) {
    double sum = 0;
    for (int k = 0; k < 4; ++k) sum += tta.probabilities[std::size_t(i * 4 + k)];
    CHECK(sum == doctest::Approx(1.0));
  }
  for (int i = 0; i < 4 * 4; ++i) CHECK(tta.probabilities[std::size_t(i)] == doctest::Approx(plain.probabilities[std::size_t(i)]).epsilon(1e-5));
  const metrics::Report rep = plain.report();
  CHECK(rep.total == 8);
  CHECK(rep.accuracy == doctest::Approx(plain.accuracy));
}

TEST_CASE("trainer: bad settings and mismatched images are clear errors") {
  TinyNet net(1);
  train::TrainConfig c;
  c.batch_size = 0;
  CHECK(error_of([&] { train::Trainer<TinyNet>(net, c); }).find("batch size") != std::string::npos);
  data::ImageSet wrong;
  wrong.height = wrong.width = 10;
  wrong.pixels.assign(300, 0);
  wrong.labels = {0};
  train::TrainConfig ok;
  CHECK(error_of([&] { train::Trainer<TinyNet>(net, ok).fit(wrong, {0}, {}); }).find("10x10x3") != std::string::npos);
  CHECK(error_of([] { train::parse_augment("rot8"); }).find("rot8") != std::string::npos);
  CHECK(train::recipe_by_name("improved").augment == train::Augment::dihedral);
  CHECK(train::recipe_by_name("paper").augment == train::Augment::rot4);
}

namespace {
std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}
int line_count(const fs::path& p) {
  std::ifstream f(p);
  int n = 0;
  for (std::string line; std::getline(f, line);) ++n;
  return n;
}
}  // namespace

TEST_CASE("trainer: a NaN loss stops the run with its epoch and batch; the last complete epoch's checkpoints stay") {
  const data::ImageSet images = tiny_images(24, 6);
  const fs::path out = scratch("diverged");
  TinyNet net(3);
  train::TrainConfig c = base_config(out);
  std::string last_after_1, best_after_1;
  train::Callbacks cb;
  cb.on_epoch = [&](const train::EpochRecord& r) {
    if (r.epoch != 1) return;
    last_after_1 = file_bytes(out / "last.h5");
    best_after_1 = file_bytes(out / "best.h5");
    net.parameters().back().value[0] = std::numeric_limits<float>::quiet_NaN();  // a poisoned output bias
  };
  train::Trainer<TinyNet> t(net, c, cb);
  std::string message;
  int epoch = 0, batch = 0;
  try {
    t.fit(images, range(0, 16), range(16, 24));
  } catch (const train::NonFiniteLoss& e) {
    message = e.what();
    epoch = e.epoch;
    batch = e.batch;
  }
  CHECK(epoch == 2);
  CHECK(batch == 1);
  CHECK(message.find("the training loss became NaN in epoch 2, batch 1 of 2") != std::string::npos);
  CHECK(message.find("the last good checkpoint, " + (out / "last.h5").string() + " (epoch 1), is kept") !=
        std::string::npos);
  REQUIRE_FALSE(last_after_1.empty());
  CHECK(file_bytes(out / "last.h5") == last_after_1);
  CHECK(file_bytes(out / "best.h5") == best_after_1);
  CHECK(line_count(out / "metrics.jsonl") == 1);
  CHECK(read_checkpoint_data((out / "last.h5").string()).epoch == 1);
}

TEST_CASE("trainer: a loss that diverges before any epoch ends saves nothing and says so") {
  const data::ImageSet images = tiny_images(16, 7);
  const fs::path out = scratch("diverged_early");
  TinyNet net(3);
  net.parameters()[2].value[0] = std::numeric_limits<float>::infinity();
  train::TrainConfig c = base_config(out);
  const std::string message = error_of([&] { train::Trainer<TinyNet>(net, c).fit(images, range(0, 16), {}); });
  CHECK(message.find("in epoch 1, batch 1 of 2") != std::string::npos);
  CHECK(message.find("no epoch was finished, so no checkpoint was written") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "last.h5"));
}

TEST_CASE("history: epochs read from a checkpoint are checked before they become ints") {
  CheckpointData d;
  d.values["history/epoch"] = {1, 2};
  d.values["history/train_loss"] = {0.5, 0.25};
  const auto h = train::history_from(d, "x.h5");
  REQUIRE(h.size() == 2);
  CHECK(h[1].epoch == 2);
  CHECK(h[1].train_loss == 0.25);
  CHECK(std::isnan(h[1].val_loss));

  for (const double bad : {1e300, -1e300, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                           2.5, 0.0, 4294967298.0}) {
    CAPTURE(bad);
    d.values["history/epoch"] = {1, bad};
    const std::string msg = error_of([&] { train::history_from(d, "x.h5"); });
    CHECK(msg.find("x.h5: training/history/epoch[1] is ") != std::string::npos);
    CHECK(msg.find("not a whole number in 1..2147483647") != std::string::npos);
  }
  d.values["history/epoch"] = {1, 3};
  CHECK(error_of([&] { train::history_from(d, "x.h5"); }).find("x.h5: training/history/epoch[1] is 3, expected 2") !=
        std::string::npos);
  d.values["history/epoch"] = {1, 2};
  CHECK(train::Trainer<TinyNet>::history_from(d).size() == 2);  // the Trainer's own name for it still works
}

TEST_CASE("trainer: resuming refuses a damaged epoch count, best epoch or history, and fewer epochs than done") {
  const data::ImageSet images = tiny_images(24, 8);
  const fs::path out = scratch("damaged");
  TinyNet net(1);
  train::TrainConfig c = base_config(out);
  c.epochs = 2;
  train::Trainer<TinyNet>(net, c).fit(images, range(0, 16), range(16, 24));
  const std::string last = (out / "last.h5").string();
  const std::string good = file_bytes(last);

  train::TrainConfig again = c;
  again.resume = true;
  again.epochs = 1;
  CHECK(error_of([&] { train::Trainer<TinyNet>(net, again).fit(images, range(0, 16), range(16, 24)); })
            .find(last + ": the run has already finished 2 epochs, more than the 1 asked for") != std::string::npos);
  again.epochs = 3;

  // Each damage in turn, written back with the checkpoint's own weights and optimiser state.
  struct Damage {
    const char* what;
    std::function<void(CheckpointData&)> apply;
    const char* expected;
  };
  const std::vector<Damage> damages = {
      {"best epoch NaN", [](CheckpointData& d) { d.values["best_epoch"] = {std::nan("")}; },
       ": training/best_epoch is nan, not a whole number in 0..2"},
      {"best epoch 1e300", [](CheckpointData& d) { d.values["best_epoch"] = {1e300}; },
       ": training/best_epoch is 1.0000000000000001e+300, not a whole number in 0..2"},
      {"history epoch 1e300", [](CheckpointData& d) { d.values["history/epoch"][0] = 1e300; },
       ": training/history/epoch[0] is 1.0000000000000001e+300"},
      {"history too short", [](CheckpointData& d) { d.values["history/epoch"].pop_back(); },
       ": history holds 1 epochs but the checkpoint is at epoch 2"},
  };
  // An epoch out of range cannot be saved (save_checkpoint refuses it), so it is written in place.
  for (const std::int64_t epoch : {(std::int64_t(1) << 32) + 2, std::int64_t(-1)}) {
    CAPTURE(epoch);
    test_support::rewrite_checkpoint_epoch(last, epoch);
    TinyNet fresh(42), untouched(42);
    const std::string msg = error_of([&] { train::Trainer<TinyNet>(fresh, again).fit(images, range(0, 16), range(16, 24)); });
    CHECK(msg.find(last + ": 'epoch' is " + std::to_string(epoch) + ", outside 0..2147483647") != std::string::npos);
    CHECK(same_weights(fresh, untouched));  // refused before anything was loaded
    std::ofstream(last, std::ios::binary | std::ios::trunc) << good;
  }
  for (const Damage& damage : damages) {
    CAPTURE(damage.what);
    {
      TinyNet holder(1);
      Adam<float> adam;
      CheckpointData d = load_checkpoint(last, holder, &adam);
      damage.apply(d);
      save_checkpoint(last, holder, &adam, d);
    }
    TinyNet fresh(42), untouched(42);
    const std::string msg = error_of([&] { train::Trainer<TinyNet>(fresh, again).fit(images, range(0, 16), range(16, 24)); });
    CHECK(msg.find(last + damage.expected) != std::string::npos);
    CHECK(same_weights(fresh, untouched));  // refused before anything was loaded
    std::ofstream(last, std::ios::binary | std::ios::trunc) << good;
  }
}

TEST_CASE("run folder: a folder locked by another holder is refused at once; a stale lock file blocks nothing") {
  const fs::path dir = scratch("locked");
  fs::create_directories(dir);
  const std::string lock_path = (dir / train::run_lock_file).string();
  // flock locks belong to an open file description: a second open() of the lock file in this
  // process competes for it exactly as another process would.
  const auto other_holder_can_lock = [&] {
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    const bool got = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    return got;
  };

  std::ofstream(lock_path) << "999999999\n";  // left by a run that died: its flock died with it
  {
    train::RunLock held(dir.string());
    CHECK(held.held());
    train::RunLock nested(dir.string());  // this process may lock it again (the program, then its trainer)
    CHECK_FALSE(other_holder_can_lock());
  }
  CHECK(other_holder_can_lock());  // released with the last RunLock

  {  // another holder: refused at once, naming the folder and the holder's pid
    const int fd = ::open(lock_path.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    REQUIRE(::ftruncate(fd, 0) == 0);
    REQUIRE(::pwrite(fd, "4242\n", 5, 0) == 5);
    CHECK(error_of([&] { train::RunLock lock(dir.string()); })
              .find(dir.string() + ": another training run (process 4242) is using this folder") != std::string::npos);

    const data::ImageSet images = tiny_images(16, 9);
    TinyNet net(1);
    train::TrainConfig c = base_config(dir);
    CHECK(error_of([&] { train::Trainer<TinyNet>(net, c).fit(images, range(0, 16), {}); })
              .find("another training run") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "last.h5"));
    ::close(fd);
  }

  // fit() holds the lock while it trains.
  const data::ImageSet images = tiny_images(16, 9);
  TinyNet net(1);
  train::TrainConfig c = base_config(dir);
  c.epochs = 1;
  bool locked_during_fit = false;
  train::Callbacks cb;
  cb.on_epoch = [&](const train::EpochRecord&) { locked_during_fit = !other_holder_can_lock(); };
  train::Trainer<TinyNet>(net, c, cb).fit(images, range(0, 16), {});
  CHECK(locked_during_fit);
  CHECK(other_holder_can_lock());
}
