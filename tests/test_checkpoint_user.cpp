// Checkpoints written by users (docs/checkpoints.md, "Writing a checkpoint yourself"): a weights-only
// file as h5py writes it (variable-length UTF-8 string attributes, arrays with their real shapes,
// no optimiser, epoch, random streams or checksums) loads for inference and fine-tuning but not to
// resume; every array's shape is checked against the network (a kernel in PyTorch's layout is an
// error naming the array and both shapes); hubble's own files store those shapes.
#include <doctest/doctest.h>

#include <hdf5.h>

#include <cstring>
#include <string>
#include <vector>

#include "hubble/hubble.hpp"
#include "hubble/io/checkpoint.hpp"
#include "support.hpp"

using namespace hubble;

namespace {

using UserNet = Sequential<Input<6, 6, 2>, Conv2D<3, 3>, ReLU, Flatten, Dropout<0.5>, Dense<4>, Softmax>;

// The raw HDF5 calls h5py makes for `f.attrs[key] = "text"` and `f[name] = array`.
struct RawFile {
  hid_t id;
  explicit RawFile(const std::string& path) : id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {
    REQUIRE(id >= 0);
  }
  ~RawFile() { H5Fclose(id); }
  void vlen_attribute(const std::string& key, const std::string& value) {
    const hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    const hid_t a = H5Acreate2(id, key.c_str(), t, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char* v = value.c_str();
    REQUIRE(H5Awrite(a, t, &v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
  }
  void int_attribute(const std::string& key, std::int64_t value) {
    const hid_t sp = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(id, key.c_str(), H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
  }
  void vlen_dataset(const std::string& name, const std::string& value) {
    const hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    H5Pset_create_intermediate_group(lcpl, 1);
    const hid_t d = H5Dcreate2(id, name.c_str(), t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    const char* v = value.c_str();
    REQUIRE(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
    H5Tclose(t);
  }
  void floats(const std::string& name, const float* v, std::vector<hsize_t> dims) {
    const hid_t sp = H5Screate_simple(int(dims.size()), dims.data(), nullptr), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const hid_t d = H5Dcreate2(id, name.c_str(), H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
  }
};

// A weights-only file of `net`; `conv_dims` is how the Conv2D kernel is laid out.
void write_weights_only(const std::string& path, UserNet& net, std::vector<hsize_t> conv_dims,
                        bool declare_no_checksums = true) {
  RawFile f(path);
  f.vlen_attribute("format", "hubble-checkpoint");
  f.int_attribute("format_version", 2);
  f.vlen_attribute("architecture", UserNet::architecture());
  f.vlen_attribute("scalar", "float");
  if (declare_no_checksums) f.vlen_attribute("checksums", "none");
  const auto params = net.parameters();  // conv2d_1/kernel, conv2d_1/bias, dense_1/kernel, dense_1/bias
  f.floats("weights/" + params[0].name, params[0].value, conv_dims);
  f.floats("weights/" + params[1].name, params[1].value, {3});
  f.floats("weights/" + params[2].name, params[2].value, {48, 4});
  f.floats("weights/" + params[3].name, params[3].value, {4});
  f.vlen_dataset("metadata/model/class_names", "a\nb\nc\nd");
}

std::vector<float> predict(UserNet& net) {
  Tensor<float> x(2, 6, 6, 2);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) / 7.f;
  const auto& y = net.forward(x, Mode::eval);
  return {y.data(), y.data() + y.size()};
}

}  // namespace

TEST_CASE(
    "user checkpoints: a weights-only file with h5py's variable-length strings loads for inference and fine-tuning") {
  const test_support::TempDir dir("checkpoint_user");
  const std::string path = dir.file("weights_only.h5");
  UserNet source(1), target(2);
  write_weights_only(path, source, {3, 3, 2, 3});
  const CheckpointHeader h = read_checkpoint_header(path);
  CHECK(h.architecture == UserNet::architecture());  // a variable-length attribute
  CHECK_FALSE(h.has_epoch);
  CHECK_FALSE(h.checksums);
  const CheckpointData data = load_checkpoint(path, target);
  CHECK(data.epoch == 0);
  CHECK(data.meta("model/class_names") == "a\nb\nc\nd");  // a variable-length dataset
  CHECK(predict(target) == predict(source));
  // Fine-tuning: a fresh optimiser trains from the loaded weights.
  Adam<float> adam;
  Tensor<float> x(2, 6, 6, 2);
  x.fill(0.5f);
  const std::vector<int> labels{0, 1};
  CHECK_NOTHROW(target.train_step(x, labels, adam));
  // Resuming needs the full training state, and says which entry is missing.
  UserNet other(3);
  Adam<float> resume;
  const std::string e = test_support::error_of([&] { load_checkpoint(path, other, &resume); });
  CHECK(e.find("lacks dataset 'epoch'") != std::string::npos);
  CHECK(e.find(path) != std::string::npos);
}

TEST_CASE(
    "user checkpoints: an array in another layout is refused, naming the array, the shape found and the shape "
    "expected") {
  const test_support::TempDir dir("checkpoint_user_layout");
  const std::string path = dir.file("torch_layout.h5");
  UserNet source(1), target(2), untouched(2);
  write_weights_only(path, source, {3, 2, 3, 3});  // PyTorch's [out, in, kh, kw]: same 54 values
  const std::string e = test_support::error_of([&] { load_checkpoint(path, target); });
  CHECK(e.find("'weights/conv2d_1/kernel' has shape [3,2,3,3], expected [3,3,2,3]") != std::string::npos);
  CHECK(predict(target) == predict(untouched));  // nothing changed
}

TEST_CASE("user checkpoints: a format-2 file that neither has checksums nor declares 'none' is refused as incomplete") {
  const test_support::TempDir dir("checkpoint_user_undeclared");
  const std::string path = dir.file("undeclared.h5");
  UserNet source(1), target(2);
  write_weights_only(path, source, {3, 3, 2, 3}, /*declare_no_checksums=*/false);
  const std::string e = test_support::error_of([&] { load_checkpoint(path, target); });
  CHECK(e.find("lacks attribute 'dataset_count'") != std::string::npos);
}

TEST_CASE("checkpoint: hubble stores each parameter with its shape (Conv2D [kh,kw,in,out], Dense [in,out])") {
  const test_support::TempDir dir("checkpoint_shapes");
  const std::string path = dir.file("net.h5");
  UserNet net(1);
  save_checkpoint(path, net, nullptr);
  const h5::File f = h5::File::open(path);
  CHECK(f.info("weights/conv2d_1/kernel").dims == std::vector<hsize_t>{3, 3, 2, 3});
  CHECK(f.info("weights/dense_1/kernel").dims == std::vector<hsize_t>{48, 4});
  CHECK(f.info("weights/dense_1/bias").dims == std::vector<hsize_t>{4});
  UserNet back(2);
  load_checkpoint(path, back);
  CHECK(predict(back) == predict(net));
}
