// Post-training int8 quantisation of a whole network (lowp/quantized_plan.hpp): a trained small
// network keeps its predictions, every int8 path gives the same answer, thread counts do not
// matter, the first Dense runs in int8 where Flatten feeds it, model files round-trip (and
// version 1 still loads), and mismatched or damaged inputs are refused.
#include <doctest/doctest.h>
#include <hdf5.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "hubble/data/augment.hpp"
#include "hubble/hubble.hpp"
#include "hubble/lowp/quantized_file.hpp"
#include "hubble/lowp/quantized_plan.hpp"
#include "support.hpp"
#include "tiny_images.hpp"

using namespace hubble;
namespace kl = hubble::kernels::lowp;

namespace {
using SmallNet = Network<float, Input<12, 12, 3>, Conv2D<8, 3>, BatchNorm, ReLU, MaxPool<2>, Conv2D<16, 3>, ReLU,
                         Flatten, Dense<16>, ReLU, Dropout<0.1>, Dense<4>, Softmax>;

Tensor<float> images_of(const data::ImageSet& set) {
  std::vector<int> idx(std::size_t(set.size()));
  for (int i = 0; i < set.size(); ++i) idx[std::size_t(i)] = i;
  Tensor<float> x;
  data::to_tensor(set, std::span<const int>(idx), x);
  return x;
}
int argmax(const float* p, int k) { return int(std::max_element(p, p + k) - p); }

std::string scratch(const std::string& name) {
  static const test_support::TempDir dir("quantized_file");
  return (dir.path() / name).string();
}

// Rewrites one dataset of a saved file in place, with a matching checksum: a file edited by hand.
template <class V>
void rewrite(const std::string& path, const std::string& name, const std::vector<V>& values, hid_t type) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  const hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  const hid_t attr = H5Aopen(ds, "checksum", H5P_DEFAULT);
  const std::uint64_t digest = checkpoint_digest(values.data(), values.size() * sizeof(V));
  CHECK(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
  CHECK(H5Awrite(attr, H5T_NATIVE_UINT64, &digest) >= 0);
  H5Aclose(attr);
  H5Dclose(ds);
  H5Fclose(file);
}

// Sets the file's format_version attribute: a file written by another version of hubble.
void set_version(const std::string& path, std::int64_t version) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  const hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
  REQUIRE(attr >= 0);
  CHECK(H5Awrite(attr, H5T_NATIVE_INT64, &version) >= 0);
  H5Aclose(attr);
  H5Fclose(file);
}

bool has_entry(const std::string& path, const std::string& name) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  // Each step of the path must exist before H5Lexists may look below it.
  bool found = true;
  for (std::size_t at = name.find('/'); found; at = name.find('/', at + 1)) {
    found = H5Lexists(file, name.substr(0, at).c_str(), H5P_DEFAULT) > 0;
    if (at == std::string::npos) break;
  }
  H5Fclose(file);
  return found;
}

// A SmallNet trained on 64 tiny images (4 classes), and 64 fresh images to score it on.
struct Trained {
  SmallNet net{11};
  data::ImageSet train = test_support::tiny_images(64, 1), test = test_support::tiny_images(64, 2);
  Tensor<float> x_train = images_of(train), x_test = images_of(test);
  Trained() {
    Adam<float> adam;
    for (int step = 0; step < 60; ++step) net.train_step(x_train, train.labels, adam);
  }
};
}  // namespace

TEST_CASE("quantized plan: a trained network keeps its predictions in int8") {
  Trained t;
  const lowp::InferencePlan plan = lowp::plan_of(t.net);
  const std::vector<float> fp32 = lowp::run_fp32(plan, t.x_test.data(), 64);
  for (auto method :
       {lowp::CalibrationMethod::minmax, lowp::CalibrationMethod::percentile, lowp::CalibrationMethod::entropy}) {
    const std::string method_name = lowp::name_of(method);
    CAPTURE(method_name);
    const lowp::Calibration cal = lowp::calibrate(plan, t.x_train.data(), 64, method);
    CHECK(cal.input.lo == 0.0f);  // images in [0, 1]: the input's codes are the pixels themselves
    CHECK(cal.input.hi == 1.0f);
    REQUIRE(cal.conv_outputs.size() == 2);
    for (const auto& r : cal.conv_outputs) CHECK(r.hi > 0.0f);
    // The last stage's range, which only the int8 Dense reads, is the whole observed one.
    const lowp::Calibration whole = lowp::calibrate(plan, t.x_train.data(), 64, lowp::CalibrationMethod::minmax);
    CHECK(cal.conv_outputs.back().lo == whole.conv_outputs.back().lo);
    CHECK(cal.conv_outputs.back().hi == whole.conv_outputs.back().hi);
    const lowp::QuantizedPlan q(plan, cal);
    CHECK(q.input_quant().scale == doctest::Approx(1.0 / 255.0));
    const std::vector<float> int8 = q.run(t.x_test.data(), 64);
    REQUIRE(int8.size() == fp32.size());
    int agree = 0, right_fp32 = 0, right_int8 = 0;
    double worst = 0;
    for (int i = 0; i < 64; ++i) {
      const int a = argmax(&fp32[std::size_t(i) * 4], 4), b = argmax(&int8[std::size_t(i) * 4], 4);
      agree += a == b;
      right_fp32 += a == t.test.labels[std::size_t(i)];
      right_int8 += b == t.test.labels[std::size_t(i)];
      for (int k = 0; k < 4; ++k)
        worst = std::max(worst, std::abs(double(fp32[std::size_t(i) * 4 + k]) - int8[std::size_t(i) * 4 + k]));
    }
    MESSAGE(method_name << ": argmax agrees on " << agree << "/64, accuracy fp32 " << right_fp32 << "/64, int8 "
                        << right_int8 << "/64, largest probability difference " << worst);
    CHECK(right_fp32 >= 56);  // the network did learn (else agreement would say little)
    CHECK(agree >= 62);
    CHECK(std::abs(right_fp32 - right_int8) <= 2);
    CHECK(worst < 0.1);
  }
}

TEST_CASE("quantized plan: every int8 path this CPU has gives the same probabilities, at any thread count") {
  Trained t;
  const lowp::InferencePlan plan = lowp::plan_of(t.net);
  const lowp::Calibration cal = lowp::calibrate(plan, t.x_train.data(), 64, lowp::CalibrationMethod::percentile);
  const std::vector<float> generic = lowp::QuantizedPlan(plan, cal, kl::Int8Path::generic).run(t.x_test.data(), 64);
  for (kl::Int8Path p : kl::all_int8_paths) {
    if (!kl::available(p)) {
      MESSAGE("skipped: int8 path " << kl::name_of(p) << " (this CPU lacks it or HUBBLE_CPU_LIMIT hides it)");
      continue;
    }
    const std::string path_name = kl::name_of(p);
    CAPTURE(path_name);
    const lowp::QuantizedPlan q(plan, cal, p);
    const std::vector<float> got = q.run(t.x_test.data(), 64);
    CHECK(std::equal(got.begin(), got.end(), generic.begin()));
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    const std::vector<float> one_thread = q.run(t.x_test.data(), 64);
    omp_set_num_threads(before);
    CHECK(std::equal(one_thread.begin(), one_thread.end(), generic.begin()));
    // Batch 1 gives each image the answer it gets in a batch: the integer layers exactly, the fp32
    // head (Eigen's product blocks by batch size) to float rounding.
    const std::vector<float> single = q.run(t.x_test.data() + 5 * 12 * 12 * 3, 1);
    for (int k = 0; k < 4; ++k)
      CHECK(single[std::size_t(k)] == doctest::Approx(generic[std::size_t(5 * 4 + k)]).epsilon(1e-5));
  }
}

TEST_CASE("quantized plan: the first Dense after Flatten runs in int8, and only there") {
  Trained t;
  const lowp::InferencePlan plan = lowp::plan_of(t.net);
  const lowp::Calibration cal = lowp::calibrate(plan, t.x_train.data(), 64, lowp::CalibrationMethod::percentile);
  const lowp::QuantizedPlan int8_head(plan, cal), fp32_head(plan, cal, kl::int8_path(), lowp::HeadPrecision::fp32);
  REQUIRE(int8_head.dense() != nullptr);
  CHECK(fp32_head.dense() == nullptr);
  const auto& w = int8_head.dense()->weights;
  CHECK(w.rows == plan.dense[0].in);  // Dense<16> over the flattened 3x3x16 codes
  CHECK(w.f == plan.dense[0].out);
  // Its codes are the fp32 kernel quantised per unit: within half a step of each weight.
  double worst_step = 0;
  for (int i = 0; i < w.rows; ++i)
    for (int j = 0; j < w.f; ++j)
      worst_step = std::max(worst_step, std::abs(double(w.dequantized(i, j)) -
                                                 plan.dense[0].w[std::size_t(i) * std::size_t(w.f) + std::size_t(j)]) /
                                            w.scale[std::size_t(j)]);
  CHECK(worst_step <= 0.5 + 1e-6);
  // The int8 Dense changes the probabilities (so it did run), but not the predictions.
  const std::vector<float> a = int8_head.run(t.x_test.data(), 64), b = fp32_head.run(t.x_test.data(), 64);
  REQUIRE(a.size() == b.size());
  int agree = 0;
  double worst = 0;
  for (int i = 0; i < 64; ++i) agree += argmax(&a[std::size_t(i) * 4], 4) == argmax(&b[std::size_t(i) * 4], 4);
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  MESSAGE("int8 vs fp32 Dense: argmax agrees on " << agree << "/64, largest probability difference " << worst);
  // Seen: 64/64 and 1.5e-4 (the last stage's codes and the Dense's weights each move by under half
  // a step); the Dense without its ReLU moved a probability by 0.017.
  CHECK(!std::equal(a.begin(), a.end(), b.begin()));
  CHECK(agree >= 62);
  CHECK(worst < 0.005);
  // After GlobalAvgPool there is no code to read: the head stays fp32 whatever is asked.
  using GapNet = Network<float, Input<12, 12, 3>, Conv2D<8, 3>, ReLU, GlobalAvgPool, Dense<4>, Softmax>;
  GapNet gap(5);
  const lowp::InferencePlan gap_plan = lowp::plan_of(gap);
  const lowp::QuantizedPlan gap_q(gap_plan,
                                  lowp::calibrate(gap_plan, t.x_train.data(), 16, lowp::CalibrationMethod::minmax));
  CHECK(gap_q.dense() == nullptr);
  CHECK(gap_q.run(t.x_test.data(), 4).size() == 16);
}

TEST_CASE("quantized plan: a calibration made for another network is refused") {
  Trained t;
  const lowp::InferencePlan plan = lowp::plan_of(t.net);
  lowp::Calibration cal = lowp::calibrate(plan, t.x_train.data(), 8, lowp::CalibrationMethod::minmax);
  cal.conv_outputs.pop_back();
  CHECK(test_support::error_of([&] {
          lowp::QuantizedPlan q(plan, cal);
        }).find("1 conv ranges, the plan 2 conv stages") != std::string::npos);
  CHECK(test_support::error_of([&] {
          lowp::calibrate(plan, t.x_train.data(), 0, lowp::CalibrationMethod::minmax);
        }).find("at least one image") != std::string::npos);
}

TEST_CASE("quantized file: a saved int8 model loads back and gives the same probabilities, bit for bit") {
  Trained t;
  const lowp::InferencePlan plan = lowp::plan_of(t.net);
  const lowp::QuantizedPlan q(plan, lowp::calibrate(plan, t.x_train.data(), 64, lowp::CalibrationMethod::entropy));
  const std::string path = scratch("small.int8.h5");
  lowp::save_quantized(path, q, {{"class_names", "a,b,c,d"}});
  lowp::QuantizedFile info;
  const lowp::QuantizedPlan back = lowp::load_quantized(path, &info);
  CHECK(info.metadata.at("class_names") == "a,b,c,d");
  CHECK(back.plan().architecture == plan.architecture);
  const std::vector<float> a = q.run(t.x_test.data(), 64), b = back.run(t.x_test.data(), 64);
  CHECK(std::equal(a.begin(), a.end(), b.begin()));
  // The first Dense is stored as its s8 codes and scales, the second as fp32.
  REQUIRE(back.dense() != nullptr);
  CHECK(back.dense()->weights.q == q.dense()->weights.q);
  CHECK(has_entry(path, "dense/0/weights"));
  CHECK(has_entry(path, "dense/0/scales"));
  CHECK(!has_entry(path, "dense/0/kernel"));
  CHECK(has_entry(path, "dense/1/kernel"));
  // A model with an fp32 head round-trips as one.
  const lowp::QuantizedPlan fp32_head(plan,
                                      lowp::calibrate(plan, t.x_train.data(), 64, lowp::CalibrationMethod::entropy),
                                      kl::int8_path(), lowp::HeadPrecision::fp32);
  const std::string fp32_path = scratch("small_fp32_head.int8.h5");
  lowp::save_quantized(fp32_path, fp32_head);
  const lowp::QuantizedPlan fp32_back = lowp::load_quantized(fp32_path);
  CHECK(fp32_back.dense() == nullptr);
  const std::vector<float> c = fp32_head.run(t.x_test.data(), 64), d = fp32_back.run(t.x_test.data(), 64);
  CHECK(std::equal(c.begin(), c.end(), d.begin()));
  // Format version 1 (written before int8 Dense layers) is version 2 without them: it still loads.
  set_version(fp32_path, 1);
  const std::vector<float> e = lowp::load_quantized(fp32_path).run(t.x_test.data(), 64);
  CHECK(std::equal(c.begin(), c.end(), e.begin()));
  // The loaded plan's fp32 weights are the dequantised codes: close to the trained ones, not equal.
  const std::vector<float> fake_quant = lowp::run_fp32(back.plan(), t.x_test.data(), 64);
  int agree = 0;
  for (int i = 0; i < 64; ++i) agree += argmax(&fake_quant[std::size_t(i) * 4], 4) == argmax(&a[std::size_t(i) * 4], 4);
  CHECK(agree >= 62);
}

TEST_CASE("quantized file: damaged or foreign files are refused, naming the file and the entry") {
  Trained t;
  const lowp::InferencePlan plan = lowp::plan_of(t.net);
  const lowp::QuantizedPlan q(plan, lowp::calibrate(plan, t.x_train.data(), 16, lowp::CalibrationMethod::minmax));
  const std::string path = scratch("edit.int8.h5");
  lowp::save_quantized(path, q);
  CHECK(test_support::error_of([] { lowp::load_quantized(scratch("none.int8.h5")); }).find("no such file") !=
        std::string::npos);
  // A fp32 checkpoint is not an int8 model.
  const std::string ckpt = scratch("fp32.h5");
  save_checkpoint(ckpt, t.net, nullptr, CheckpointData{});
  const std::string foreign = test_support::error_of([&] { lowp::load_quantized(ckpt); });
  CHECK(foreign.find(ckpt) != std::string::npos);
  CHECK(foreign.find("not a hubble int8 model") != std::string::npos);
  // Edited copies: a code out of range, a scale of 0, a stage whose input does not chain.
  const auto edited = [&](auto&& edit) {
    const std::string copy = scratch("edited.int8.h5");
    std::filesystem::copy_file(path, copy, std::filesystem::copy_options::overwrite_existing);
    edit(copy);
    return test_support::error_of([&] { lowp::load_quantized(copy); });
  };
  const std::string bad_code = edited([](const std::string& file) {
    std::vector<std::int8_t> w(3 * 3 * 3 * 8, 1);
    w[3] = -128;
    rewrite(file, "conv/0/weights", w, H5T_NATIVE_INT8);
  });
  CHECK(bad_code.find("conv/0/weights") != std::string::npos);
  CHECK(bad_code.find("-128") != std::string::npos);
  const std::string bad_scale = edited([](const std::string& file) {
    rewrite(file, "conv/0/output_scale", std::vector<float>{0.0f}, H5T_NATIVE_FLOAT);
  });
  CHECK(bad_scale.find("conv/0/output_scale") != std::string::npos);
  const std::string bad_chain = edited([](const std::string& file) {
    // conv/1 now claims 6 input channels where conv/0 gives 8.
    std::vector<std::int64_t> g = {5, 5, 6, 3, 1, 0, 0, 3, 3, 16, 1, 0};
    rewrite(file, "conv/1/geometry", g, H5T_NATIVE_INT64);
  });
  CHECK(bad_chain.find("conv/1/") != std::string::npos);
  // The int8 Dense: a code out of range; its codes in a version-1 file, which cannot have them; a
  // version from the future.
  const int dense_codes = plan.dense[0].in * plan.dense[0].out;
  const std::string bad_dense = edited([&](const std::string& file) {
    std::vector<std::int8_t> w(std::size_t(dense_codes), 2);
    w[5] = -128;
    rewrite(file, "dense/0/weights", w, H5T_NATIVE_INT8);
  });
  CHECK(bad_dense.find("dense/0/weights") != std::string::npos);
  CHECK(bad_dense.find("-128") != std::string::npos);
  const std::string old_version = edited([](const std::string& file) { set_version(file, 1); });
  CHECK(old_version.find("dense/0/weights") != std::string::npos);
  CHECK(old_version.find("version 2") != std::string::npos);
  const std::string future = edited([](const std::string& file) { set_version(file, 3); });
  CHECK(future.find("format version 3 is not supported") != std::string::npos);
}
