// hubble::onnx: the protobuf side of ONNX export and import (include/hubble/onnx/onnx.hpp has the
// layouts and the contract). Built once, as the static library hubble::onnx, against Debian's
// libonnx (onnx.proto's generated classes, onnx::checker, shape inference) and libprotobuf.
#include "hubble/onnx/onnx.hpp"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>

#include "hubble/io/atomic_file.hpp"
#include "hubble/lowp/quantized_plan.hpp"

namespace hubble::onnx {

namespace {

constexpr int opset = 13;
using ::hubble::detail::fail;

std::string join(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  s += ']';
  return s;
}

// Strict checks of a model: the checker, then shape inference that throws on any node-level error.
void check_model(const ::onnx::ModelProto& model, const std::string& what) {
  try {
    ::onnx::checker::check_model(model);
    ::onnx::ModelProto copy = model;
    ::onnx::shape_inference::InferShapes(
        copy, ::onnx::OpSchemaRegistry::Instance(),
        ::onnx::ShapeInferenceOptions(/*check_type=*/true, /*error_mode=*/1, /*data_prop=*/true));
  } catch (const std::exception& e) {
    fail(what, ": the ONNX checker rejects the model: ", e.what());
  }
}

::onnx::ModelProto read_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  HUBBLE_CHECK(in, path, ": cannot open the ONNX file");
  ::onnx::ModelProto model;
  HUBBLE_CHECK(model.ParseFromIstream(&in), path,
               ": not an ONNX model (protobuf parse failed: truncated or corrupt file?)");
  return model;
}

// --- export ---------------------------------------------------------------------------------

struct GraphWriter {
  ::onnx::GraphProto* g;
  ::onnx::NodeProto* node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                          const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& i : inputs) n->add_input(i);
    n->add_output(out);
    return n;
  }
  void tensor(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    t->set_raw_data(
        std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));  // little-endian x86/ARM
  }
};
void ints(::onnx::NodeProto* n, const char* name, std::vector<std::int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INTS);
  for (auto x : v) a->add_ints(x);
}
void int1(::onnx::NodeProto* n, const char* name, std::int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INT);
  a->set_i(v);
}
void float1(::onnx::NodeProto* n, const char* name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void value_info(::onnx::ValueInfoProto* v, const std::string& name, std::vector<std::int64_t> dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(::onnx::TensorProto::FLOAT);
  auto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("N");  // any batch size
  for (auto d : dims) s->add_dim()->set_dim_value(d);
}
const ArrayView& array(const LayerDesc& d, const char* name) {
  for (auto& a : d.arrays)
    if (a.name == name) return a;
  fail("hubble::onnx: layer ", d.name, " (", d.spec, ") has no array '", name, "'");
}
std::vector<float> copy(const ArrayView& a) { return std::vector<float>(a.data, a.data + a.size()); }

// Index of feature (h, w, c) of an fh x fw x fc map in Flatten's NCHW order (c, h, w).
inline std::size_t chw_index(int h, int w, int c, int fh, int fw) { return (std::size_t(c) * fh + h) * fw + w; }

}  // namespace

void save_description(const NetworkDesc& net, const std::string& path, const ExportOptions& options) {
  ::onnx::ModelProto model;
  model.set_ir_version(8);  // the IR of ONNX 1.12, fine for opset 13 readers
  model.set_producer_name(options.producer);
  model.set_producer_version("0.1.0");
  auto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  auto* meta = model.add_metadata_props();
  meta->set_key("hubble.architecture");
  meta->set_value(net.architecture);
  for (const auto& [key, value] : options.metadata) {
    HUBBLE_CHECK(key != "hubble.architecture", path, ": metadata key 'hubble.architecture' is reserved");
    auto* m = model.add_metadata_props();
    m->set_key(key);
    m->set_value(value);
  }
  GraphWriter w{model.mutable_graph()};
  w.g->set_name("hubble");
  value_info(w.g->add_input(), options.input_name, {net.c, net.h, net.w});

  std::string cur = options.input_name;
  int rank = 4, C = net.c, H = net.h, W = net.w;
  int fh = 1, fw = 1, fc = 0;  // the map the last Flatten read (Dense weights follow its order)
  for (const LayerDesc& d : net.layers) {
    const std::string out = d.name + "/out";
    if (d.kind == "Conv2D") {
      const auto& k = array(d, "kernel");
      const int K = d.kernel, Ci = d.in_c, F = d.filters;
      std::vector<float> wt(k.size());
      for (int ky = 0; ky < K; ++ky)
        for (int kx = 0; kx < K; ++kx)
          for (int c = 0; c < Ci; ++c)
            for (int f = 0; f < F; ++f)
              wt[((std::size_t(f) * Ci + c) * K + ky) * K + kx] = k.data[((std::size_t(ky) * K + kx) * Ci + c) * F + f];
      w.tensor(d.name + "/kernel", {F, Ci, K, K}, wt);
      w.tensor(d.name + "/bias", {F}, copy(array(d, "bias")));
      auto* n = w.node("Conv", d.name, {cur, d.name + "/kernel", d.name + "/bias"}, out);
      ints(n, "kernel_shape", {K, K});
      ints(n, "strides", {d.stride, d.stride});
      ints(n, "pads", {d.pad_top, d.pad_left, d.pad_bottom, d.pad_right});
      ints(n, "dilations", {1, 1});
      int1(n, "group", 1);
    } else if (d.kind == "MaxPool") {
      auto* n = w.node("MaxPool", d.name, {cur}, out);
      ints(n, "kernel_shape", {d.pool, d.pool});
      ints(n, "strides", {d.stride, d.stride});
      ints(n, "pads", {0, 0, 0, 0});
    } else if (d.kind == "ReLU") {
      w.node("Relu", d.name, {cur}, out);
    } else if (d.kind == "Softmax") {
      int1(w.node("Softmax", d.name, {cur}, out), "axis", 1);  // over channels (opset 13: that axis only)
    } else if (d.kind == "Flatten") {
      int1(w.node("Flatten", d.name, {cur}, out), "axis", 1);
      fh = d.in_h;
      fw = d.in_w;
      fc = d.in_c;
      rank = 2;
    } else if (d.kind == "GlobalAvgPool") {
      w.node("GlobalAveragePool", d.name, {cur}, d.name + "/pooled");
      int1(w.node("Flatten", d.name + "/flatten", {d.name + "/pooled"}, out), "axis", 1);  // hubble's output is flat
      fh = fw = 1;
      fc = d.in_c;
      rank = 2;
    } else if (d.kind == "Dropout") {
      w.tensor(d.name + "/ratio", {}, {float(d.rate)});
      w.node("Dropout", d.name, {cur, d.name + "/ratio"}, out);  // identity at inference; keeps the rate
    } else if (d.kind == "Dense") {
      if (rank == 4) {  // a 1x1xC map read as flat (hubble allows Dense there)
        int1(w.node("Flatten", d.name + "/flatten", {cur}, d.name + "/flat"), "axis", 1);
        cur = d.name + "/flat";
        fh = fw = 1;
        fc = d.in_c;
        rank = 2;
      }
      const auto& k = array(d, "kernel");
      const int I = d.in_c, U = d.units;
      if (fc == 0 || std::size_t(fh) * fw * fc != std::size_t(I)) {
        fh = fw = 1;
        fc = I;
      }                                // after another Dense
      std::vector<float> b(k.size());  // ONNX B [U, I] (transB = 1), I in (c,h,w) order
      for (int h = 0; h < fh; ++h)
        for (int x = 0; x < fw; ++x)
          for (int c = 0; c < fc; ++c) {
            const std::size_t hubble_row = (std::size_t(h) * fw + x) * fc + c, onnx_col = chw_index(h, x, c, fh, fw);
            for (int u = 0; u < U; ++u) b[std::size_t(u) * I + onnx_col] = k.data[hubble_row * U + u];
          }
      w.tensor(d.name + "/kernel", {U, I}, b);
      w.tensor(d.name + "/bias", {U}, copy(array(d, "bias")));
      auto* n = w.node("Gemm", d.name, {cur, d.name + "/kernel", d.name + "/bias"}, out);
      int1(n, "transB", 1);
      fh = fw = 1;
      fc = U;
    } else if (d.kind == "BatchNorm") {
      HUBBLE_CHECK(rank == 4 || (fh == 1 && fw == 1), "hubble::onnx: ", d.name,
                   ": BatchNorm on the flattened features of a spatial map has no ONNX export (the order differs)");
      for (const char* a : {"gamma", "beta", "moving_mean", "moving_variance"})
        w.tensor(d.name + "/" + a, {d.in_c}, copy(array(d, a)));
      auto* n =
          w.node("BatchNormalization", d.name,
                 {cur, d.name + "/gamma", d.name + "/beta", d.name + "/moving_mean", d.name + "/moving_variance"}, out);
      float1(n, "epsilon", float(d.eps));
      float1(n, "momentum",
             float(d.momentum));  // ONNX: running = running * momentum + batch * (1 - momentum), as hubble
    } else {
      fail(path, ": layer ", d.name, " (", d.spec,
           ") has no ONNX export: hubble::onnx writes Conv2D, MaxPool, Dense, "
           "Flatten, Dropout, ReLU, Softmax, BatchNorm and GlobalAvgPool");
    }
    cur = out;
    C = d.out_c;
    H = d.out_h;
    W = d.out_w;
  }
  // The last node writes the graph's output.
  HUBBLE_CHECK(w.g->node_size() > 0, path, ": the network has no layers");
  w.g->mutable_node(w.g->node_size() - 1)->set_output(0, options.output_name);
  if (rank == 2) value_info(w.g->add_output(), options.output_name, {std::int64_t(H) * W * C});
  else value_info(w.g->add_output(), options.output_name, {C, H, W});

  check_model(model, path);
  std::string bytes;
  HUBBLE_CHECK(model.SerializeToString(&bytes), path, ": protobuf could not serialise the model (over 2 GB?)");
  io::write_file_atomically(path, bytes.data(), bytes.size());
}

void check_file(const std::string& path) { check_model(read_model(path), path); }

// --- int8 export: the QDQ form -------------------------------------------------------------------

namespace {

// An initializer of any element type from its little-endian bytes.
void raw_tensor(::onnx::GraphProto* g, const std::string& name, const std::vector<std::int64_t>& dims, int type,
                const void* data, std::size_t bytes) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (auto d : dims) t->add_dims(d);
  t->set_raw_data(std::string(static_cast<const char*>(data), bytes));
}

void u8_code(::onnx::GraphProto* g, const std::string& prefix, const kernels::lowp::U8Quant& q) {
  const float scale = q.scale;
  const std::uint8_t zero = std::uint8_t(q.zero_point);
  raw_tensor(g, prefix + "/scale", {}, ::onnx::TensorProto::FLOAT, &scale, sizeof scale);
  raw_tensor(g, prefix + "/zero_point", {}, ::onnx::TensorProto::UINT8, &zero, 1);
}

// QuantizeLinear then DequantizeLinear with the code written by u8_code(prefix): the tensor `in`
// rounded to its u8 code, as hubble stores it. Returns the dequantised tensor's name.
std::string quantize_dequantize(GraphWriter& w, const std::string& in, const std::string& code,
                                const std::string& name) {
  w.node("QuantizeLinear", name + "/quantize", {in, code + "/scale", code + "/zero_point"}, name + "/q");
  w.node("DequantizeLinear", name + "/dequantize", {name + "/q", code + "/scale", code + "/zero_point"}, name + "/dq");
  return name + "/dq";
}

// ONNX pads [top, left, bottom, right] of a hubble convolution, whose geometry stores the top and
// left padding: the bottom and right ones are what the output size needs ('same' puts the odd
// one at the end), never negative (a 'valid' convolution may leave rows unread).
std::vector<std::int64_t> conv_pads(const kernels::ConvGeometry& g) {
  const int bottom = std::max(0, (g.oh - 1) * g.stride + g.k - g.h - g.pad_top);
  const int right = std::max(0, (g.ow - 1) * g.stride + g.k - g.w - g.pad_left);
  return {g.pad_top, g.pad_left, bottom, right};
}

// The bias of an int8 Conv as DequantizeLinear of int32 codes at scale sx * sw[f], ORT's
// QDQ convention: its QLinearConv fusion needs the bias to come from a DequantizeLinear
// of int32 (an fp32 bias leaves the node unfused, in fp32). The rounding moves each bias by at
// most sx * sw[f] / 2: under half a step of the sums it is added to. A bias too large for int32
// at that scale (never seen) is written in fp32 instead. Returns the bias tensor's name.
std::string int32_bias(GraphWriter& w, const std::string& name, float sx, const std::vector<float>& sw,
                       const std::vector<float>& b) {
  const int F = int(b.size());
  std::vector<std::int32_t> bq(std::size_t(F), 0);
  std::vector<float> b_scale(static_cast<std::size_t>(F));
  bool fits = true;
  for (std::size_t f = 0; f < std::size_t(F); ++f) {
    b_scale[f] = sx * sw[f];
    const double v = std::nearbyint(double(b[f]) / double(b_scale[f]));
    fits = fits && std::isfinite(v) && std::abs(v) <= 2147483647.0;
    if (fits) bq[f] = std::int32_t(v);
  }
  const std::string bias = name + "/bias";
  if (!fits) {
    w.tensor(bias, {F}, b);
    return bias;
  }
  const std::vector<std::int32_t> b_zero(std::size_t(F), 0);
  raw_tensor(w.g, name + "/bias_q", {F}, ::onnx::TensorProto::INT32, bq.data(), bq.size() * 4);
  w.tensor(name + "/bias_scale", {F}, b_scale);
  raw_tensor(w.g, name + "/bias_zero_point", {F}, ::onnx::TensorProto::INT32, b_zero.data(), b_zero.size() * 4);
  int1(w.node("DequantizeLinear", name + "/bias_dequantize",
              {name + "/bias_q", name + "/bias_scale", name + "/bias_zero_point"}, bias),
       "axis", 0);
  return bias;
}

// s8 codes in ONNX's layout [F, ...], per-output-channel scales along axis 0, zero points 0,
// dequantised: the name of the fp32 weights a Conv reads.
std::string s8_weights(GraphWriter& w, const std::string& name, const std::vector<std::int64_t>& dims,
                       const std::vector<std::int8_t>& codes, const std::vector<float>& scales) {
  const std::int64_t F = dims.front();
  const std::vector<std::int8_t> zero(std::size_t(F), 0);
  raw_tensor(w.g, name + "/kernel_q", dims, ::onnx::TensorProto::INT8, codes.data(), codes.size());
  w.tensor(name + "/kernel_scale", {F}, scales);
  raw_tensor(w.g, name + "/kernel_zero_point", {F}, ::onnx::TensorProto::INT8, zero.data(), zero.size());
  int1(w.node("DequantizeLinear", name + "/kernel_dequantize",
              {name + "/kernel_q", name + "/kernel_scale", name + "/kernel_zero_point"}, name + "/kernel"),
       "axis", 0);
  return name + "/kernel";
}

constexpr const char* int8_scheme =
    "hubble-int8 v2 as QDQ: u8 activations, per-tensor scale and zero point (the input and every conv stage's "
    "output but the last, and the last's too when the first Dense is int8); s8 weights, symmetric, one scale per "
    "output channel (DequantizeLinear axis 0); bias int32 at "
    "scale input_scale * weight_scale[f]; Relu, then requantisation, then MaxPool (requantising commutes with "
    "the max); an int8 first Dense as MatMulInteger of the last conv stage's u8 codes (its zero point) and s8 "
    "weights, Cast, Mul by input_scale * weight_scale[u], Add of the fp32 bias; the rest of the head in fp32 "
    "(Gemm)";

}  // namespace

void save_quantized(const lowp::QuantizedPlan& q, const std::string& path, const ExportOptions& options) {
  const lowp::InferencePlan& plan = q.plan();
  HUBBLE_CHECK(!plan.convs.empty() && q.stages().size() == plan.convs.size() && !plan.dense.empty(), path,
               ": the int8 model of ", plan.architecture, " has ", q.stages().size(), " int8 stages for ",
               plan.convs.size(), " conv stages and ", plan.dense.size(), " dense stages; nothing to export");
  ::onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name(options.producer);
  model.set_producer_version("0.1.0");
  auto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  const std::map<std::string, std::string> own = {{"hubble.architecture", plan.architecture},
                                                  {"hubble.int8", int8_scheme}};
  for (const auto& [key, value] : own) {
    auto* m = model.add_metadata_props();
    m->set_key(key);
    m->set_value(value);
  }
  for (const auto& [key, value] : options.metadata) {
    HUBBLE_CHECK(!own.count(key), path, ": metadata key '", key, "' is reserved");
    auto* m = model.add_metadata_props();
    m->set_key(key);
    m->set_value(value);
  }
  GraphWriter w{model.mutable_graph()};
  w.g->set_name("hubble_int8");
  value_info(w.g->add_input(), options.input_name, {plan.c, plan.h, plan.w});

  u8_code(w.g, "input/code", q.input_quant());
  std::string cur = quantize_dequantize(w, options.input_name, "input/code", "input");
  float sx = q.input_quant().scale;  // the scale of the codes the current stage reads
  int C = plan.c, H = plan.h, W = plan.w;
  for (std::size_t i = 0; i < plan.convs.size(); ++i) {
    const lowp::PlanConv& s = plan.convs[i];
    const lowp::QuantizedStage& st = q.stages()[i];
    const kernels::ConvGeometry& g = s.g;
    // Every stage writes u8 codes but the last, which does when the int8 Dense reads them.
    const bool requantised = i + 1 < plan.convs.size() || q.dense();
    const int K = g.k, Ci = g.c, F = g.f;
    HUBBLE_CHECK(g.h == H && g.w == W && g.c == C, path, ": ", s.name, " takes ", g.h, "x", g.w, "x", g.c,
                 " inputs, the stage before gives ", H, "x", W, "x", C);
    HUBBLE_CHECK(st.weights.rows == K * K * Ci && st.weights.f == F && st.weights.scale.size() == std::size_t(F) &&
                     st.bias.size() == std::size_t(F),
                 path, ": ", s.name, "'s int8 weights do not have the stage's shape");
    // Weights: s8 [k][k][c][f] -> [F, C, K, K], dequantised per output channel.
    std::vector<std::int8_t> wt(st.weights.q.size());
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx)
        for (int c = 0; c < Ci; ++c)
          for (int f = 0; f < F; ++f)
            wt[((std::size_t(f) * Ci + c) * K + ky) * K + kx] =
                st.weights.q[((std::size_t(ky) * K + kx) * Ci + c) * F + f];
    const std::string kernel = s8_weights(w, s.name, {F, Ci, K, K}, wt, st.weights.scale);
    const std::string bias = int32_bias(w, s.name, sx, st.weights.scale, st.bias);
    auto* n = w.node("Conv", s.name, {cur, kernel, bias}, s.name + "/out");
    ints(n, "kernel_shape", {K, K});
    ints(n, "strides", {g.stride, g.stride});
    ints(n, "pads", conv_pads(g));
    ints(n, "dilations", {1, 1});
    int1(n, "group", 1);
    cur = s.name + "/out";
    if (s.relu) {
      w.node("Relu", s.name + "/relu", {cur}, s.name + "/relu_out");
      cur = s.name + "/relu_out";
    }
    if (requantised) {
      u8_code(w.g, s.name + "/code", st.out);
      cur = quantize_dequantize(w, cur, s.name + "/code", s.name + "/output");
    }
    H = g.oh, W = g.ow, C = F;
    if (s.pool) {
      auto* p = w.node("MaxPool", s.name + "/pool", {cur}, s.name + "/pool_out");
      ints(p, "kernel_shape", {s.pool, s.pool});
      ints(p, "strides", {s.pool, s.pool});
      ints(p, "pads", {0, 0, 0, 0});
      cur = s.name + "/pool_out";
      if (requantised) cur = quantize_dequantize(w, cur, s.name + "/code", s.name + "/pooled");
      H /= s.pool, W /= s.pool;
    }
    if (requantised) sx = st.out.scale;
  }
  // The head: Flatten (NCHW, so the first Dense's rows are permuted from hubble's (h,w,c) order to
  // (c,h,w), as save_description does) or GlobalAveragePool + Flatten.
  int fh = H, fw = W, fc = C;
  if (plan.bridge == lowp::Bridge::global_avg_pool) {
    w.node("GlobalAveragePool", "global_avg_pool", {cur}, "global_avg_pool/out");
    cur = "global_avg_pool/out";
    fh = fw = 1;
  }
  int1(w.node("Flatten", "flatten", {cur}, "flatten/out"), "axis", 1);
  cur = "flatten/out";
  // The int8 Dense reads the codes: QuantizeLinear once more after Flatten (an identity on values
  // that are codes already).
  std::string cur_codes;
  if (q.dense()) {
    const std::string code = plan.convs.back().name + "/code";
    cur_codes = "flatten/q";
    w.node("QuantizeLinear", "flatten/quantize", {cur, code + "/scale", code + "/zero_point"}, cur_codes);
  }
  for (std::size_t j = 0; j < plan.dense.size(); ++j) {
    const lowp::PlanDense& d = plan.dense[j];
    const int I = d.in, U = d.out;
    const lowp::QuantizedDense* int8 = j == 0 ? q.dense() : nullptr;
    HUBBLE_CHECK(std::size_t(fh) * fw * fc == std::size_t(I), path, ": ", d.name, " takes ", I,
                 " features, the stage before gives ", std::size_t(fh) * fw * fc);
    // hubble's [in][out] weights with rows in (h,w,c) order as ONNX's [U, I] (transposed) or
    // [I, U], I in (c,h,w) order.
    const auto to_onnx = [&](const auto& hubble_w, bool transposed) {
      std::vector<std::decay_t<decltype(hubble_w[0])>> b(std::size_t(I) * U);
      for (int h = 0; h < fh; ++h)
        for (int x = 0; x < fw; ++x)
          for (int c = 0; c < fc; ++c) {
            const std::size_t hubble_row = (std::size_t(h) * fw + x) * fc + c, onnx_row = chw_index(h, x, c, fh, fw);
            for (int u = 0; u < U; ++u)
              b[transposed ? std::size_t(u) * I + onnx_row : onnx_row * U + u] = hubble_w[hubble_row * U + u];
          }
      return b;
    };
    if (int8) {
      // The integer product of the codes, then its scale and the bias, in ONNX's operator form:
      //   acc[u] = MatMulInteger(qx - zx, qw[., u]),  y[u] = float(acc[u]) * (sx * sw[u]) + b[u]
      // hubble's sum exactly; ONNX Runtime runs it as an integer product. (A DequantizeLinear ->
      // Gemm form would stay fp32 there: its QGemm fusion wants a QuantizeLinear after the Relu,
      // a requantisation hubble does not do, and it never folds the weights' DequantizeLinear.)
      const std::vector<std::int8_t> codes = to_onnx(int8->weights.q, false);
      std::vector<float> step(static_cast<std::size_t>(U));
      for (std::size_t u = 0; u < step.size(); ++u) step[u] = sx * int8->weights.scale[u];
      raw_tensor(w.g, d.name + "/kernel_q", {I, U}, ::onnx::TensorProto::INT8, codes.data(), codes.size());
      w.tensor(d.name + "/kernel_step", {U}, step);
      w.tensor(d.name + "/bias", {U}, d.b);
      const std::string code = plan.convs.back().name + "/code";
      w.node("MatMulInteger", d.name + "/matmul", {cur_codes, d.name + "/kernel_q", code + "/zero_point"},
             d.name + "/acc");
      int1(w.node("Cast", d.name + "/cast", {d.name + "/acc"}, d.name + "/acc_f32"), "to", ::onnx::TensorProto::FLOAT);
      w.node("Mul", d.name + "/scale", {d.name + "/acc_f32", d.name + "/kernel_step"}, d.name + "/product");
      w.node("Add", d.name, {d.name + "/product", d.name + "/bias"}, d.name + "/out");
    } else {
      w.tensor(d.name + "/kernel", {U, I}, to_onnx(d.w, true));  // B [U, I], transB = 1
      w.tensor(d.name + "/bias", {U}, d.b);
      int1(w.node("Gemm", d.name, {cur, d.name + "/kernel", d.name + "/bias"}, d.name + "/out"), "transB", 1);
    }
    cur = d.name + "/out";
    if (d.relu) {
      w.node("Relu", d.name + "/relu", {cur}, d.name + "/relu_out");
      cur = d.name + "/relu_out";
    }
    fh = fw = 1, fc = U;
  }
  if (plan.softmax) {
    int1(w.node("Softmax", "softmax", {cur}, "softmax/out"), "axis", 1);
    cur = "softmax/out";
  }
  w.g->mutable_node(w.g->node_size() - 1)->set_output(0, options.output_name);
  value_info(w.g->add_output(), options.output_name, {fc});

  check_model(model, path);
  std::string bytes;
  HUBBLE_CHECK(model.SerializeToString(&bytes), path, ": protobuf could not serialise the model (over 2 GB?)");
  io::write_file_atomically(path, bytes.data(), bytes.size());
}

// --- import ---------------------------------------------------------------------------------

namespace {

struct Reader {
  std::string path;
  ::onnx::ModelProto model;
  std::map<std::string, const ::onnx::TensorProto*> constants;  // initializers and Constant outputs
  std::map<std::string, std::vector<int>> consumers;
  std::map<std::string, const ::onnx::ValueInfoProto*> inferred;
  std::map<std::string, int> producer;  // tensor -> the node that writes it

  static std::string where(const ::onnx::NodeProto& n) {
    return "node '" + (n.name().empty() ? n.output(0) : n.name()) + "' (" + n.op_type() + ")";
  }
  [[noreturn]] void error(const ::onnx::NodeProto& n, const std::string& what) const {
    fail(path, ": ", where(n), ": ", what);
  }

  const ::onnx::AttributeProto* attr(const ::onnx::NodeProto& n, const char* name) const {
    for (auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  std::int64_t attr_int(const ::onnx::NodeProto& n, const char* name, std::int64_t def) const {
    auto* a = attr(n, name);
    return a ? a->i() : def;
  }
  float attr_float(const ::onnx::NodeProto& n, const char* name, float def) const {
    auto* a = attr(n, name);
    return a ? a->f() : def;
  }
  std::vector<std::int64_t> attr_ints(const ::onnx::NodeProto& n, const char* name,
                                      std::vector<std::int64_t> def) const {
    auto* a = attr(n, name);
    if (!a) return def;
    return {a->ints().begin(), a->ints().end()};
  }
  std::string attr_string(const ::onnx::NodeProto& n, const char* name, std::string def) const {
    auto* a = attr(n, name);
    return a ? a->s() : def;
  }

  const ::onnx::TensorProto& constant(const ::onnx::NodeProto& n, int input, const char* role) const {
    HUBBLE_CHECK(input < n.input_size() && !n.input(input).empty(), path, ": ", where(n), ": no ", role, " input");
    auto it = constants.find(n.input(input));
    if (it == constants.end())
      error(n, std::string(role) + " '" + n.input(input) +
                   "' is computed, not a constant (an initializer): hubble imports fixed weights only");
    return *it->second;
  }
  static std::vector<std::int64_t> dims(const ::onnx::TensorProto& t) { return {t.dims().begin(), t.dims().end()}; }
  // The element count of a tensor, checked (no negative dimension, no overflow) before anything is allocated.
  std::size_t count_of(const ::onnx::NodeProto& n, const ::onnx::TensorProto& t) const {
    std::size_t count = 1;
    for (auto d : t.dims()) {
      if (d < 0 || (d > 0 && count > (std::size_t(1) << 40) / std::size_t(d)))
        error(n, "tensor '" + t.name() + "' declares the impossible shape " + join(dims(t)));
      count *= std::size_t(d);
    }
    return count;
  }
  std::vector<float> floats(const ::onnx::NodeProto& n, const ::onnx::TensorProto& t) const {
    if (t.data_type() != ::onnx::TensorProto::FLOAT)
      error(n, "tensor '" + t.name() + "' has element type " +
                   ::onnx::TensorProto::DataType_Name(::onnx::TensorProto::DataType(t.data_type())) +
                   "; hubble imports float");
    HUBBLE_CHECK(t.data_location() != ::onnx::TensorProto::EXTERNAL, path, ": ", where(n), ": tensor '", t.name(),
                 "' is stored in an external file; hubble reads self-contained models");
    const std::size_t count = count_of(n, t);
    if (t.has_raw_data() ? t.raw_data().size() != count * sizeof(float) : std::size_t(t.float_data_size()) != count)
      error(n, "tensor '" + t.name() + "' holds " +
                   std::to_string(t.has_raw_data() ? t.raw_data().size() / 4 : std::size_t(t.float_data_size())) +
                   " values, its shape " + join(dims(t)) + " needs " + std::to_string(count) +
                   " (truncated or corrupt file?)");
    std::vector<float> v(count);
    if (t.has_raw_data()) {
      if (t.raw_data().size() != count * sizeof(float))
        error(n, "tensor '" + t.name() + "' holds " + std::to_string(t.raw_data().size()) + " bytes, its shape " +
                     join(dims(t)) + " needs " + std::to_string(count * 4));
      std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
    } else {
      if (std::size_t(t.float_data_size()) != count)
        error(n, "tensor '" + t.name() + "' holds " + std::to_string(t.float_data_size()) + " values, its shape " +
                     join(dims(t)) + " needs " + std::to_string(count));
      std::copy(t.float_data().begin(), t.float_data().end(), v.begin());
    }
    for (float x : v)
      if (!std::isfinite(x)) error(n, "tensor '" + t.name() + "' holds a value that is not finite");
    return v;
  }
  std::vector<std::int64_t> int64s(const ::onnx::NodeProto& n, const ::onnx::TensorProto& t) const {
    if (t.data_type() != ::onnx::TensorProto::INT64) error(n, "shape tensor '" + t.name() + "' is not int64");
    const std::size_t count = count_of(n, t);
    if (count > 64)
      error(n, "shape tensor '" + t.name() + "' holds " + std::to_string(count) + " values; a shape has a few");
    std::vector<std::int64_t> v(count);
    if (t.has_raw_data()) {
      if (t.raw_data().size() != count * 8) error(n, "shape tensor '" + t.name() + "' has the wrong byte count");
      std::memcpy(v.data(), t.raw_data().data(), count * 8);
    } else {
      if (std::size_t(t.int64_data_size()) != count)
        error(n, "shape tensor '" + t.name() + "' has the wrong value count");
      std::copy(t.int64_data().begin(), t.int64_data().end(), v.begin());
    }
    return v;
  }
};

// hubble's Same padding of one axis: [before, after] with the extra at the end.
std::pair<int, int> same_pads(int size, int k, int s) {
  const int o = (size + s - 1) / s, total = std::max((o - 1) * s + k - size, 0);
  return {total / 2, total - total / 2};
}

std::string rate_text(double r) {
  std::ostringstream os;
  os.precision(6);
  os << std::fixed << r;
  std::string s = os.str();
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s += '0';
  return s;
}

}  // namespace

namespace {
void match_layer(const std::string& path, const ImportedLayer& layer, const LayerDesc& e);
// Layers of the type that a graph may leave out because they are the identity at inference:
// Dropout (PyTorch drops it in eval mode) and a Flatten of data that is already flat.
bool may_be_absent(const LayerDesc& e, const ImportedLayer* p) {
  const bool identity = e.kind == "Dropout" || (e.kind == "Flatten" && e.in_h == 1 && e.in_w == 1);
  return identity && (!p || p->desc.kind != e.kind);
}
ImportedGraph parse(const std::string& path, const NetworkDesc* expect);
}  // namespace

ImportedGraph read_graph(const std::string& path) { return parse(path, nullptr); }

void load_file(const std::string& path, const NetworkDesc& net) { load_description(parse(path, &net), net); }

namespace {
ImportedGraph parse(const std::string& path, const NetworkDesc* expect) {
  Reader r{path, read_model(path), {}, {}, {}, {}};
  const auto& g = r.model.graph();
  int version = 0;
  for (auto& o : r.model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") version = int(o.version());
  HUBBLE_CHECK(version >= opset, path, ": the model uses ONNX opset ", version, "; hubble imports opset ", opset,
               " or newer (re-export it, e.g. torch.onnx.export(..., opset_version=13))");
  try {
    ::onnx::checker::check_model(r.model);
  } catch (const std::exception& e) {
    fail(path, ": the ONNX checker rejects the model: ", e.what());
  }
  // Shape inference (lenient) so that a computed Reshape target can be read off its output.
  ::onnx::ModelProto inferred = r.model;
  try {
    ::onnx::shape_inference::InferShapes(inferred, ::onnx::OpSchemaRegistry::Instance(),
                                         ::onnx::ShapeInferenceOptions(false, 0, true));
  } catch (const std::exception&) {
  }
  for (auto& v : inferred.graph().value_info()) r.inferred[v.name()] = &v;

  for (auto& t : g.initializer()) r.constants[t.name()] = &t;
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    if (n.op_type() == "Constant") {
      auto* a = r.attr(n, "value");
      if (!a || !a->has_t()) r.error(n, "only Constant nodes with a tensor 'value' are supported");
      r.constants[n.output(0)] = &a->t();
      continue;
    }
    for (auto& in : n.input()) r.consumers[in].push_back(i);
    for (auto& o : n.output()) r.producer[o] = i;
  }
  HUBBLE_CHECK(g.output_size() == 1, path, ": the graph has ", g.output_size(), " outputs; a hubble network has one");
  const std::string output = g.output(0).name();

  // The one input that is not an initializer: float [N, C, H, W].
  const ::onnx::ValueInfoProto* input = nullptr;
  for (auto& v : g.input())
    if (!r.constants.count(v.name())) {
      HUBBLE_CHECK(!input, path, ": the graph has more than one input ('", input->name(), "', '", v.name(),
                   "'); a hubble network has one");
      input = &v;
    }
  HUBBLE_CHECK(input, path, ": the graph has no input");
  const auto& tt = input->type().tensor_type();
  HUBBLE_CHECK(tt.elem_type() == ::onnx::TensorProto::FLOAT, path, ": input '", input->name(), "' is not float");
  HUBBLE_CHECK(tt.shape().dim_size() == 4, path, ": input '", input->name(), "' has rank ", tt.shape().dim_size(),
               "; hubble imports image models with an NCHW input [N, C, H, W]");
  for (int k = 1; k < 4; ++k)
    HUBBLE_CHECK(tt.shape().dim(k).has_dim_value() && tt.shape().dim(k).dim_value() > 0 &&
                     tt.shape().dim(k).dim_value() <= 65536,
                 path, ": input '", input->name(), "' dimension ", k, " is not a fixed size; hubble needs C, H and W");

  ImportedGraph out;
  out.path = path;
  for (auto& m : r.model.metadata_props()) out.metadata[m.key()] = m.value();
  out.c = int(tt.shape().dim(1).dim_value());
  out.h = int(tt.shape().dim(2).dim_value());
  out.w = int(tt.shape().dim(3).dim_value());
  if (expect)
    HUBBLE_CHECK(out.h == expect->h && out.w == expect->w && out.c == expect->c, path, ": the input is [N, ", out.c,
                 ", ", out.h, ", ", out.w, "] (NCHW); the type's Input<", expect->h, ",", expect->w, ",", expect->c,
                 "> needs [N, ", expect->c, ", ", expect->h, ", ", expect->w, "]");

  int rank = 4, C = out.c, H = out.h, W = out.w;
  bool nhwc = false;           // after Transpose [0,2,3,1]: the next Flatten reads (h,w,c)
  bool after_gap = false;      // the last layer was GlobalAveragePool: its Flatten is hubble's flat output
  int fh = 1, fw = 1, fc = 0;  // the map the last Flatten read, in (c,h,w) order when flat_chw
  bool flat_chw = false;
  std::string cur = input->name();
  const auto next_node = [&](const std::string& tensor) -> const ::onnx::NodeProto* {
    std::vector<int> uses;
    for (int i : r.consumers[tensor])
      if (g.node(i).op_type() != "Shape") uses.push_back(i);
    if (uses.empty()) return nullptr;
    if (uses.size() > 1)
      fail(path, ": tensor '", tensor, "' feeds ", uses.size(), " nodes (", Reader::where(g.node(uses[0])), ", ",
           Reader::where(g.node(uses[1])), "); hubble networks are a single chain");
    return &g.node(uses[0]);
  };
  auto add = [&](const ::onnx::NodeProto& n, std::string kind, std::string spec) -> ImportedLayer& {
    ImportedLayer l;
    l.node = n.name().empty() ? n.output(0) : n.name();
    l.op = n.op_type();
    l.desc.kind = std::move(kind);
    l.desc.spec = std::move(spec);
    l.desc.in_h = H;
    l.desc.in_w = W;
    l.desc.in_c = C;
    out.layers.push_back(std::move(l));
    return out.layers.back();
  };
  std::size_t expected = 0;  // with `expect`: each layer is checked against the type as soon as it is read
  auto finish = [&](ImportedLayer& l) {
    l.desc.out_h = H;
    l.desc.out_w = W;
    l.desc.out_c = C;
    for (std::size_t i = 0; i < l.desc.arrays.size(); ++i) l.desc.arrays[i].data = l.values[i].data();
    if (!expect) return;
    while (expected < expect->layers.size() && may_be_absent(expect->layers[expected], &l)) ++expected;
    HUBBLE_CHECK(expected < expect->layers.size(), path, ": node '", l.node, "' (", l.op,
                 ") and after: the graph has more layers than the type ", expect->architecture);
    match_layer(path, l, expect->layers[expected++]);
  };
  auto arr = [](ImportedLayer& l, const char* name, std::vector<std::int64_t> shape, std::vector<float> v) {
    l.desc.arrays.push_back({name, nullptr, std::move(shape)});
    l.values.push_back(std::move(v));
  };
  auto need_rank = [&](const ::onnx::NodeProto& n, int want) {
    if (rank != want) r.error(n, "expects a rank-" + std::to_string(want) + " input, got rank " + std::to_string(rank));
  };
  auto check_nhwc_consumed = [&](const ::onnx::NodeProto& n) {
    if (nhwc) r.error(n, "follows Transpose [0,2,3,1] (NHWC); hubble reads that only as the order of a Flatten");
  };
  auto flatten = [&](const ::onnx::NodeProto& n) {
    if (rank == 2) {
      HUBBLE_CHECK(!nhwc, path, ": ", Reader::where(n), ": transposed flat tensor");
      return;
    }  // already flat
    if (after_gap && H == 1 && W == 1 && !nhwc) {
      rank = 2;
      return;
    }  // hubble's GlobalAvgPool output is flat
    auto& l = add(n, "Flatten", "Flatten");
    fh = H;
    fw = W;
    fc = C;
    flat_chw = !nhwc;
    nhwc = false;
    C = H * W * C;
    H = W = 1;
    rank = 2;
    finish(l);
  };

  // The value of a small shape computation on the data tensor (Shape -> Gather -> Unsqueeze -> Concat,
  // Cast, constants), with 0 for the batch dimension (Reshape's "copy this dimension"); empty when
  // it is anything else.
  std::function<std::vector<std::int64_t>(const std::string&, int)> shape_of_shape =
      [&](const std::string& name, int depth) -> std::vector<std::int64_t> {
    if (depth > 8) return {};
    if (auto c = r.constants.find(name); c != r.constants.end()) {
      if (c->second->data_type() != ::onnx::TensorProto::INT64) return {};
      return r.int64s(g.node(0), *c->second);
    }
    auto p = r.producer.find(name);
    if (p == r.producer.end()) return {};
    const auto& m = g.node(p->second);
    if (m.op_type() == "Shape") {
      if (m.input(0) != cur || rank != 4 || m.attribute_size() != 0) return {};
      return nhwc ? std::vector<std::int64_t>{0, H, W, C} : std::vector<std::int64_t>{0, C, H, W};
    }
    if (m.op_type() == "Cast" || m.op_type() == "Unsqueeze" || m.op_type() == "Identity")
      return shape_of_shape(m.input(0), depth + 1);
    if (m.op_type() == "Gather") {
      const auto data = shape_of_shape(m.input(0), depth + 1), index = shape_of_shape(m.input(1), depth + 1);
      if (data.empty() || index.size() != 1 || index[0] < 0 || index[0] >= std::int64_t(data.size())) return {};
      return {data[std::size_t(index[0])]};
    }
    if (m.op_type() == "Concat") {
      std::vector<std::int64_t> all;
      for (auto& in : m.input()) {
        const auto part = shape_of_shape(in, depth + 1);
        if (part.empty()) return {};
        all.insert(all.end(), part.begin(), part.end());
      }
      return all;
    }
    return {};
  };
  while (true) {
    const ::onnx::NodeProto* np = next_node(cur);
    if (!np) {
      HUBBLE_CHECK(cur == output, path, ": tensor '", cur, "' is used by no node and is not the graph's output '",
                   output, "'");
      break;
    }
    const auto& n = *np;
    HUBBLE_CHECK(n.domain().empty() || n.domain() == "ai.onnx", path, ": ", Reader::where(n), ": custom domain '",
                 n.domain(), "'");
    HUBBLE_CHECK(n.input_size() > 0 && n.input(0) == cur, path, ": ", Reader::where(n), ": reads '", cur, "' as input ",
                 1, " of its inputs, not as its data input");
    for (int k = 1; k < n.output_size(); ++k)
      if (!n.output(k).empty() && !r.consumers[n.output(k)].empty())
        r.error(n, "its output " + std::to_string(k + 1) + " ('" + n.output(k) +
                       "') is used; hubble has no layer for that");
    const std::string& op = n.op_type();
    const bool was_gap = after_gap;
    after_gap = false;
    if (op != "Flatten" && op != "Reshape") check_nhwc_consumed(n);

    if (op == "Identity") {
    } else if (op == "Conv") {
      need_rank(n, 4);
      const auto& wt = r.constant(n, 1, "weight");
      const auto wd = Reader::dims(wt);
      if (wd.size() != 4)
        r.error(n, "weight '" + wt.name() + "' has shape " + join(wd) + "; a 2-D convolution has [out, in, kh, kw]");
      for (auto d : wd)
        if (d <= 0 || d > 65536)
          r.error(n, "weight '" + wt.name() + "' has shape " + join(wd) + "; every dimension must be in 1..65536");
      const int F = int(wd[0]), K = int(wd[2]);
      if (wd[1] != C)
        r.error(n, "weight '" + wt.name() + "' has shape " + join(wd) +
                       ": ONNX Conv weights are [out, in, kh, kw], so in = " + std::to_string(wd[1]) +
                       ", but the input has " + std::to_string(C) +
                       " channels (a kernel in hubble's or Keras' [kh, kw, in, out] layout?)");
      if (wd[2] != wd[3])
        r.error(n, "kernel " + std::to_string(wd[2]) + "x" + std::to_string(wd[3]) +
                       " is not square; hubble's Conv2D has K x K kernels");
      const auto ks = r.attr_ints(n, "kernel_shape", {K, K});
      if (ks != std::vector<std::int64_t>{K, K})
        r.error(n, "kernel_shape " + join(ks) + " differs from its weight's " + join(wd));
      if (r.attr_int(n, "group", 1) != 1)
        r.error(n, "group " + std::to_string(r.attr_int(n, "group", 1)) +
                       ": hubble's Conv2D is a full (group 1) convolution");
      const auto dil = r.attr_ints(n, "dilations", {1, 1});
      if (dil != std::vector<std::int64_t>{1, 1}) r.error(n, "dilations " + join(dil) + ": hubble's Conv2D has none");
      const auto st = r.attr_ints(n, "strides", {1, 1});
      if (st.size() != 2 || st[0] != st[1])
        r.error(n, "strides " + join(st) + ": hubble's Conv2D has one stride for both axes");
      if (st[0] <= 0 || st[0] > 65536) r.error(n, "strides " + join(st) + " must be positive");
      const int S = int(st[0]);
      const auto [st_top, st_bottom] = same_pads(H, K, S);
      const auto [st_left, st_right] = same_pads(W, K, S);
      const std::vector<std::int64_t> same{st_top, st_left, st_bottom, st_right};
      const std::string auto_pad = r.attr_string(n, "auto_pad", "NOTSET");
      std::vector<std::int64_t> pads = r.attr_ints(n, "pads", {0, 0, 0, 0});
      if (auto_pad == "VALID") pads = {0, 0, 0, 0};
      else if (auto_pad == "SAME_UPPER") pads = same;
      else if (auto_pad != "NOTSET")
        r.error(n, "auto_pad " + auto_pad + ": hubble pads as SAME_UPPER (Same) or not at all (Valid)");
      bool is_same = false;
      if (pads == std::vector<std::int64_t>{0, 0, 0, 0}) {
        if (K > H || K > W)
          r.error(n, "kernel " + std::to_string(K) + " is larger than its " + std::to_string(H) + "x" +
                         std::to_string(W) + " input");
      } else if (pads == same) {
        is_same = true;
      } else {
        r.error(n, "pads " + join(pads) + " (top, left, bottom, right) on a " + std::to_string(H) + "x" +
                       std::to_string(W) + " input with kernel " + std::to_string(K) + " and stride " +
                       std::to_string(S) + " are neither Valid ([0,0,0,0]) nor hubble's Same (" + join(same) +
                       ", the extra row/column at the end)");
      }
      const std::vector<float> wv = r.floats(n, wt);
      std::vector<float> bias(std::size_t(F), 0.f);
      if (n.input_size() > 2 && !n.input(2).empty()) {
        const auto& bt = r.constant(n, 2, "bias");
        if (Reader::dims(bt) != std::vector<std::int64_t>{F})
          r.error(n, "bias '" + bt.name() + "' has shape " + join(Reader::dims(bt)) + ", expected [" +
                         std::to_string(F) + "]");
        bias = r.floats(n, bt);
      }
      auto& l = add(n, "Conv2D",
                    "Conv2D<" + std::to_string(F) + "," + std::to_string(K) + "," + std::to_string(S) + "," +
                        (is_same ? "same" : "valid") + ">");
      l.desc.filters = F;
      l.desc.kernel = K;
      l.desc.stride = S;
      l.desc.same = is_same;
      if (is_same) {
        l.desc.pad_top = int(same[0]);
        l.desc.pad_left = int(same[1]);
        l.desc.pad_bottom = int(same[2]);
        l.desc.pad_right = int(same[3]);
      }
      std::vector<float> k(wv.size());
      for (int ky = 0; ky < K; ++ky)
        for (int kx = 0; kx < K; ++kx)
          for (int c = 0; c < C; ++c)
            for (int f = 0; f < F; ++f)
              k[((std::size_t(ky) * K + kx) * C + c) * F + f] = wv[((std::size_t(f) * C + c) * K + ky) * K + kx];
      arr(l, "kernel", {K, K, C, F}, std::move(k));
      arr(l, "bias", {F}, std::move(bias));
      H = is_same ? (H + S - 1) / S : (H - K) / S + 1;
      W = is_same ? (W + S - 1) / S : (W - K) / S + 1;
      C = F;
      finish(l);
    } else if (op == "MaxPool") {
      need_rank(n, 4);
      const auto ks = r.attr_ints(n, "kernel_shape", {});
      if (ks.size() != 2 || ks[0] != ks[1])
        r.error(n, "kernel_shape " + join(ks) + ": hubble's MaxPool has square windows");
      const auto st = r.attr_ints(n, "strides", {1, 1});
      if (st.size() != 2 || st[0] != st[1])
        r.error(n, "strides " + join(st) + ": hubble's MaxPool has one stride for both axes");
      const auto pads = r.attr_ints(n, "pads", {0, 0, 0, 0});
      const std::string auto_pad = r.attr_string(n, "auto_pad", "NOTSET");
      if (pads != std::vector<std::int64_t>{0, 0, 0, 0} || (auto_pad != "NOTSET" && auto_pad != "VALID"))
        r.error(n, "pads " + join(pads) + " / auto_pad " + auto_pad + ": hubble's MaxPool does not pad");
      if (r.attr_int(n, "ceil_mode", 0) != 0)
        r.error(n, "ceil_mode 1: hubble's MaxPool drops a leftover row/column (floor)");
      const auto dil = r.attr_ints(n, "dilations", {1, 1});
      if (dil != std::vector<std::int64_t>{1, 1}) r.error(n, "dilations " + join(dil) + ": hubble's MaxPool has none");
      if (ks[0] <= 0 || ks[0] > 16 || st[0] <= 0 || st[0] > 65536)
        r.error(n, "kernel_shape " + join(ks) + " / strides " + join(st) +
                       ": hubble's MaxPool has windows of 1..16 and a positive stride");
      const int P = int(ks[0]), S = int(st[0]);
      if (P > H || P > W) r.error(n, "window " + std::to_string(P) + " is larger than its input");
      auto& l = add(n, "MaxPool", "MaxPool<" + std::to_string(P) + "," + std::to_string(S) + ">");
      l.desc.pool = P;
      l.desc.stride = S;
      H = (H - P) / S + 1;
      W = (W - P) / S + 1;
      finish(l);
    } else if (op == "Relu") {
      finish(add(n, "ReLU", "ReLU"));
    } else if (op == "Softmax") {
      const auto axis = r.attr_int(n, "axis", -1);
      const bool over_channels = rank == 2 ? (axis == 1 || axis == -1) : (axis == 1 || axis == -3);
      if (!over_channels)
        r.error(n, "axis " + std::to_string(axis) + " on a rank-" + std::to_string(rank) +
                       " tensor: hubble's Softmax runs over the channels (axis 1)");
      finish(add(n, "Softmax", "Softmax"));
    } else if (op == "Dropout") {
      double ratio = 0.5;
      if (n.input_size() > 1 && !n.input(1).empty()) {
        const auto v = r.floats(n, r.constant(n, 1, "ratio"));
        if (v.size() != 1) r.error(n, "ratio is not a scalar");
        ratio = v[0];
      }
      if (n.input_size() > 2 && !n.input(2).empty()) {
        const auto& t = r.constant(n, 2, "training_mode");
        if (t.data_type() != ::onnx::TensorProto::BOOL ||
            (t.has_raw_data() ? t.raw_data() != std::string(1, '\0')
                              : (t.int32_data_size() != 1 || t.int32_data(0) != 0)))
          r.error(n, "training_mode is not the constant false; hubble imports inference graphs");
      }
      const double rate = std::round(ratio * 1e6) / 1e6;  // hubble's Dropout holds millionths
      if (rate < 0 || rate >= 1) r.error(n, "ratio " + std::to_string(ratio) + " is outside [0, 1)");
      auto& l = add(n, "Dropout", "Dropout<" + std::to_string(rate) + ">");
      l.desc.rate = rate;
      finish(l);
    } else if (op == "Transpose") {
      need_rank(n, 4);
      const auto perm = r.attr_ints(n, "perm", {3, 2, 1, 0});
      if (perm != std::vector<std::int64_t>{0, 2, 3, 1})
        r.error(n, "perm " + join(perm) +
                       ": hubble's Flatten reads NCHW data in (c,h,w) order (Flatten/Reshape directly) or, "
                       "after Transpose [0,2,3,1], in (h,w,c) order; this permutation gives neither");
      nhwc = true;
    } else if (op == "Flatten") {
      if (r.attr_int(n, "axis", 1) != 1)
        r.error(n, "axis " + std::to_string(r.attr_int(n, "axis", 1)) +
                       ": hubble flattens everything but the batch (axis 1)");
      after_gap = was_gap;
      flatten(n);
      after_gap = false;
    } else if (op == "Reshape") {
      const std::int64_t features = std::int64_t(C) * H * W;
      std::vector<std::int64_t> target;
      auto it = r.constants.find(n.input_size() > 1 ? n.input(1) : "");
      if (it != r.constants.end()) {
        target = r.int64s(n, *it->second);
      } else if (auto computed = shape_of_shape(n.input(1), 0); !computed.empty()) {
        target = computed;  // PyTorch's x.view(x.size(0), -1): Shape/Gather/Unsqueeze/Concat
      } else {
        auto vi = r.inferred.find(n.output(0));
        if (vi != r.inferred.end() && vi->second->type().tensor_type().shape().dim_size() == 2 &&
            vi->second->type().tensor_type().shape().dim(1).has_dim_value())
          target = {-1, vi->second->type().tensor_type().shape().dim(1).dim_value()};
        else
          r.error(n,
                  "its target shape is computed and shape inference cannot tell it; hubble reads a Reshape as a "
                  "Flatten to [N, " +
                      std::to_string(features) + "]");
      }
      const bool flat = target.size() == 2 && (target[1] == features || (target[1] == -1 && target[0] != -1));
      if (!flat)
        r.error(n, "target shape " + join(target) + " on a " + std::to_string(C) + "x" + std::to_string(H) + "x" +
                       std::to_string(W) + " (C x H x W) tensor: hubble reads a Reshape only as a Flatten to [N, " +
                       std::to_string(features) + "]");
      after_gap = was_gap;
      flatten(n);
      after_gap = false;
    } else if (op == "GlobalAveragePool") {
      need_rank(n, 4);
      auto& l = add(n, "GlobalAvgPool", "GlobalAvgPool");
      H = W = 1;
      finish(l);
      after_gap = true;
    } else if (op == "Gemm" || op == "MatMul") {
      need_rank(n, 2);
      const auto& bt = r.constant(n, 1, "weight");
      const auto bd = Reader::dims(bt);
      const bool trans_b = op == "Gemm" && r.attr_int(n, "transB", 0) != 0;
      if (op == "Gemm" && (r.attr_int(n, "transA", 0) != 0 || r.attr_float(n, "alpha", 1.f) != 1.f ||
                           r.attr_float(n, "beta", 1.f) != 1.f))
        r.error(n, "transA/alpha/beta differ from 0/1/1: hubble's Dense is y = x W + b");
      if (bd.size() != 2 || bd[0] <= 0 || bd[1] <= 0 || bd[0] > (1 << 30) || bd[1] > (1 << 30))
        r.error(n, "weight '" + bt.name() + "' has shape " + join(bd) + "; a dense layer has a matrix");
      const int I = int(trans_b ? bd[1] : bd[0]), U = int(trans_b ? bd[0] : bd[1]);
      if (I != C)
        r.error(n, "weight '" + bt.name() + "' has shape " + join(bd) +
                       (trans_b ? " (transB = 1: [out, in])" : " ([in, out])") + ", so " + std::to_string(I) +
                       " inputs, but its input has " + std::to_string(C) + " features");
      const std::vector<float> bv = r.floats(n, bt);
      std::vector<float> bias(std::size_t(U), 0.f);
      const ::onnx::NodeProto* bias_node = &n;
      int bias_input = 2;
      std::string out_tensor = n.output(0);
      if (op == "MatMul") {  // MatMul + Add(bias) is one Dense
        const auto* add_node = next_node(n.output(0));
        bias_input = -1;
        if (add_node && add_node->op_type() == "Add" && add_node->input_size() == 2) {
          const int other = add_node->input(0) == n.output(0) ? 1 : 0;
          if (r.constants.count(add_node->input(other))) {
            bias_node = add_node;
            bias_input = other;
            out_tensor = add_node->output(0);
          }
        }
      }
      if (bias_input >= 0 && bias_node->input_size() > bias_input && !bias_node->input(bias_input).empty()) {
        const auto& ct = r.constant(*bias_node, bias_input, "bias");
        const auto cd = Reader::dims(ct);
        if (!(cd == std::vector<std::int64_t>{U} || cd == std::vector<std::int64_t>{1, U}))
          r.error(*bias_node,
                  "bias '" + ct.name() + "' has shape " + join(cd) + ", expected [" + std::to_string(U) + "]");
        bias = r.floats(*bias_node, ct);
      }
      auto& l = add(n, "Dense", "Dense<" + std::to_string(U) + ">");
      l.desc.units = U;
      // hubble's W [I, U] with rows in (h,w,c) order of the map the last Flatten read.
      const bool permute = flat_chw && fh * fw * fc == I && (fh > 1 || fw > 1);
      std::vector<float> k(std::size_t(I) * U);
      for (int i = 0; i < I; ++i) {
        std::size_t src = std::size_t(i);
        if (permute) {
          const int c = i % fc, x = (i / fc) % fw, h = i / (fc * fw);
          src = chw_index(h, x, c, fh, fw);
        }
        for (int u = 0; u < U; ++u)
          k[std::size_t(i) * U + u] = trans_b ? bv[std::size_t(u) * I + src] : bv[src * U + u];
      }
      arr(l, "kernel", {I, U}, std::move(k));
      arr(l, "bias", {U}, std::move(bias));
      C = U;
      fh = fw = 1;
      fc = U;
      flat_chw = false;
      finish(l);
      cur = out_tensor;
      continue;
    } else if (op == "BatchNormalization") {
      if (rank == 2 && flat_chw && (fh > 1 || fw > 1))
        r.error(n, "BatchNormalization of the flattened features of a spatial map is not supported");
      if (r.attr_int(n, "training_mode", 0) != 0) r.error(n, "training_mode 1: hubble imports inference graphs");
      auto& l = add(n, "BatchNorm", "BatchNorm");
      l.desc.eps = r.attr_float(n, "epsilon", 1e-5f);
      l.desc.momentum = r.attr_float(n, "momentum", 0.9f);
      const char* names[] = {"gamma", "beta", "moving_mean", "moving_variance"};
      for (int k = 0; k < 4; ++k) {
        const auto& t = r.constant(n, k + 1, names[k]);
        if (Reader::dims(t) != std::vector<std::int64_t>{C})
          r.error(n, std::string(names[k]) + " '" + t.name() + "' has shape " + join(Reader::dims(t)) + ", expected [" +
                         std::to_string(C) + "]");
        arr(l, names[k], {C}, r.floats(n, t));
      }
      finish(l);
    } else if (op == "QuantizeLinear" || op == "DequantizeLinear") {
      r.error(n,
              "an int8 (QDQ) graph: hubble imports fp32 graphs; its int8 models are .int8.h5 files "
              "(galaxy10_quantize --out, lowp::load_quantized), which save_quantized exports");
    } else {
      r.error(n, "hubble has no layer for ONNX op " + op +
                     " (it reads Conv, MaxPool, Relu, Softmax, Gemm, MatMul+Add, Flatten, "
                     "Reshape, Transpose [0,2,3,1], Dropout, BatchNormalization, GlobalAveragePool, Identity)");
    }
    cur = n.output(0);
  }
  HUBBLE_CHECK(!nhwc, path, ": the graph ends in a Transpose; hubble's output is NCHW here");
  HUBBLE_CHECK(!out.layers.empty(), path, ": the graph has no layers");
  return out;
}
}  // namespace

std::string ImportedGraph::sequential_type() const {
  std::string s = "hubble::Sequential<hubble::Input<" + std::to_string(h) + ", " + std::to_string(w) + ", " +
                  std::to_string(c) + ">";
  for (auto& l : layers) {
    const auto& d = l.desc;
    s += ",\n    ";
    if (d.kind == "Conv2D") {
      s += "hubble::Conv2D<" + std::to_string(d.filters) + ", " + std::to_string(d.kernel) + ", " +
           std::to_string(d.stride) + (d.same ? ", hubble::Same>" : ">");
    } else if (d.kind == "MaxPool") {
      s += "hubble::MaxPool<" + std::to_string(d.pool) +
           (d.pool == d.stride ? ">" : ", " + std::to_string(d.stride) + ">");
    } else if (d.kind == "Dense") {
      s += "hubble::Dense<" + std::to_string(d.units) + ">";
    } else if (d.kind == "Dropout") {
      s += "hubble::Dropout<" + rate_text(d.rate) + ">";
    } else if (d.kind == "BatchNorm") {
      HUBBLE_CHECK(std::abs(d.eps - BatchNormLayer<Shape<1, 1, 1>, float>::eps) <= 1e-9, path, ": node '", l.node,
                   "' (BatchNormalization): epsilon ", d.eps, " cannot be expressed: hubble's BatchNorm has eps ",
                   BatchNormLayer<Shape<1, 1, 1>, float>::eps);
      s += "hubble::BatchNorm";
    } else {
      s += "hubble::" + d.kind;
    }
  }
  return s + ">";
}

bool architecture_matches(const ImportedGraph& graph, const std::string& architecture) {
  std::istringstream want(architecture), have(graph.architecture());
  std::vector<std::string> a{std::istream_iterator<std::string>(want), {}},
      b{std::istream_iterator<std::string>(have), {}};
  std::size_t j = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (j < b.size() && a[i] == b[j]) {
      ++j;
      continue;
    }
    if (a[i].rfind("Dropout<", 0) == 0) continue;  // the identity at inference: PyTorch leaves it out
    if (a[i] == "Flatten" && i > 0 && (a[i - 1] == "GlobalAvgPool" || a[i - 1].rfind("Dense<", 0) == 0))
      continue;  // flat already
    return false;
  }
  return j == b.size();
}

namespace {
// Checks one layer read from the graph against the type's layer at the same position.
void match_layer(const std::string& path, const ImportedLayer& layer, const LayerDesc& e) {
  const ImportedLayer* p = &layer;
  const LayerDesc& d = p->desc;
  const std::string at = path + ": node '" + p->node + "' (" + p->op + "): ";
  const std::string type = "; the type has " + e.name + " = " + e.spec;
  HUBBLE_CHECK(d.kind == e.kind, at, "reads as hubble's ", d.spec, type, " here");
  auto differ = [&](const char* what, auto have, auto want) {
    if (have != want) fail(at, what, " ", have, type, " (", what, " ", want, ")");
  };
  if (e.kind == "Conv2D") {
    differ("filters", d.filters, e.filters);
    differ("kernel", d.kernel, e.kernel);
    differ("stride", d.stride, e.stride);
    differ("padding", std::string(d.same ? "same" : "valid"), std::string(e.same ? "same" : "valid"));
  } else if (e.kind == "MaxPool") {
    differ("window", d.pool, e.pool);
    differ("stride", d.stride, e.stride);
  } else if (e.kind == "Dense") {
    differ("units", d.units, e.units);
  } else if (e.kind == "Dropout") {
    differ("rate", rate_text(d.rate), rate_text(e.rate));
  } else if (e.kind == "BatchNorm") {
    if (std::abs(d.eps - e.eps) > 1e-9 * std::max(1.0, e.eps) + 1e-10)
      fail(at, "epsilon ", d.eps, type, " (eps ", e.eps, ")");
  }
  auto shape = [](int h, int w, int c) {
    return std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c);
  };
  differ("input (HxWxC)", shape(d.in_h, d.in_w, d.in_c), shape(e.in_h, e.in_w, e.in_c));
  differ("output (HxWxC)", shape(d.out_h, d.out_w, d.out_c), shape(e.out_h, e.out_w, e.out_c));
  HUBBLE_CHECK(d.arrays.size() == e.arrays.size(), at, d.arrays.size(), " arrays", type, " (", e.arrays.size(), ")");
  for (std::size_t k = 0; k < e.arrays.size(); ++k) {
    HUBBLE_CHECK(d.arrays[k].name == e.arrays[k].name && d.arrays[k].shape == e.arrays[k].shape, at, "array ",
                 d.arrays[k].name, " has shape ", join(d.arrays[k].shape), " in hubble's layout", type, " (",
                 e.arrays[k].name, " ", join(e.arrays[k].shape), ")");
  }
}
}  // namespace

void load_description(const ImportedGraph& graph, const NetworkDesc& net) {
  const std::string& path = graph.path;
  HUBBLE_CHECK(graph.h == net.h && graph.w == net.w && graph.c == net.c, path, ": the input is [N, ", graph.c, ", ",
               graph.h, ", ", graph.w, "] (NCHW); the type's Input<", net.h, ",", net.w, ",", net.c, "> needs [N, ",
               net.c, ", ", net.h, ", ", net.w, "]");
  std::vector<std::pair<const ImportedLayer*, const LayerDesc*>> pairs;
  std::size_t j = 0;
  for (const LayerDesc& e : net.layers) {
    const ImportedLayer* p = j < graph.layers.size() ? &graph.layers[j] : nullptr;
    if (may_be_absent(e, p)) continue;  // the identity at inference
    if (!p)
      fail(path, ": the graph ends after node '", graph.layers.back().node, "'; the type goes on with ", e.name, " = ",
           e.spec);
    match_layer(path, *p, e);
    pairs.emplace_back(p, &e);
    ++j;
  }
  HUBBLE_CHECK(j == graph.layers.size(), path, ": node '", graph.layers[j].node, "' (", graph.layers[j].op,
               ") and after: the graph has more layers than the type ", net.architecture);
  // Every check passed: only now write the weights, so a refused file leaves the network untouched.
  for (auto [p, e] : pairs)
    for (std::size_t k = 0; k < e->arrays.size(); ++k)
      std::copy(p->values[k].begin(), p->values[k].end(), e->arrays[k].data);
}

}  // namespace hubble::onnx
