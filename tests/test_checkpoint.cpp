// Checkpoints: round trip, refusals with clear messages, atomic writes.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

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
  CHECK(h.format_version == 2);
  CHECK(h.checksums);
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
}

// ---- hardening: full disk, checksums, non-finite values, ranges, sizes, missing vs corrupt ----

namespace {
using test_support::file_bytes;

// Raw HDF5 access for damaging files on purpose (read-write, unlike h5::File::open).
struct RawFile {
  hid_t id;
  explicit RawFile(const std::string& path) : id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) { REQUIRE(id >= 0); }
  ~RawFile() { H5Fclose(id); }
  // Where a contiguous dataset's bytes start in the file.
  haddr_t offset(const std::string& name) const {
    const hid_t d = H5Dopen2(id, name.c_str(), H5P_DEFAULT);
    const haddr_t a = H5Dget_offset(d);
    H5Dclose(d);
    return a;
  }
  void remove(const std::string& name) { REQUIRE(H5Ldelete(id, name.c_str(), H5P_DEFAULT) >= 0); }
};

void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x10);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

// A version-1 checkpoint of TinyNet (no checksums) written field by field, as hubble did before
// format 2; `epoch` and the weights can be set to anything.
void write_v1(const std::string& path, TinyNet& net, std::int64_t epoch) {
  h5::File f = h5::File::create(path);
  f.set_attribute("format", std::string(checkpoint_format));
  f.set_attribute("format_version", std::int64_t(1));
  f.set_attribute("architecture", TinyNet::architecture());
  f.set_attribute("scalar", std::string("float"));
  for (const auto& p : net.parameters()) f.write<float>("weights/" + p.name, p.value, {hsize_t(p.size)});
  f.write("epoch", std::vector<std::int64_t>{epoch});
  f.write<std::uint64_t>("rng/network/0", net.random_streams()[0]->state().data(), {4});
  f.write("training/best", std::vector<double>{0.5});
  f.close();
}
}  // namespace

TEST_CASE("checkpoint: a full disk during a save leaves the previous file byte for byte and names the cause") {
  const test_support::TempDir dir("checkpoint_full_disk");
  const std::string path = dir.file("best.h5");
  TinyNet a(21);
  Adam<float> adam;
  train_a_little(a, adam, 2);
  save_checkpoint(path, a, &adam);
  const std::string before = file_bytes(path);
  REQUIRE(before.size() > 8192);
  TinyNet b(22);
  Adam<float> adam_b;
  train_a_little(b, adam_b, 1);
  // Writes past 4 KiB fail with EFBIG, as they would with ENOSPC on a full disk.
  const auto out = test_support::in_child(4096, [&] { save_checkpoint(path, b, &adam_b); }, [] { H5close(); });
  INFO("child message: ", out.message);
  CHECK(out.exited);           // no crash, in HDF5's teardown or elsewhere
  CHECK(out.exit_code == 0);   // a hubble::Error
  CHECK(out.message.find(path) != std::string::npos);
  CHECK(out.message.find("File too large") != std::string::npos);
  CHECK(file_bytes(path) == before);
  CHECK(test_support::files_in(dir.path()) == std::vector<std::string>{"best.h5"});  // no temporary left
  TinyNet c(23);
  Adam<float> adam_c;
  load_checkpoint(path, c, &adam_c);
  CHECK(c.parameters()[0].value[0] == a.parameters()[0].value[0]);
}

TEST_CASE("checkpoint: a flipped byte in an array fails its checksum, naming the file and the array") {
  const test_support::TempDir dir("checkpoint_checksum");
  const std::string path = dir.file("flip.h5");
  TinyNet a(24);
  Adam<float> adam;
  train_a_little(a, adam, 2);
  save_checkpoint(path, a, &adam);
  const auto params = a.parameters();
  const std::string weights = "weights/" + params.back().name, slot = "optimizer/slots/" + params[0].name + "/1";
  haddr_t w = 0, s = 0;
  {
    RawFile raw(path);
    w = raw.offset(weights);
    s = raw.offset(slot);
  }
  REQUIRE(w != HADDR_UNDEF);
  REQUIRE(s != HADDR_UNDEF);
  const std::string good = file_bytes(path);
  flip_byte(path, w + 5);  // a bit of a weight's mantissa: a plausible but wrong number
  TinyNet b(25);
  const float before = b.parameters().back().value[1];
  std::string msg = error_of([&] { load_checkpoint(path, b); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("'" + weights + "' fails its checksum") != std::string::npos);
  CHECK(msg.find("truncated or corrupt") != std::string::npos);
  CHECK(b.parameters().back().value[1] == before);  // untouched
  std::ofstream(path, std::ios::binary) << good;
  flip_byte(path, s + 2);
  Adam<float> adam_b;
  msg = error_of([&] { load_checkpoint(path, b, &adam_b); });
  CHECK(msg.find("'" + slot + "' fails its checksum") != std::string::npos);
  CHECK(adam_b.steps == 0);
}

TEST_CASE("checkpoint: NaN or infinite weights, BatchNorm statistics or optimiser state are refused") {
  const test_support::TempDir dir("checkpoint_nan");
  const std::string path = dir.file("nan.h5");
  TinyNet a(26);
  Adam<float> adam;
  train_a_little(a, adam, 1);
  auto params = a.parameters();
  params[0].value[5] = std::numeric_limits<float>::quiet_NaN();
  save_checkpoint(path, a, &adam);  // saving a diverged run is allowed (it is evidence)...
  TinyNet b(27);
  std::string msg = error_of([&] { load_checkpoint(path, b); });  // ...loading it is not
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("weights/" + params[0].name) != std::string::npos);
  CHECK(msg.find("index 5") != std::string::npos);
  CHECK(msg.find("nan") != std::string::npos);

  params[0].value[5] = 0.25f;
  adam.slots[3][2] = std::numeric_limits<float>::infinity();
  save_checkpoint(path, a, &adam);
  load_checkpoint(path, b);  // the weights alone are fine
  Adam<float> adam_b;
  msg = error_of([&] { load_checkpoint(path, b, &adam_b); });
  CHECK(msg.find("optimizer/slots/" + params[1].name + "/1") != std::string::npos);
  CHECK(msg.find("index 2") != std::string::npos);
  CHECK(msg.find("inf") != std::string::npos);
  CHECK(adam_b.steps == 0);

  using BnNet = Sequential<Input<6, 6, 2>, Conv2D<3, 3>, BatchNorm, ReLU, Flatten, Dense<2>, Softmax>;
  BnNet bn(1);
  bn.buffers()[1].value[2] = -std::numeric_limits<float>::infinity();
  save_checkpoint(path, bn, nullptr);
  BnNet bn2(2);
  msg = error_of([&] { load_checkpoint(path, bn2); });
  CHECK(msg.find("buffers/" + bn.buffers()[1].name) != std::string::npos);
  CHECK(msg.find("index 2") != std::string::npos);
}

TEST_CASE("checkpoint: version-1 files still load (no checksums to verify) and their epoch is range-checked") {
  const test_support::TempDir dir("checkpoint_v1");
  const std::string path = dir.file("v1.h5");
  TinyNet a(28);
  write_v1(path, a, 7);
  const CheckpointHeader h = read_checkpoint_header(path);
  CHECK(h.format_version == 1);
  CHECK_FALSE(h.checksums);
  CHECK(h.epoch == 7);
  TinyNet b(29);
  const CheckpointData d = load_checkpoint(path, b);
  CHECK(d.value("best", 0) == 0.5);
  CHECK(b.parameters()[0].value[3] == a.parameters()[0].value[3]);

  for (std::int64_t bad : {std::int64_t(-1), std::int64_t(1) << 31, std::numeric_limits<std::int64_t>::min()}) {
    CAPTURE(bad);
    write_v1(path, a, bad);
    const std::string msg = error_of([&] { read_checkpoint_header(path); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("'epoch' is " + std::to_string(bad) + ", outside 0..2147483647") != std::string::npos);
  }
  CheckpointData too_late;
  too_late.epoch = 1LL << 40;
  CHECK(error_of([&] { save_checkpoint(path, a, nullptr, too_late); }).find("outside") != std::string::npos);
}

TEST_CASE("checkpoint: a missing entry and a damaged file are told apart") {
  const test_support::TempDir dir("checkpoint_missing");
  const std::string path = dir.file("m.h5");
  TinyNet a(30);
  write_v1(path, a, 1);
  { RawFile(path).remove("weights/" + a.parameters()[1].name); }
  TinyNet b(31);
  std::string msg;
  try {
    load_checkpoint(path, b);
  } catch (const h5::MissingEntry& e) {
    msg = e.what();
  }
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("lacks dataset 'weights/" + a.parameters()[1].name + "'") != std::string::npos);
  CHECK(msg.find("corrupt") == std::string::npos);

  save_checkpoint(path, a, nullptr);
  fs::resize_file(path, fs::file_size(path) * 2 / 3);
  bool corrupt = false;
  try {
    load_checkpoint(path, b);
  } catch (const h5::CorruptFile& e) {
    corrupt = std::string(e.what()).find("truncated or corrupt") != std::string::npos &&
              std::string(e.what()).find(path) != std::string::npos;
  }
  CHECK(corrupt);

  // Format 2 counts its datasets: a removed extra is noticed, not silently dropped.
  CheckpointData d;
  d.values["best"] = {0.9};
  save_checkpoint(path, a, nullptr, d);
  { RawFile(path).remove("training/best"); }
  msg = error_of([&] { read_checkpoint_data(path); });
  CHECK(msg.find("declares") != std::string::npos);
  CHECK(msg.find(path) != std::string::npos);
}

TEST_CASE("checkpoint: a declared size of petabytes is refused before anything is allocated") {
  const test_support::TempDir dir("checkpoint_huge");
  const std::string path = dir.file("huge.h5");
  TinyNet a(32);
  write_v1(path, a, 1);
  {
    // training/history declares 2e14 doubles (1.6 PB) in chunks that were never written.
    RawFile raw(path);
    const hsize_t dims[1] = {hsize_t(2e14)}, chunk[1] = {1 << 16};
    const hid_t space = H5Screate_simple(1, dims, nullptr), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    const hid_t ds = H5Dcreate2(raw.id, "training/history", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    REQUIRE(ds >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  TinyNet b(33);
  std::string msg;
  try {
    load_checkpoint(path, b);
  } catch (const h5::CorruptFile& e) {
    msg = e.what();
  }  // a std::bad_alloc would fail the test case
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("'training/history' declares") != std::string::npos);
  CHECK(msg.find("stores only 0") != std::string::npos);
}

TEST_CASE("checkpoint: the checksum is BLAKE2b with an 8-byte digest, read little-endian (as docs/checkpoints.md)") {
  // Python: int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")
  CHECK(checkpoint_digest("", 0) == 0xb4b2797457a0a6e4ULL);
  CHECK(checkpoint_digest("abc", 3) == 0x5995d533d814bbd8ULL);
  const std::string x1000(1000, 'x');
  CHECK(checkpoint_digest(x1000.data(), 128) == 0x0224e1e874e31c90ULL);  // exactly one block
  CHECK(checkpoint_digest(x1000.data(), x1000.size()) == 0x1786154c896b309aULL);
}

TEST_CASE("checkpoint: the same state saved a second later gives a byte-identical file (no timestamps)") {
  // HDF5 1.10's object headers can carry creation and modification times; every group and
  // dataset hubble writes turns them off, so a checkpoint is a function of its contents.
  TinyNet net(3);
  Adam<float> adam;
  train_a_little(net, adam, 2);
  CheckpointData d;
  d.epoch = 1;
  d.metadata["run/seed"] = "3";
  d.values["history/epoch"] = {1};
  const std::string a = scratch("same_a.h5").string(), b = scratch("same_b.h5").string();
  save_checkpoint(a, net, &adam, d);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  save_checkpoint(b, net, &adam, d);
  CHECK(test_support::file_bytes(a) == test_support::file_bytes(b));
}
