// The sharded schedule (train/sharded.hpp) without MPI: N "ranks" are threads of this process
// joined by an in-memory Exchange that sums by the same recursive doubling as MpiExchange. The
// weights (and BatchNorm's moving statistics) must be the same bits for 1, 2 and 4 ranks, with
// every rank given only its own shards' images. tests/mpi/run.sh checks the real mpirun.
#include <doctest/doctest.h>

#include <barrier>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "hubble/data/galaxy10.hpp"
#include "hubble/hubble.hpp"
#include "hubble/train/sharded.hpp"
#include "hubble/train/trainer.hpp"
#include "support.hpp"
#include "tiny_images.hpp"

using namespace hubble;
namespace fs = std::filesystem;

namespace {
using test_support::error_of;
using test_support::tiny_images;
using DropNet = Sequential<Input<12, 12, 3>, Conv2D<4, 3>, ReLU, MaxPool<2>, Flatten, Dropout<0.25>, Dense<4>, Softmax>;
using NormNet = Sequential<Input<12, 12, 3>, Conv2D<4, 3>, BatchNorm, ReLU, MaxPool<2>, Flatten, Dense<4>, Softmax>;

// Threads as ranks: recursive doubling through shared pointers and a barrier.
struct Meeting {
  explicit Meeting(int n) : ranks(n), sync(n), slots(std::size_t(n)) {}
  int ranks;
  std::barrier<> sync;
  std::vector<const void*> slots;
};

class ThreadExchange final : public train::Exchange {
 public:
  ThreadExchange(Meeting& m, int rank, bool overlap) : m_(m), rank_(rank), overlap_(overlap) {}
  int rank() const override { return rank_; }
  // With overlap the trainer sums layer by layer during the backward pass (here at once).
  bool overlaps() const override { return overlap_; }
  int ranks() const override { return m_.ranks; }
  void sum(std::span<float> v) override { doubling(v); }
  void sum(std::span<double> v) override { doubling(v); }
  void broadcast(std::span<std::byte> bytes) override {
    m_.slots[std::size_t(rank_)] = bytes.data();
    m_.sync.arrive_and_wait();
    if (rank_ != 0) std::copy_n(static_cast<const std::byte*>(m_.slots[0]), bytes.size(), bytes.data());
    m_.sync.arrive_and_wait();
  }

 private:
  template <class V>
  void doubling(std::span<V> v) {
    std::vector<V> other(v.size());
    for (int bit = 1; bit < m_.ranks; bit <<= 1) {
      m_.slots[std::size_t(rank_)] = v.data();
      m_.sync.arrive_and_wait();
      const V* theirs = static_cast<const V*>(m_.slots[std::size_t(rank_ ^ bit)]);
      std::copy_n(theirs, v.size(), other.data());
      m_.sync.arrive_and_wait();
      for (std::size_t i = 0; i < v.size(); ++i) v[i] += other[i];
    }
  }
  Meeting& m_;
  int rank_;
  bool overlap_;
};

// Every value of the network's parameters and buffers, in order.
template <class Net>
std::vector<float> state_of(Net& net) {
  std::vector<float> out;
  for (const auto& p : net.parameters()) out.insert(out.end(), p.value, p.value + p.size);
  for (const auto& b : net.buffers()) out.insert(out.end(), b.value, b.value + b.size);
  return out;
}

// Trains on `ranks` threads; each rank sees only its shards' images (-1 elsewhere) and only rank 0
// validates and writes cfg.out_dir. Returns every rank's final state.
template <class Net>
std::vector<std::vector<float>> train_on(int ranks, const train::TrainConfig& cfg, const data::ImageSet& images,
                                         const std::vector<int>& train, const std::vector<int>& validation,
                                         bool overlap = false) {
  Meeting meeting(ranks);
  std::vector<std::vector<float>> states(static_cast<std::size_t>(ranks));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        ThreadExchange exchange(meeting, r, overlap);
        train::TrainConfig c = cfg;
        if (r != 0) c.out_dir.clear();
        const train::ShardBlock mine = train::shard_block(c.shards, r, ranks);
        std::vector<int> own = train;
        for (std::size_t p = 0; p < own.size(); ++p)
          if (!mine.owns(int(p % std::size_t(c.shards)))) own[p] = -1;
        auto net = std::make_unique<Net>(c.seed);
        train::Trainer<Net> trainer(*net, c);
        trainer.set_exchange(exchange);
        trainer.fit(images, own, r == 0 ? validation : std::vector<int>{});
        states[std::size_t(r)] = state_of(*net);
      } catch (...) {
        errors[std::size_t(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return states;
}

train::TrainConfig sharded_config() {
  train::TrainConfig c;
  c.epochs = 2;
  c.batch_size = 8;
  c.shards = 4;
  c.seed = 9;
  c.threads = 1;
  c.augment = train::Augment::dihedral;
  return c;
}

std::vector<int> range(int a, int b) {
  std::vector<int> v;
  for (int i = a; i < b; ++i) v.push_back(i);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("sharded: 1, 2 and 4 ranks give bit-identical weights (dropout, dihedral views, uneven shards)") {
  const data::ImageSet images = tiny_images(48, 3);
  // 37 training images: shards of 10, 9, 9, 9, so the last step is short and uneven (scales 2/5, 1/5).
  const std::vector<int> train = range(0, 37), validation = range(37, 48);
  const train::TrainConfig cfg = sharded_config();
  const auto one = train_on<DropNet>(1, cfg, images, train, validation);
  for (int ranks : {1, 2, 4})
    for (bool overlap : {false, true}) {  // overlap: per-layer sums during the backward pass
      CAPTURE(ranks);
      CAPTURE(overlap);
      const auto many = train_on<DropNet>(ranks, cfg, images, train, validation, overlap);
      for (const auto& state : many) CHECK(same_bits(state, one[0]));
    }
  // It trained: the weights moved from their initial values.
  DropNet fresh(cfg.seed);
  CHECK_FALSE(same_bits(state_of(fresh), one[0]));
  // The shard count is part of the schedule: 2 shards give other weights (the comparison can fail).
  train::TrainConfig two = cfg;
  two.shards = 2;
  CHECK_FALSE(same_bits(train_on<DropNet>(1, two, images, train, validation)[0], one[0]));
}

TEST_CASE("sharded: with BatchNorm (ghost batches) the weights and the moving statistics are bit-identical for 1, 2, 4 ranks") {
  const data::ImageSet images = tiny_images(40, 4);
  const std::vector<int> train = range(0, 32), validation = range(32, 40);
  train::TrainConfig cfg = sharded_config();
  cfg.augment = train::Augment::rot4;
  const auto one = train_on<NormNet>(1, cfg, images, train, validation);
  NormNet fresh(cfg.seed);
  const auto buffers = fresh.buffers();
  REQUIRE(!buffers.empty());
  CHECK_FALSE(same_bits(state_of(fresh), one[0]));  // the moving statistics moved too
  for (int ranks : {2, 4}) {
    CAPTURE(ranks);
    for (const auto& state : train_on<NormNet>(ranks, cfg, images, train, validation)) CHECK(same_bits(state, one[0]));
    for (const auto& state : train_on<NormNet>(ranks, cfg, images, train, validation, true)) CHECK(same_bits(state, one[0]));
  }
}

TEST_CASE("sharded: a run resumed on another number of ranks ends with the uninterrupted run's weights") {
  const data::ImageSet images = tiny_images(48, 5);
  const std::vector<int> train = range(0, 36), validation = range(36, 48);
  const test_support::TempDir dir("sharded");
  train::TrainConfig cfg = sharded_config();
  cfg.epochs = 3;
  const auto whole = train_on<DropNet>(1, cfg, images, train, validation);
  train::TrainConfig part = cfg;
  part.out_dir = (dir.path() / "run").string();
  part.epochs = 2;
  train_on<DropNet>(4, part, images, train, validation);  // 2 epochs on 4 ranks
  part.epochs = 3;
  part.resume = true;
  const auto resumed = train_on<DropNet>(2, part, images, train, validation);  // the 3rd on 2 ranks
  for (const auto& state : resumed) CHECK(same_bits(state, whole[0]));
}

TEST_CASE("sharded: impossible shard, batch and rank counts are clear errors") {
  const data::ImageSet images = tiny_images(16, 6);
  train::TrainConfig cfg = sharded_config();
  cfg.shards = 3;
  CHECK(error_of([&] { train_on<DropNet>(1, cfg, images, range(0, 16), {}); }).find("power of two") != std::string::npos);
  cfg.shards = 4;
  cfg.batch_size = 10;
  CHECK(error_of([&] { train_on<DropNet>(1, cfg, images, range(0, 16), {}); }).find("multiple of --shards") != std::string::npos);
  cfg.batch_size = 8;
  cfg.shards = 2;
  CHECK(error_of([&] { train_on<DropNet>(4, cfg, images, range(0, 16), {}); }).find("cannot share 2 shards") != std::string::npos);
  // A rank given an image of a shard it does not own as -1 is fine; a -1 in its own shard is not.
  cfg.shards = 4;
  std::vector<int> holes = range(0, 16);
  holes[0] = -1;
  CHECK(error_of([&] { train_on<DropNet>(1, cfg, images, holes, {}); }).find("outside the set") != std::string::npos);
}

TEST_CASE("load_galaxy10_rows reads the given rows (and only those), cropped like load_galaxy10") {
  const test_support::TempDir dir("rows");
  const std::string file = (dir.path() / "set.h5").string();
  data::ImageSet whole = tiny_images(9, 7);
  data::write_galaxy10(file, whole);
  data::LoadOptions o;
  o.crop = 8;
  const data::ImageSet all = data::load_galaxy10(file, o);
  const data::ImageSet some = data::load_galaxy10_rows(file, {7, 2, 7}, o);
  REQUIRE(some.size() == 3);
  CHECK(some.height == 8);
  int k = 0;
  for (int row : {7, 2, 7}) {
    CHECK(some.labels[std::size_t(k)] == all.labels[std::size_t(row)]);
    CHECK(std::equal(some.image(k), some.image(k) + some.image_bytes(), all.image(row)));
    ++k;
  }
  CHECK(data::read_galaxy10_labels(file) == all.labels);
  CHECK(data::read_galaxy10_labels(file, 4).size() == 4);
  o.limit = 5;
  CHECK(error_of([&] { data::load_galaxy10_rows(file, {6}, o); }).find("row 6") != std::string::npos);
}
