// hubble::onnx: export passes hubble::onnx::checker and strict shape inference; hubble -> ONNX -> hubble
// returns every parameter bit for bit; wrong layouts, strides, paddings and ops are import errors
// naming the node; and predictions agree with real runtimes on 200 real galaxy images:
//  * ONNX Runtime (npm's onnxruntime-node, scripts/install-onnxruntime.sh) on hubble's exports of
//    PaperNet and ImprovedNet trained a few steps on galaxy10_real_train.h5;
//  * PyTorch (scripts/torch_papernet_onnx.py, torch.onnx.export) imported into hubble's PaperNet, and
//    the same weights written from h5py as a weights-only checkpoint (docs/checkpoints.md's recipe).
// Agreement: every argmax equal and max |p_hubble - p_other| <= 1e-5 (printed by MESSAGE).
// The images are the first 200 of galaxy10_real_train.h5: agreement between runtimes needs real
// pictures, not unseen ones, and the holdout is kept for acceptance only.
// Tests whose runtime (node + the package, python3 with torch) or data is absent skip with a message.
#include <doctest/doctest.h>

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "../support.hpp"
#include "hubble/data/augment.hpp"
#include "hubble/data/galaxy10.hpp"
#include "hubble/improved_net.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/onnx/model.hpp"
#include "hubble/onnx/onnx.hpp"
#include "hubble/paper_net.hpp"
#include "onnx_support.hpp"

namespace {

using namespace hubble;
using test_support::error_of;
using test_support::TempDir;
using namespace onnx_test;

// Every layer kind, both paddings, a stride-2 Same convolution, an overlapping pool, Dropout and
// BatchNorm, a Flatten of a spatial map, two Dense layers.
using SmallNet = Sequential<Input<20, 18, 3>, Conv2D<4, 3, 2, Same>, BatchNorm, ReLU, MaxPool<3, 2>, Conv2D<6, 2, 1>,
                            ReLU, Flatten, Dropout<0.2>, Dense<7>, ReLU, Dense<5>, Softmax>;
// A Flatten of data that is already flat (after GlobalAvgPool): ONNX needs no node for it.
using GapFlatNet = Sequential<Input<8, 8, 2>, Conv2D<4, 3>, ReLU, GlobalAvgPool, Flatten, Dense<3>, Softmax>;
using GapNet = Sequential<Input<16, 16, 2>, Conv2D<8, 3, 1, Same>, BatchNorm, ReLU, GlobalAvgPool, Dropout<0.3>,
                          Dense<4>, Softmax>;

template <class Net>
bool same_bits(Net& a, Net& b) {
  auto pa = a.parameters(), pb = b.parameters(), ba = a.buffers(), bb = b.buffers();
  pa.insert(pa.end(), ba.begin(), ba.end());
  pb.insert(pb.end(), bb.begin(), bb.end());
  for (std::size_t k = 0; k < pa.size(); ++k)
    if (pa[k].size != pb[k].size || std::memcmp(pa[k].value, pb[k].value, pa[k].size * sizeof(float)) != 0)
      return false;
  return true;
}

void write_proto(const ::onnx::ModelProto& m, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  REQUIRE(m.SerializeToOstream(&out));
}
::onnx::NodeProto* node_named(::onnx::ModelProto& m, const std::string& name) {
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.name() == name) return &n;
  FAIL("no node " << name);
  return nullptr;
}
::onnx::AttributeProto* attr_named(::onnx::NodeProto* n, const std::string& name) {
  for (auto& a : *n->mutable_attribute())
    if (a.name() == name) return &a;
  FAIL("no attribute " << name);
  return nullptr;
}

// Moves node `name` (appended last) to just before node `before`, keeping the graph topologically sorted.
void move_before(::onnx::ModelProto& m, const std::string& name, const std::string& before) {
  auto* nodes = m.mutable_graph()->mutable_node();
  std::vector<::onnx::NodeProto> ordered;
  ::onnx::NodeProto moved;
  for (auto& n : *nodes)
    if (n.name() == name) moved = n;
  for (auto& n : *nodes) {
    if (n.name() == name) continue;
    if (n.name() == before) ordered.push_back(moved);
    ordered.push_back(n);
  }
  nodes->Clear();
  for (auto& n : ordered) *nodes->Add() = n;
}

template <class Net>
std::vector<float> predict(Net& net, const Tensor<float>& x) {
  const Tensor<float>& y = net.forward(x, Mode::eval);
  return {y.data(), y.data() + y.size()};
}

// A few Adam steps on the first training images, so the weights are not the initial ones.
template <class Net>
void train_a_little(Net& net, int steps) {
  data::LoadOptions opt;
  opt.limit = std::size_t(32) * steps;
  const data::ImageSet set = data::load_galaxy10(shared("galaxy10_real_train.h5"), opt);
  Adam<float> adam;
  for (int s = 0; s < steps; ++s) {
    std::vector<int> idx;
    for (int i = 32 * s; i < 32 * (s + 1) && i < set.size(); ++i) idx.push_back(i);
    Tensor<float> x;
    data::to_tensor(set, idx, x);
    std::vector<int> labels;
    for (int i : idx) labels.push_back(set.labels[std::size_t(i)]);
    net.train_step(x, labels, adam);
  }
}

// ONNX Runtime's outputs for `x` (NHWC) through model `path`.
std::vector<float> run_onnxruntime(const std::string& model, const Tensor<float>& x, int classes, const TempDir& dir) {
  const int n = x.batch(), h = x.height(), w = x.width(), c = x.channels();
  const std::string in = write_nchw(x, dir.file("input.f32")), out = dir.file("ort_output.f32");
  const std::string cmd = "NODE_PATH='" + node_path() + "' node '" + HUBBLE_SOURCE_DIR +
                          "/tests/onnx/run_onnxruntime.js' '" + model + "' '" + in + "' " + std::to_string(n) + " " +
                          std::to_string(c) + " " + std::to_string(h) + " " + std::to_string(w) + " '" + out + "'";
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
  return read_floats(out, std::size_t(n) * classes);
}

}  // namespace

TEST_CASE("onnx: exported models pass onnx::checker and shape inference, and read back as the same architecture") {
  TempDir dir("onnx_export");
  auto small = std::make_unique<SmallNet>(1);
  auto gap = std::make_unique<GapNet>(2);
  auto paper = std::make_unique<PaperNet>(3);
  auto improved = std::make_unique<ImprovedNet>(4);
  hubble::onnx::save(*small, dir.file("small.onnx"));
  hubble::onnx::save(*gap, dir.file("gap.onnx"));
  hubble::onnx::save(*paper, dir.file("paper.onnx"));
  hubble::onnx::save(*improved, dir.file("improved.onnx"));
  for (const auto& entry : {std::pair{"small.onnx", SmallNet::architecture()},
                            {"gap.onnx", GapNet::architecture()},
                            {"paper.onnx", PaperNet::architecture()},
                            {"improved.onnx", ImprovedNet::architecture()}}) {
    const std::string file = entry.first, arch = entry.second;
    CAPTURE(file);
    CHECK_NOTHROW(hubble::onnx::check_file(dir.file(file)));
    const auto m = read_proto(dir.file(file));
    CHECK(m.opset_import(0).version() >= 13);
    CHECK(m.graph().input(0).type().tensor_type().shape().dim(1).dim_value() ==
          (file == "gap.onnx" ? 2 : 3));  // NCHW: C first
    CHECK(hubble::onnx::read_graph(dir.file(file)).architecture() == arch);
  }
  CHECK(hubble::onnx::read_graph(dir.file("paper.onnx")).sequential_type() ==
        "hubble::Sequential<hubble::Input<128, 128, 3>,\n    hubble::Conv2D<32, 5, 2>,\n    hubble::ReLU,\n    "
        "hubble::MaxPool<2>,\n"
        "    hubble::Conv2D<64, 3, 1>,\n    hubble::ReLU,\n    hubble::MaxPool<2>,\n    hubble::Conv2D<128, 3, 1>,\n   "
        " hubble::ReLU,\n"
        "    hubble::MaxPool<2>,\n    hubble::Conv2D<256, 3, 1>,\n    hubble::ReLU,\n    hubble::MaxPool<2>,\n    "
        "hubble::Flatten,\n"
        "    hubble::Dropout<0.1>,\n    hubble::Dense<256>,\n    hubble::ReLU,\n    hubble::Dropout<0.25>,\n    "
        "hubble::Dense<10>,\n"
        "    hubble::Softmax>");
}

TEST_CASE(
    "onnx: hubble -> ONNX -> hubble gives back every parameter and buffer bit for bit, and the same predictions") {
  TempDir dir("onnx_round_trip");
  auto check = [&]<class Net>(std::unique_ptr<Net> a, std::unique_ptr<Net> b, const char* file) {
    CAPTURE(file);
    randomize(*a, 11);
    REQUIRE_FALSE(same_bits(*a, *b));
    hubble::onnx::save(*a, dir.file(file));
    hubble::onnx::load(*b, dir.file(file));
    CHECK(same_bits(*a, *b));
    const auto x = random_input<Net>(3, 5);
    const auto ya = predict(*a, x), yb = predict(*b, x);
    CHECK(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);
  };
  check(std::make_unique<SmallNet>(1), std::make_unique<SmallNet>(2), "small.onnx");
  check(std::make_unique<GapNet>(1), std::make_unique<GapNet>(2), "gap.onnx");
  check(std::make_unique<GapFlatNet>(1), std::make_unique<GapFlatNet>(2), "gap_flat.onnx");
  check(std::make_unique<PaperNet>(1), std::make_unique<PaperNet>(2), "paper.onnx");
  check(std::make_unique<ImprovedNet>(1), std::make_unique<ImprovedNet>(2), "improved.onnx");
}

TEST_CASE(
    "onnx: a graph that differs from the type is an import error naming the node, and leaves the network as it was") {
  TempDir dir("onnx_negative");
  auto net = std::make_unique<SmallNet>(1);
  hubble::onnx::save(*net, dir.file("good.onnx"));
  auto target = std::make_unique<SmallNet>(2);
  auto untouched = std::make_unique<SmallNet>(2);
  auto import_error = [&](const ::onnx::ModelProto& m, const char* name) {
    write_proto(m, dir.file(name));
    const std::string e = error_of([&] { hubble::onnx::load(*target, dir.file(name)); });
    CAPTURE(e);
    CHECK(same_bits(*target, *untouched));
    return e;
  };

  SUBCASE("wrong Flatten order: a Transpose other than [0,2,3,1] before Flatten") {
    auto m = read_proto(dir.file("good.onnx"));
    auto* flat = node_named(m, "flatten_1");
    const std::string in = flat->input(0);
    auto* t = m.mutable_graph()->add_node();
    t->set_op_type("Transpose");
    t->set_name("wrong_order");
    t->add_input(in);
    t->add_output("transposed");
    auto* perm = t->add_attribute();
    perm->set_name("perm");
    perm->set_type(::onnx::AttributeProto::INTS);
    for (int p : {0, 3, 2, 1}) perm->add_ints(p);
    flat->set_input(0, "transposed");
    move_before(m, "wrong_order", "flatten_1");
    const std::string e = import_error(m, "order.onnx");
    CAPTURE(e);
    CHECK(e.find("node 'wrong_order' (Transpose)") != std::string::npos);
    CHECK(e.find("perm [0,3,2,1]") != std::string::npos);
  }
  SUBCASE("swapped kernel layout: hubble's [kh,kw,in,out] written where ONNX has [out,in,kh,kw]") {
    auto m = read_proto(dir.file("good.onnx"));
    for (auto& t : *m.mutable_graph()->mutable_initializer())
      if (t.name() == "conv2d_2/kernel") {  // [6,4,2,2] -> [2,2,4,6], same element count
        t.clear_dims();
        for (int d : {2, 2, 4, 6}) t.add_dims(d);
      }
    const std::string e = import_error(m, "layout.onnx");
    CAPTURE(e);
    CHECK(e.find("node 'conv2d_2' (Conv)") != std::string::npos);
    CHECK(e.find("[2,2,4,6]") != std::string::npos);
    CHECK(e.find("[out, in, kh, kw]") != std::string::npos);
  }
  SUBCASE("wrong stride") {
    auto m = read_proto(dir.file("good.onnx"));
    auto* s = attr_named(node_named(m, "conv2d_1"), "strides");
    s->set_ints(0, 1);
    s->set_ints(1, 1);
    auto* pads = attr_named(node_named(m, "conv2d_1"), "pads");  // Same padding of stride 1: [1,1,1,1]
    for (int k = 0; k < 4; ++k) pads->set_ints(k, 1);
    const std::string e = import_error(m, "stride.onnx");
    CAPTURE(e);
    CHECK(e.find("node 'conv2d_1' (Conv): stride 1; the type has conv2d_1 = Conv2D<4,3,2,same>") != std::string::npos);
  }
  SUBCASE("wrong padding: Valid where the type has Same") {
    auto m = read_proto(dir.file("good.onnx"));
    auto* p = attr_named(node_named(m, "conv2d_1"), "pads");
    for (int k = 0; k < 4; ++k) p->set_ints(k, 0);
    const std::string e = import_error(m, "padding.onnx");
    CAPTURE(e);
    CHECK(e.find("node 'conv2d_1' (Conv): padding valid; the type has conv2d_1 = Conv2D<4,3,2,same>") !=
          std::string::npos);
  }
  SUBCASE("padding hubble cannot express (symmetric, where Same puts the extra at the end)") {
    auto m = read_proto(dir.file("good.onnx"));
    auto* p = attr_named(node_named(m, "conv2d_1"), "pads");
    p->set_ints(0, 1);
    p->set_ints(1, 1);  // [0,0,1,1] -> [1,1,1,1]
    const std::string e = import_error(m, "pads.onnx");
    CAPTURE(e);
    CHECK(e.find("node 'conv2d_1' (Conv): pads [1,1,1,1]") != std::string::npos);
    CHECK(e.find("neither Valid") != std::string::npos);
  }
  SUBCASE("an op hubble lacks") {
    auto m = read_proto(dir.file("good.onnx"));
    node_named(m, "re_lu_2")->set_op_type("Sigmoid");
    const std::string e = import_error(m, "op.onnx");
    CAPTURE(e);
    CHECK(e.find("node 're_lu_2' (Sigmoid): hubble has no layer for ONNX op Sigmoid") != std::string::npos);
  }
  SUBCASE("an attribute value: BatchNormalization epsilon") {
    auto m = read_proto(dir.file("good.onnx"));
    attr_named(node_named(m, "batch_norm_1"), "epsilon")->set_f(1e-5f);
    const std::string e = import_error(m, "eps.onnx");
    CAPTURE(e);
    CHECK(e.find("node 'batch_norm_1' (BatchNormalization): epsilon") != std::string::npos);
  }
  SUBCASE("a Dropout rate") {
    auto m = read_proto(dir.file("good.onnx"));
    for (auto& t : *m.mutable_graph()->mutable_initializer())
      if (t.name() == "dropout_1/ratio") {
        const float r = 0.5f;
        t.set_raw_data(std::string(reinterpret_cast<const char*>(&r), 4));
      }
    const std::string e = import_error(m, "rate.onnx");
    CAPTURE(e);
    CHECK(e.find("node 'dropout_1' (Dropout): rate 0.5") != std::string::npos);
  }
  SUBCASE("another network type") {
    using Other = Sequential<Input<20, 18, 3>, Conv2D<4, 3, 2, Same>, BatchNorm, ReLU, MaxPool<3, 2>, Conv2D<6, 2, 1>,
                             ReLU, Flatten, Dropout<0.2>, Dense<8>, ReLU, Dense<5>, Softmax>;
    auto other = std::make_unique<Other>(1);
    const std::string e = error_of([&] { hubble::onnx::load(*other, dir.file("good.onnx")); });
    CAPTURE(e);
    CHECK(e.find("node 'dense_1' (Gemm): units 7; the type has dense_1 = Dense<8>") != std::string::npos);
  }
  SUBCASE("a tensor whose shape does not fit its data, or declares an impossible size") {
    auto m = read_proto(dir.file("good.onnx"));
    for (auto& t : *m.mutable_graph()->mutable_initializer())
      if (t.name() == "dense_1/kernel") t.set_raw_data(t.raw_data().substr(0, t.raw_data().size() / 2));
    std::string e = import_error(m, "short.onnx");
    CHECK(e.find("node 'dense_1' (Gemm): tensor 'dense_1/kernel' holds 189 values, its shape [7,54] needs 378 "
                 "(truncated or corrupt file?)") != std::string::npos);
    for (auto& t : *m.mutable_graph()->mutable_initializer())
      if (t.name() == "dense_1/kernel") t.set_dims(0, std::int64_t(1) << 40);
    e = import_error(m, "huge.onnx");
    CHECK(e.find("huge.onnx") != std::string::npos);
  }
  SUBCASE("not an ONNX file") {
    std::ofstream(dir.file("junk.onnx")) << "not a protobuf at all";
    CHECK(error_of([&] { hubble::onnx::load(*target, dir.file("junk.onnx")); }).find("junk.onnx") != std::string::npos);
    CHECK(error_of([&] { hubble::onnx::load(*target, dir.file("missing.onnx")); }).find("cannot open") !=
          std::string::npos);
  }
}

TEST_CASE("onnx: Keras order (Transpose [0,2,3,1] then Flatten) imports with its Dense weights as they are") {
  // The same network written the tf2onnx way: NHWC flatten order, Dense weights unpermuted, MatMul + Add.
  TempDir dir("onnx_keras");
  auto a = std::make_unique<SmallNet>(1);
  randomize(*a, 3);
  hubble::onnx::save(*a, dir.file("nchw.onnx"));
  auto m = read_proto(dir.file("nchw.onnx"));
  auto* flat = node_named(m, "flatten_1");
  auto* t = m.mutable_graph()->add_node();
  t->set_op_type("Transpose");
  t->set_name("to_nhwc");
  t->add_input(flat->input(0));
  t->add_output("nhwc");
  auto* perm = t->add_attribute();
  perm->set_name("perm");
  perm->set_type(::onnx::AttributeProto::INTS);
  for (int p : {0, 2, 3, 1}) perm->add_ints(p);
  flat->set_input(0, "nhwc");
  // dense_1 as MatMul [I, U] in hubble's own (h,w,c) row order + Add(bias).
  auto* gemm = node_named(m, "dense_1");
  const std::string bias = gemm->input(2), out = gemm->output(0);
  gemm->set_op_type("MatMul");
  gemm->clear_attribute();
  gemm->mutable_input()->RemoveLast();
  gemm->set_output(0, "dense_1/mm");
  auto* add = m.mutable_graph()->add_node();
  add->set_op_type("Add");
  add->set_name("dense_1/add");
  add->add_input("dense_1/mm");
  add->add_input(bias);
  add->add_output(out);
  for (auto& init : *m.mutable_graph()->mutable_initializer())
    if (init.name() == "dense_1/kernel") {
      const auto params = a->parameters();  // conv2d_1 k,b; batch_norm gamma,beta; conv2d_2 k,b; dense_1 kernel
      const auto& dk = params[6];
      REQUIRE(dk.name == "dense_1/kernel");
      init.clear_dims();
      init.add_dims(dk.size / 7);
      init.add_dims(7);
      init.set_raw_data(std::string(reinterpret_cast<const char*>(dk.value), dk.size * 4));
    }
  // Nodes must stay in topological order for the checker: move the Transpose before flatten_1 and the Add after
  // dense_1.
  auto* nodes = m.mutable_graph()->mutable_node();
  std::vector<::onnx::NodeProto> ordered;
  for (auto& n : *nodes) {
    if (n.name() == "to_nhwc" || n.name() == "dense_1/add") continue;
    if (n.name() == "flatten_1") ordered.push_back(*t);
    ordered.push_back(n);
    if (n.name() == "dense_1") ordered.push_back(*add);
  }
  nodes->Clear();
  for (auto& n : ordered) *nodes->Add() = n;
  write_proto(m, dir.file("nhwc.onnx"));
  auto b = std::make_unique<SmallNet>(2);
  hubble::onnx::load(*b, dir.file("nhwc.onnx"));
  CHECK(same_bits(*a, *b));
}

TEST_CASE("onnx: hubble's exports of PaperNet and ImprovedNet agree with ONNX Runtime on 200 real images") {
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
  TempDir dir("onnx_ort");
  const Tensor<float> x = first_training_images();
  REQUIRE(x.batch() == 200);
  auto check = [&]<class Net>(std::unique_ptr<Net> net, const char* name) {
    train_a_little(*net, 3);
    const std::string file = dir.file(std::string(name) + ".onnx");
    hubble::onnx::save(*net, file);
    const auto ours = predict(*net, x);
    const auto theirs = run_onnxruntime(file, x, 10, dir);
    const Agreement g = compare(ours, theirs, 10);
    MESSAGE(std::string(name) << " hubble vs ONNX Runtime on " << g.count << " real images: argmax equal "
                              << g.argmax_equal << "/" << g.count << ", max |dp| " << g.max_abs);
    CHECK(g.argmax_equal == g.count);
    CHECK(g.max_abs <= 1e-5);
  };
  check(std::make_unique<PaperNet>(7), "PaperNet");
  check(std::make_unique<ImprovedNet>(7), "ImprovedNet");
}

TEST_CASE(
    "onnx: a PyTorch PaperNet exported by torch.onnx.export imports into hubble's PaperNet and agrees on 200 real "
    "images") {
  if (!std::filesystem::exists(shared("galaxy10_real_train.h5"))) {
    MESSAGE("skipped: " << HUBBLE_SHARED_DATA_DIR << " lacks galaxy10_real_train.h5");
    return;
  }
  std::string python;
  for (const char* p : {"/usr/bin/python3", "python3"})
    if (python.empty() && have(std::string(p) + " -c 'import torch, onnx, h5py, numpy'")) python = p;
  if (python.empty()) {
    MESSAGE(
        "skipped: no python3 with torch, onnx, h5py and numpy (scripts/install-deps.sh installs python3-torch, "
        "python3-onnx, python3-h5py)");
    return;
  }
  TempDir dir("onnx_torch");
  const Tensor<float> x = first_training_images();
  for (const char* idiom : {"", " --reshape"}) {
    const std::string idiom_text = idiom;
    CAPTURE(idiom_text);
    const std::string model = dir.file("torch.onnx"), probs = dir.file("torch.f32");
    const std::string cmd = python + " '" + HUBBLE_SOURCE_DIR + "/scripts/torch_papernet_onnx.py' --train '" +
                            shared("galaxy10_real_train.h5") + "' --images '" + shared("galaxy10_real_train.h5") +
                            "' --count 200 --out-model '" + model + "' --out-probs '" + probs + "' --out-checkpoint '" +
                            dir.file("torch_weights.h5") + "'" + idiom;
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
    const auto graph = hubble::onnx::read_graph(model);
    CHECK(hubble::onnx::architecture_matches(graph,
                                             PaperNet::architecture()));  // Dropout left out by PyTorch in eval mode
    auto net = std::make_unique<PaperNet>(1);
    hubble::onnx::load(*net, model);
    const Agreement g = compare(predict(*net, x), read_floats(probs, 200 * 10), 10);
    MESSAGE("PyTorch -> ONNX -> hubble PaperNet" << std::string(idiom) << " on " << g.count
                                                 << " real images: argmax equal " << g.argmax_equal << "/" << g.count
                                                 << ", max |dp| " << g.max_abs);
    CHECK(g.argmax_equal == g.count);
    CHECK(g.max_abs <= 1e-5);
    // The same weights written from h5py as a weights-only checkpoint (docs/checkpoints.md's recipe).
    auto from_h5 = std::make_unique<PaperNet>(2);
    load_checkpoint(dir.file("torch_weights.h5"), *from_h5);
    const Agreement c = compare(predict(*from_h5, x), read_floats(probs, 200 * 10), 10);
    MESSAGE("PyTorch -> h5py weights-only checkpoint -> hubble PaperNet: argmax equal "
            << c.argmax_equal << "/" << c.count << ", max |dp| " << c.max_abs);
    CHECK(c.argmax_equal == c.count);
    CHECK(c.max_abs <= 1e-5);
  }
}

TEST_CASE("onnx: hubble::Model opens an .onnx file of a registered network and predicts as the network does") {
  TempDir dir("onnx_model");
  auto net = std::make_unique<ImprovedNet>(5);
  randomize(*net, 9);
  hubble::onnx::ExportOptions options;
  options.metadata["model/crop_fraction"] = "0.5";
  hubble::onnx::save(*net, dir.file("improved.onnx"), options);
  const Model m = Model::load(dir.file("improved.onnx"));
  CHECK(m.architecture() == ImprovedNet::architecture());
  CHECK(m.metadata("model/crop_fraction") == "0.5");
  CHECK(m.class_names().size() == 10);
  const auto x = random_input<ImprovedNet>(2, 3);
  const auto want = predict(*net, x);
  const auto got = m.predict(x);
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= 1e-6f);
  // A graph that no registered network holds: the error shows its architecture.
  auto small = std::make_unique<SmallNet>(1);
  hubble::onnx::save(*small, dir.file("small.onnx"));
  const std::string e = error_of([&] { Model::load(dir.file("small.onnx")); });
  CHECK(e.find("no registered network holds this ONNX graph") != std::string::npos);
  CHECK(e.find(SmallNet::architecture()) != std::string::npos);
}
