// hubble::onnx::save_quantized: int8 models (lowp::QuantizedPlan) as ONNX QDQ graphs.
//  * the export passes onnx::checker and strict shape inference, holds hubble's s8 codes in ONNX's
//    [F,C,K,K] order with per-output-channel DequantizeLinear, requantises every conv stage but the
//    last with the stage's u8 code (the last too when the first Dense is int8: then MatMulInteger
//    holds its codes), and names the architecture and the int8 scheme in its metadata;
//  * ONNX Runtime (npm's onnxruntime-node) runs it and agrees with QuantizedPlan::run on 200 real
//    images, both as ONNX Runtime optimises it (graph optimisation 'all': QLinearConv on u8/s8, as
//    its profiler shows) and as the graph reads literally (no optimisation: fp32 Conv of the
//    dequantised values, then QuantizeLinear).
// Why the two sides can differ at all: each requantisation rounds real / sy to a u8 code, and the
// real value is computed differently (hubble: sx*sw*(acc - zx*wsum) + b in fp32, constants folded;
// ONNX Runtime fused: acc + round(b / (sx*sw)) in int32, times sx*sw/sy in fp32; literal: an fp32
// convolution of dequantised values), so a value within an ulp or so of a rounding boundary can
// land one code apart, and that step (one scale of the stage's output) travels on to the
// probabilities. Tolerances (onnx_support.hpp check_int8_agreement): argmax equal on >= 98% of the
// images, mean |p_hubble - p_ort| <= 1e-3 and max <= 0.05. Seen (networks trained 3 steps): 200/200
// argmax, mean 6e-6, max 2.5e-4 for PaperNet (both ORT modes); 200/200, mean 2.4e-6, max 2e-5 for
// ImprovedNet: a few codes one apart. On a CPU without VNNI this needs ONNX Runtime's
// session.x64quantprecision, which ort_bench.js sets (onnx_support.hpp says why).
// The bounds leave room for sharper (better trained) networks, where one code moves a probability
// more, while a wrong scale, layout or zero point moves most images' probabilities by far more.
#include <doctest/doctest.h>

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "../support.hpp"
#include "hubble/data/galaxy10.hpp"
#include "hubble/improved_net.hpp"
#include "hubble/lowp/quantized_plan.hpp"
#include "hubble/onnx/onnx.hpp"
#include "hubble/paper_net.hpp"
#include "onnx_support.hpp"

namespace {

using namespace hubble;
using test_support::error_of;
using test_support::TempDir;
using namespace onnx_test;

// A stage with a pool, one without, a 'same' stride-2 first conv with BatchNorm, a Flatten head.
using QdqFlatNet =
    Sequential<Input<20, 18, 3>, Conv2D<4, 3, 2, Same>, BatchNorm, ReLU, MaxPool<2>, Conv2D<6, 2, 1>, ReLU,
               Conv2D<5, 3, 1, Same>, ReLU, MaxPool<2>, Flatten, Dense<7>, ReLU, Dense<5>, Softmax>;
// GlobalAvgPool head; the last conv stage without a pool.
using QdqGapNet = Sequential<Input<16, 16, 2>, Conv2D<8, 3, 1, Same>, BatchNorm, ReLU, MaxPool<2>, Conv2D<6, 3, 1>,
                             ReLU, GlobalAvgPool, Dense<4>, Softmax>;

template <class Net>
lowp::QuantizedPlan quantize(Net& net, const Tensor<float>& calibration) {
  const lowp::InferencePlan plan = lowp::plan_of(net);
  const lowp::Calibration cal =
      lowp::calibrate(plan, calibration.data(), calibration.batch(), lowp::CalibrationMethod::percentile);
  return lowp::QuantizedPlan(plan, cal);
}

const ::onnx::TensorProto& initializer(const ::onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return t;
  FAIL("no initializer " << name);
  return m.graph().initializer(0);
}

bool has_initializer(const ::onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return true;
  return false;
}

const ::onnx::NodeProto& node_named(const ::onnx::ModelProto& m, const std::string& name) {
  for (const auto& n : m.graph().node())
    if (n.name() == name) return n;
  FAIL("no node " << name);
  return m.graph().node(0);
}

int count_ops(const ::onnx::ModelProto& m, const std::string& op) {
  int k = 0;
  for (const auto& n : m.graph().node()) k += n.op_type() == op;
  return k;
}

std::string metadata(const ::onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props())
    if (p.key() == key) return p.value();
  return "";
}

// The structural checks of one export against the plan it came from.
void check_export(const lowp::QuantizedPlan& q, const std::string& file) {
  CHECK_NOTHROW(hubble::onnx::check_file(file));
  const auto m = read_proto(file);
  const auto& plan = q.plan();
  CHECK(m.opset_import(0).version() == 13);
  CHECK(metadata(m, "hubble.architecture") == plan.architecture);
  CHECK(metadata(m, "hubble.int8").find("per output channel") != std::string::npos);
  // One QuantizeLinear for the input, one after each requantised stage's Relu and one after its
  // pool (every stage but the last, and the last too when the first Dense is int8), and one after
  // Flatten for the int8 Dense.
  const bool int8_dense = q.dense() != nullptr;
  CHECK(int8_dense == (plan.bridge == lowp::Bridge::flatten));  // QuantizedPlan's default where it applies
  int requantised = 1 + int8_dense;
  for (std::size_t i = 0; i < plan.convs.size(); ++i)
    if (i + 1 < plan.convs.size() || int8_dense) requantised += 1 + (plan.convs[i].pool ? 1 : 0);
  CHECK(count_ops(m, "QuantizeLinear") == requantised);
  CHECK(count_ops(m, "Conv") == int(plan.convs.size()));
  CHECK(count_ops(m, "Gemm") == int(plan.dense.size()) - int(q.dense() != nullptr));
  CHECK(count_ops(m, "MatMulInteger") == int(q.dense() != nullptr));
  // The input's code.
  const auto& in_zero = initializer(m, "input/code/zero_point");
  CHECK(in_zero.data_type() == ::onnx::TensorProto::UINT8);
  CHECK(int(std::uint8_t(in_zero.raw_data()[0])) == q.input_quant().zero_point);
  for (std::size_t i = 0; i < plan.convs.size(); ++i) {
    const auto& s = plan.convs[i];
    const auto& st = q.stages()[i];
    CAPTURE(s.name);
    const int K = s.g.k, C = s.g.c, F = s.g.f;
    const auto& w = initializer(m, s.name + "/kernel_q");
    REQUIRE(w.data_type() == ::onnx::TensorProto::INT8);
    REQUIRE(std::vector<std::int64_t>(w.dims().begin(), w.dims().end()) == std::vector<std::int64_t>{F, C, K, K});
    // Every code where ONNX's [f][c][ky][kx] puts hubble's [ky][kx][c][f].
    int misplaced = 0;
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx)
        for (int c = 0; c < C; ++c)
          for (int f = 0; f < F; ++f)
            misplaced += std::int8_t(w.raw_data()[((std::size_t(f) * C + c) * K + ky) * K + kx]) !=
                         st.weights.q[((std::size_t(ky) * K + kx) * C + c) * F + f];
    CHECK(misplaced == 0);
    const auto& dq = node_named(m, s.name + "/kernel_dequantize");
    REQUIRE(dq.attribute_size() == 1);
    CHECK((dq.attribute(0).name() == "axis" && dq.attribute(0).i() == 0));
    const auto& scale = initializer(m, s.name + "/kernel_scale");
    REQUIRE(scale.raw_data().size() == std::size_t(F) * 4);
    CHECK(std::memcmp(scale.raw_data().data(), st.weights.scale.data(), std::size_t(F) * 4) == 0);
    // The bias: int32 at scale sx * sw[f], within half a step of hubble's fp32 bias.
    const auto& bq = initializer(m, s.name + "/bias_q");
    const auto& bs = initializer(m, s.name + "/bias_scale");
    REQUIRE(bq.data_type() == ::onnx::TensorProto::INT32);
    double worst = 0;
    for (int f = 0; f < F; ++f) {
      std::int32_t code;
      float step;
      std::memcpy(&code, bq.raw_data().data() + 4 * f, 4);
      std::memcpy(&step, bs.raw_data().data() + 4 * f, 4);
      worst = std::max(worst, std::abs(double(code) * step - st.bias[std::size_t(f)]) / step);
    }
    CHECK(worst <= 0.5 + 1e-3);
    // Requantised stages carry their output code; the last only when the int8 Dense reads it (else
    // hubble writes it in fp32).
    const bool requantised_stage = i + 1 < plan.convs.size() || int8_dense;
    CHECK(has_initializer(m, s.name + "/code/scale") == requantised_stage);
    if (requantised_stage) {
      const auto& zero = initializer(m, s.name + "/code/zero_point");
      CHECK(int(std::uint8_t(zero.raw_data()[0])) == st.out.zero_point);
    }
  }
  // The int8 Dense: hubble's s8 [in][out] with rows in (h,w,c) order as MatMulInteger's B [I, U]
  // with rows in (c,h,w) order, and its step sx * sw[u] per unit.
  for (std::size_t j = 0; j < plan.dense.size(); ++j) {
    const auto& d = plan.dense[j];
    CAPTURE(d.name);
    const bool has_codes = has_initializer(m, d.name + "/kernel_q");
    CHECK(has_codes == (j == 0 && int8_dense));
    if (!has_codes) continue;
    const auto& wq = q.dense()->weights;
    const int U = d.out, I = d.in, fh = plan.convs.back().out_h, fw = plan.convs.back().out_w,
              fc = plan.convs.back().g.f;
    const auto& w = initializer(m, d.name + "/kernel_q");
    REQUIRE(w.data_type() == ::onnx::TensorProto::INT8);
    REQUIRE(std::vector<std::int64_t>(w.dims().begin(), w.dims().end()) == std::vector<std::int64_t>{I, U});
    int misplaced = 0;
    for (int h = 0; h < fh; ++h)
      for (int x = 0; x < fw; ++x)
        for (int c = 0; c < fc; ++c)
          for (int u = 0; u < U; ++u)
            misplaced += std::int8_t(w.raw_data()[((std::size_t(c) * fh + h) * fw + x) * U + u]) !=
                         wq.q[((std::size_t(h) * fw + x) * fc + c) * U + u];
    CHECK(misplaced == 0);
    const auto& step = initializer(m, d.name + "/kernel_step");
    REQUIRE(step.raw_data().size() == std::size_t(U) * 4);
    const float sx = q.stages().back().out.scale;
    int wrong_steps = 0;
    for (int u = 0; u < U; ++u) {
      float v;
      std::memcpy(&v, step.raw_data().data() + 4 * u, 4);
      wrong_steps += v != sx * wq.scale[std::size_t(u)];
    }
    CHECK(wrong_steps == 0);
  }
}

// stdout of a command that must succeed.
std::string output_of(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  for (std::size_t got; (got = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, got);
  REQUIRE_MESSAGE(pclose(p) == 0, cmd << "\n" << out);
  return out;
}

// A few Adam steps on the first training images, so the weights (and calibration) are not the initial ones.
template <class Net>
void train_a_little(Net& net, const Tensor<float>& x, const std::vector<int>& labels, int steps) {
  Adam<float> adam;
  for (int s = 0; s < steps; ++s) {
    Tensor<float> xb(32, x.height(), x.width(), x.channels());
    std::copy(x.sample(32 * s), x.sample(32 * s) + xb.size(), xb.data());
    net.train_step(xb, std::vector<int>(labels.begin() + 32 * s, labels.begin() + 32 * (s + 1)), adam);
  }
}

}  // namespace

TEST_CASE("onnx int8: QDQ exports pass onnx::checker and shape inference and hold the plan's codes and scales") {
  TempDir dir("onnx_qdq_export");
  auto flat = std::make_unique<QdqFlatNet>(1);
  auto gap = std::make_unique<QdqGapNet>(2);
  randomize(*flat, 11);
  randomize(*gap, 12);
  const auto qf = quantize(*flat, random_input<QdqFlatNet>(16, 3));
  const auto qg = quantize(*gap, random_input<QdqGapNet>(16, 4));
  hubble::onnx::ExportOptions options;
  options.metadata["model/class_names"] = "a,b,c,d,e";
  hubble::onnx::save_quantized(qf, dir.file("flat.onnx"), options);
  hubble::onnx::save_quantized(qg, dir.file("gap.onnx"));
  {
    CAPTURE("flat");
    check_export(qf, dir.file("flat.onnx"));
    CHECK(metadata(read_proto(dir.file("flat.onnx")), "model/class_names") == "a,b,c,d,e");
  }
  {
    CAPTURE("gap");
    check_export(qg, dir.file("gap.onnx"));
    CHECK(count_ops(read_proto(dir.file("gap.onnx")), "GlobalAveragePool") == 1);
  }
  auto paper = std::make_unique<PaperNet>(3);
  const auto qp = quantize(*paper, random_input<PaperNet>(4, 5));
  hubble::onnx::save_quantized(qp, dir.file("paper.onnx"));
  check_export(qp, dir.file("paper.onnx"));
}

TEST_CASE("onnx int8: export errors name the file and leave nothing behind") {
  TempDir dir("onnx_qdq_errors");
  auto gap = std::make_unique<QdqGapNet>(2);
  randomize(*gap, 12);
  const auto q = quantize(*gap, random_input<QdqGapNet>(8, 4));
  hubble::onnx::ExportOptions reserved;
  reserved.metadata["hubble.int8"] = "mine";
  const std::string file = dir.file("reserved.onnx");
  const std::string e = error_of([&] { hubble::onnx::save_quantized(q, file, reserved); });
  CHECK(e.find(file) != std::string::npos);
  CHECK(e.find("metadata key 'hubble.int8' is reserved") != std::string::npos);
  CHECK(!std::filesystem::exists(file));
  const std::string nowhere = dir.file("no/such/folder/m.onnx");
  CHECK(error_of([&] { hubble::onnx::save_quantized(q, nowhere); }).find(nowhere) != std::string::npos);
}

TEST_CASE("onnx int8: ONNX Runtime runs the QDQ exports of PaperNet and ImprovedNet as QuantizedPlan does") {
  if (!std::filesystem::exists(shared("galaxy10_real_train.h5"))) {
    MESSAGE("skipped: " << HUBBLE_SHARED_DATA_DIR << " lacks galaxy10_real_train.h5");
    return;
  }
  if (!have("node --version") || !std::filesystem::exists(node_path() + "/onnxruntime-node/package.json")) {
    MESSAGE(
        "skipped: ONNX Runtime is absent (needs node and scripts/install-onnxruntime.sh, which installs npm's "
        "onnxruntime-node into "
        << node_path() << ")");
    return;
  }
  TempDir dir("onnx_qdq_ort");
  data::LoadOptions o;
  o.limit = 200;
  const data::ImageSet set = data::load_galaxy10(shared("galaxy10_real_train.h5"), o);
  const Tensor<float> x = first_training_images();
  REQUIRE(x.batch() == 200);
  const std::string inputs = write_nchw(x, dir.file("inputs.f32"));
  const std::string env = "NODE_PATH='" + node_path() + "' ";
  auto check = [&]<class Net>(std::unique_ptr<Net> net, const std::string& name) {
    train_a_little(*net, x, set.labels, 3);
    const auto q = quantize(*net, x);
    const std::string file = dir.file(name + ".int8.onnx");
    hubble::onnx::save_quantized(q, file);
    const std::vector<float> ours = q.run(x.data(), x.batch());
    // As ONNX Runtime optimises it (benchmarks/ort_bench.js: graph optimisation 'all').
    const std::string fused = dir.file("ort_fused.f32");
    output_of(env + "node '" + HUBBLE_SOURCE_DIR + "/benchmarks/ort_bench.js' predict '" + file + "' --batch 200 " +
              "--inputs '" + inputs + "' --probs '" + fused + "'");
    // As the graph reads (tests/onnx/run_onnxruntime.js: no optimisation).
    const std::string literal = dir.file("ort_literal.f32");
    output_of(env + "node '" + HUBBLE_SOURCE_DIR + "/tests/onnx/run_onnxruntime.js' '" + file + "' '" + inputs +
              "' 200 3 128 128 '" + literal + "'");
    for (const auto& [how, path] : {std::pair<std::string, std::string>{"optimised", fused}, {"literal", literal}}) {
      check_int8_agreement(name + " int8 (real images)", how, compare(ours, read_floats(path, ours.size()), 10));
    }
    // ONNX Runtime ran the requantised stages as integer convolutions: its profiler names the kernels.
    const std::string profile = output_of(env + "node '" + HUBBLE_SOURCE_DIR + "/benchmarks/ort_bench.js' profile '" +
                                          file + "' --batch 2 --steps 1 --dir '" + dir.file("profile") + "'");
    int qlinear = 0;
    for (std::size_t at = 0; (at = profile.find("\"op\":\"QLinearConv\"", at)) != std::string::npos; ++at) ++qlinear;
    int integer_dense = 0;
    for (std::size_t at = 0; (at = profile.find("\"op\":\"MatMulInteger", at)) != std::string::npos; ++at)
      ++integer_dense;
    MESSAGE(name << " int8: ONNX Runtime ran " << qlinear << " QLinearConv kernels for " << q.plan().convs.size()
                 << " conv stages, and " << integer_dense << " MatMulInteger for " << (q.dense() ? 1 : 0)
                 << " int8 Dense");
    CHECK(qlinear >= int(q.plan().convs.size()) - 1);
    CHECK(integer_dense == (q.dense() ? 1 : 0));
  };
  check(std::make_unique<PaperNet>(7), "PaperNet");
  check(std::make_unique<ImprovedNet>(7), "ImprovedNet");
}

TEST_CASE("onnx int8: ONNX Runtime agrees on 'same' padding, stride 2, a stage without pool and a GlobalAvgPool head") {
  if (!have("node --version") || !std::filesystem::exists(node_path() + "/onnxruntime-node/package.json")) {
    MESSAGE(
        "skipped: ONNX Runtime is absent (needs node and scripts/install-onnxruntime.sh, which installs npm's "
        "onnxruntime-node into "
        << node_path() << ")");
    return;
  }
  TempDir dir("onnx_qdq_ort_small");
  const std::string env = "NODE_PATH='" + node_path() + "' ";
  auto check = [&]<class Net>(std::unique_ptr<Net> net, const std::string& name, std::uint64_t seed) {
    using S = typename Net::input_shape;
    randomize(*net, seed);
    const Tensor<float> x = random_input<Net>(64, seed + 1);
    const auto q = quantize(*net, x);
    const std::string file = dir.file(name + ".int8.onnx"), inputs = write_nchw(x, dir.file(name + ".f32"));
    hubble::onnx::save_quantized(q, file);
    const std::vector<float> ours = q.run(x.data(), x.batch());
    const std::string fused = dir.file(name + "_ort.f32");
    output_of(env + "node '" + HUBBLE_SOURCE_DIR + "/benchmarks/ort_bench.js' predict '" + file + "' --batch 64 " +
              "--inputs '" + inputs + "' --probs '" + fused + "'");
    const std::string literal = dir.file(name + "_literal.f32");
    output_of(env + "node '" + HUBBLE_SOURCE_DIR + "/tests/onnx/run_onnxruntime.js' '" + file + "' '" + inputs +
              "' 64 " + std::to_string(S::c) + " " + std::to_string(S::h) + " " + std::to_string(S::w) + " '" +
              literal + "'");
    const int classes = q.plan().classes();
    for (const auto& [how, path] : {std::pair<std::string, std::string>{"optimised", fused}, {"literal", literal}}) {
      check_int8_agreement(name + " int8 (random images)", how, compare(ours, read_floats(path, ours.size()), classes));
    }
  };
  check(std::make_unique<QdqFlatNet>(1), "flat", 21);
  check(std::make_unique<QdqGapNet>(2), "gap", 22);
}
