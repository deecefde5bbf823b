// Checkpoints: round trip, refusals with clear messages, atomic writes.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "hubble/hubble.hpp"
#include "hubble/io/checkpoint.hpp"
#include "support.hpp"

using namespace hubble;
namespace fs = std::filesystem;

namespace {
using test_support::error_of;
using TinyNet = Sequential<Input<8, 8, 2>, Conv2D<3, 3>, ReLU, MaxPool<2>, Flatten, Dropout<0.3>, Dense<4>, Softmax>;
using OtherNet = Sequential<Input<8, 8, 2>, Conv2D<5, 3>, ReLU, MaxPool<2>, Flatten, Dense<4>, Softmax>;

// A file in this process's scratch folder (removed at exit).
fs::path scratch(const std::string& name) {
  static const test_support::TempDir dir("checkpoint");
  return dir.path() / name;
}

// A few Adam steps so weights, moments, step count and the dropout stream are all non-trivial.
void train_a_little(TinyNet& net, Adam<float>& adam, int steps) {
  Tensor<float> x(4, 8, 8, 2);
  Rng r(7);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
  const std::vector<int> y{0, 1, 2, 3};
  for (int s = 0; s < steps; ++s) net.train_step(x, y, adam);
}

}  // namespace

TEST_CASE("checkpoint: round trip restores weights, optimiser state, epoch, RNGs and metadata exactly") {
  TinyNet a(1);
  Adam<float> adam_a;
  train_a_little(a, adam_a, 3);
  CheckpointData d;
  d.epoch = 5;
  d.rngs["shuffle"] = Rng(99).state();
  d.metadata["recipe"] = "paper";
  d.values["best_val_accuracy"] = {0.875};
  d.values["history/train_loss"] = {2.0, 1.5, 1.25};
  d.values["empty"] = {};
  const std::string path = scratch("round.h5").string();
  save_checkpoint(path, a, &adam_a, d);
  CHECK_FALSE(fs::exists(path + ".tmp" + std::to_string(::getpid())));  // temp file renamed away

  TinyNet b(2);  // other weights and dropout stream
  Adam<float> adam_b;
  const CheckpointData e = load_checkpoint(path, b, &adam_b);
  const auto pa = a.parameters(), pb = b.parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t p = 0; p < pa.size(); ++p)
    for (std::size_t i = 0; i < pa[p].size; ++i) REQUIRE(pa[p].value[i] == pb[p].value[i]);
  CHECK(adam_b.steps == 3);
  REQUIRE(adam_b.slots.size() == adam_a.slots.size());
  for (std::size_t s = 0; s < adam_a.slots.size(); ++s) CHECK(adam_b.slots[s] == adam_a.slots[s]);
  REQUIRE(b.random_streams().size() == 1);
  CHECK(b.random_streams()[0]->state() == a.random_streams()[0]->state());
  CHECK(e.epoch == 5);
  CHECK(e.rngs.at("shuffle") == Rng(99).state());
  CHECK(e.meta("recipe") == "paper");
  CHECK(e.value("best_val_accuracy", 0) == 0.875);
  CHECK(e.values.at("history/train_loss") == std::vector<double>{2.0, 1.5, 1.25});
  CHECK(e.values.at("empty").empty());

  // Continuing both gives identical weights: nothing that matters was left out.
  train_a_little(a, adam_a, 2);
  train_a_little(b, adam_b, 2);
  const auto qa = a.parameters(), qb = b.parameters();
  for (std::size_t p = 0; p < qa.size(); ++p)
    for (std::size_t i = 0; i < qa[p].size; ++i) REQUIRE(qa[p].value[i] == qb[p].value[i]);

  const CheckpointHeader h = read_checkpoint_header(path);
  CHECK(h.format_version == 1);
  CHECK(h.architecture == TinyNet::architecture());
  CHECK(h.scalar == "float");
  CHECK(h.optimizer == "adam");
  CHECK(h.epoch == 5);
}

TEST_CASE("checkpoint: weights only (no optimiser) load into a network, but resuming needs the optimiser") {
  TinyNet a(3);
  const std::string path = scratch("weights_only.h5").string();
  save_checkpoint(path, a, nullptr);
  TinyNet b(4);
  load_checkpoint(path, b);
  CHECK(a.parameters()[0].value[0] == b.parameters()[0].value[0]);
  Adam<float> adam;
  CHECK(error_of([&] { load_checkpoint(path, b, &adam); }).find("no optimiser state") != std::string::npos);
  SGD<float> sgd;
  Adam<float> adam2;
  save_checkpoint(path, a, &adam2);
  const std::string msg = error_of([&] { load_checkpoint(path, b, &sgd); });
  CHECK(msg.find("'adam'") != std::string::npos);
  CHECK(msg.find("'sgd'") != std::string::npos);
}

TEST_CASE("checkpoint: another architecture is refused, naming both, and leaves the network untouched") {
  TinyNet a(5);
  const std::string path = scratch("arch.h5").string();
  save_checkpoint(path, a, nullptr);
  OtherNet other(6);
  const float before = other.parameters()[0].value[0];
  const std::string msg = error_of([&] { load_checkpoint(path, other); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("another architecture") != std::string::npos);
  CHECK(msg.find(TinyNet::architecture()) != std::string::npos);
  CHECK(msg.find(OtherNet::architecture()) != std::string::npos);
  CHECK(other.parameters()[0].value[0] == before);

  TinyNet::rebind<double> dbl(5);
  const std::string scalar_msg = error_of([&] { load_checkpoint(path, dbl); });
  CHECK(scalar_msg.find("float") != std::string::npos);
  CHECK(scalar_msg.find("double") != std::string::npos);
}

TEST_CASE("checkpoint: a truncated file is a clear error naming the file") {
  TinyNet a(7);
  Adam<float> adam;
  train_a_little(a, adam, 1);
  const std::string path = scratch("truncated.h5").string();
  save_checkpoint(path, a, &adam);
  fs::resize_file(path, fs::file_size(path) / 2);
  TinyNet b(8);
  const float before = b.parameters()[0].value[0];
  Adam<float> adam_b;
  const std::string msg = error_of([&] { load_checkpoint(path, b, &adam_b); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(b.parameters()[0].value[0] == before);
  CHECK(adam_b.steps == 0);
}

TEST_CASE("checkpoint: corrupt bytes, an HDF5 file that is not a checkpoint, a missing file") {
  TinyNet net(9);
  const std::string corrupt = scratch("corrupt.h5").string();
  save_checkpoint(corrupt, net, nullptr);
  {
    std::fstream f(corrupt, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(fs::file_size(corrupt) / 3));
    const std::string junk(512, '\x5a');
    f.write(junk.data(), std::streamsize(junk.size()));
  }
  const std::string corrupt_msg = error_of([&] { load_checkpoint(corrupt, net); });
  CHECK(corrupt_msg.find(corrupt) != std::string::npos);

  const std::string plain = scratch("plain.h5").string();
  {
    h5::File f = h5::File::create(plain);
    f.write("images", std::vector<float>{1, 2, 3});
  }
  const std::string plain_msg = error_of([&] { load_checkpoint(plain, net); });
  CHECK(plain_msg.find(plain) != std::string::npos);
  CHECK(plain_msg.find("not a hubble checkpoint") != std::string::npos);

  const std::string text = scratch("text.h5").string();
  std::ofstream(text) << "hello";
  CHECK(error_of([&] { load_checkpoint(text, net); }).find("not an HDF5 file") != std::string::npos);

  const std::string missing = scratch("missing.h5").string();
  const std::string missing_msg = error_of([&] { load_checkpoint(missing, net); });
  CHECK(missing_msg.find(missing) != std::string::npos);
  CHECK(missing_msg.find("no such file") != std::string::npos);
}

TEST_CASE("checkpoint: a failed save leaves the previous file intact") {
  TinyNet net(10);
  const std::string path = scratch("keep.h5").string();
  save_checkpoint(path, net, nullptr);
  const auto size = fs::file_size(path);
  CheckpointData bad;
  bad.metadata[""] = "an empty key cannot be a dataset name";
  CHECK_THROWS_AS(save_checkpoint(path, net, nullptr, bad), Error);
  CHECK(fs::file_size(path) == size);
  TinyNet other(11);
  load_checkpoint(path, other);
  CHECK(other.parameters()[0].value[0] == net.parameters()[0].value[0]);
  fs::remove_all(fs::path(path).parent_path());
}

TEST_CASE("checkpoint: BatchNorm's moving statistics (network buffers) are saved and restored") {
  using BnNet = Sequential<Input<6, 6, 2>, Conv2D<3, 3>, BatchNorm, ReLU, Flatten, Dense<2>, Softmax>;
  BnNet a(1);
  Adam<float> adam;
  Tensor<float> x(4, 6, 6, 2);
  Rng r(3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
  const std::vector<int> y{0, 1, 0, 1};
  for (int s = 0; s < 3; ++s) a.train_step(x, y, adam);  // moves the statistics away from 0 / 1
  const std::string path = scratch("batchnorm.h5").string();
  save_checkpoint(path, a, &adam);
  BnNet b(2);
  Adam<float> adam_b;
  load_checkpoint(path, b, &adam_b);
  const auto ba = a.buffers(), bb = b.buffers();
  REQUIRE(ba.size() == 2);
  for (std::size_t k = 0; k < ba.size(); ++k)
    for (std::size_t i = 0; i < ba[k].size; ++i) CHECK(ba[k].value[i] == bb[k].value[i]);
  CHECK(ba[0].value[0] != 0.0f);
  const Tensor<float>& pa = a.forward(x, Mode::eval);
  const std::vector<float> first(pa.data(), pa.data() + pa.size());
  const Tensor<float>& pb = b.forward(x, Mode::eval);
  for (std::size_t i = 0; i < first.size(); ++i) CHECK(first[i] == pb[i]);
  fs::remove_all(fs::path(path).parent_path());
}
