#pragma once
// ONNX export and import for hubble networks (the optional `hubble::onnx` library: link it and
// include this header). The protobuf work (reading, writing, onnx::checker, shape inference) is
// compiled once in include/hubble/onnx/onnx.cpp; this header only turns a Network type into a plain
// description of its layers (describe()) that the compiled code writes or fills.
//
//   hubble::PaperNet net(1);
//   hubble::onnx::save(net, "paper.onnx");    // opset 13, NCHW, checked by onnx::checker + shape inference
//   hubble::onnx::load(net, "paper.onnx");    // checks the graph node by node against the type
//   std::cout << hubble::onnx::read_graph("model.onnx").sequential_type();   // the type that holds it
//
// Layouts: hubble runs NHWC with Conv2D kernels [kh,kw,in,out] and Dense kernels [in,out] whose rows
// follow Flatten's (h,w,c) order; ONNX is NCHW with Conv weights [out,in,kh,kw]. Export writes
// a standard graph (Flatten on NCHW, Gemm with transB = 1, as torch.onnx.export does) and permutes
// the weights; import undoes it, and also accepts Transpose[0,2,3,1] before Flatten (Keras/tf2onnx
// order) and MatMul + Add for Dense. Dropout is the identity at inference: a Dropout node must
// carry the type's rate, and a missing one (PyTorch drops them in eval mode) is accepted.
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "hubble/hubble.hpp"

namespace hubble::onnx {

// One array of a layer, in hubble's layout: "kernel" [K,K,C,F] or [I,U], "bias", "gamma", "beta",
// "moving_mean", "moving_variance".
struct ArrayView {
  std::string name;
  float* data = nullptr;
  std::vector<std::int64_t> shape;
  std::size_t size() const {
    std::size_t n = 1;
    for (auto d : shape) n *= std::size_t(d);
    return n;
  }
};

// One layer as ONNX sees it. kind: Conv2D, MaxPool, Dense, Flatten, Dropout, ReLU, Softmax,
// BatchNorm, GlobalAvgPool, or anything else (which has no ONNX form).
struct LayerDesc {
  std::string name, kind, spec;  // "conv2d_1", "Conv2D", "Conv2D<32,5,2,valid>"
  int in_h = 0, in_w = 0, in_c = 0, out_h = 0, out_w = 0, out_c = 0;
  int filters = 0, kernel = 0, stride = 0, pool = 0, units = 0;
  bool same = false;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  double rate = 0, eps = 0, momentum = 0;
  std::vector<ArrayView> arrays;
};

struct NetworkDesc {
  int h = 0, w = 0, c = 0;  // Input<H,W,C>
  std::string architecture;
  std::vector<LayerDesc> layers;
};

// A layer read from an ONNX graph, weights converted to hubble's layout (desc.arrays point into values).
struct ImportedLayer {
  LayerDesc desc;
  std::string node, op;  // the ONNX node it came from: "/conv1/Conv", "Conv"
  std::vector<std::vector<float>> values;
};

struct ImportedGraph {
  std::string path;
  std::map<std::string, std::string> metadata;  // the model's metadata_props (hubble writes its checkpoint's metadata)
  int h = 0, w = 0, c = 0;
  std::vector<ImportedLayer> layers;
  // "hubble::Sequential<hubble::Input<128,128,3>, hubble::Conv2D<32,5,2>, ...>"
  std::string sequential_type() const;
  // The architecture string hubble's checkpoints use ("Input<128,128,3> Conv2D<32,5,2,valid> ...").
  std::string architecture() const {  // inline: hubble::Model uses it without linking hubble::onnx
    std::string s = "Input<" + std::to_string(h) + "," + std::to_string(w) + "," + std::to_string(c) + ">";
    for (auto& l : layers) s += " " + l.desc.spec;
    return s;
  }
};

struct ExportOptions {
  std::string producer = "hubble";
  std::string input_name = "input", output_name = "output";
  std::map<std::string, std::string> metadata;  // written as metadata_props (e.g. "model/crop_fraction")
};

// Compiled in include/hubble/onnx/onnx.cpp (library hubble::onnx). All throw hubble::Error naming the file,
// the node and what differs.
void save_description(const NetworkDesc& net, const std::string& path, const ExportOptions& options = {});
ImportedGraph read_graph(const std::string& path);
void load_description(const ImportedGraph& graph, const NetworkDesc& net);
// read_graph + load_description, checking each node against the type as soon as it is read (so the
// first difference is the one reported).
void load_file(const std::string& path, const NetworkDesc& net);
// Runs onnx::checker and strict shape inference on a file (what save_description does after writing).
void check_file(const std::string& path);
// true when `architecture` (a Network::architecture()) can hold the graph: equal, or equal once the
// Dropout entries the graph lacks are dropped.
bool architecture_matches(const ImportedGraph& graph, const std::string& architecture);

namespace detail {

template <class L>
struct layer_traits {
  static void fill(LayerDesc&) {}
};
template <class In, class T, int F, int K, int S, class Pad, class Kernel>
struct layer_traits<Conv2DLayer<In, T, F, K, S, Pad, Kernel>> {
  static void fill(LayerDesc& d) {
    using L = Conv2DLayer<In, T, F, K, S, Pad, Kernel>;
    d.filters = F;
    d.kernel = K;
    d.stride = S;
    d.same = std::is_same_v<Pad, Same>;
    // hubble's geometry: total padding split with the extra row/column at the end (TensorFlow's 'same').
    const int ph = std::max((L::out_shape::h - 1) * S + K - In::h, 0),
              pw = std::max((L::out_shape::w - 1) * S + K - In::w, 0);
    if (d.same) {
      d.pad_top = ph / 2;
      d.pad_left = pw / 2;
      d.pad_bottom = ph - ph / 2;
      d.pad_right = pw - pw / 2;
    }
  }
};
template <class In, class T, int P, int S>
struct layer_traits<MaxPoolLayer<In, T, P, S>> {
  static void fill(LayerDesc& d) {
    d.pool = P;
    d.stride = S;
  }
};
template <class In, class T, int U>
struct layer_traits<DenseLayer<In, T, U>> {
  static void fill(LayerDesc& d) { d.units = U; }
};
template <class In, class T, DropoutRate R>
struct layer_traits<DropoutLayer<In, T, R>> {
  static void fill(LayerDesc& d) { d.rate = DropoutLayer<In, T, R>::rate; }
};
template <class In, class T>
struct layer_traits<BatchNormLayer<In, T>> {
  static void fill(LayerDesc& d) {
    d.eps = BatchNormLayer<In, T>::eps;
    d.momentum = BatchNormLayer<In, T>::momentum;
  }
};

}  // namespace detail

// The layers of `net` with pointers to its arrays (valid while net lives).
template <class Net>
NetworkDesc describe(Net& net) {
  static_assert(std::is_same_v<typename Net::scalar, float>, "hubble::onnx: ONNX models are float networks");
  NetworkDesc out;
  using In = typename Net::input_shape;
  out.h = In::h;
  out.w = In::w;
  out.c = In::c;
  out.architecture = Net::architecture();
  const auto& names = Net::layer_names();
  net.for_each_layer([&](auto& layer, std::size_t i) {
    using L = std::remove_cvref_t<decltype(layer)>;
    LayerDesc d;
    d.name = names[i];
    d.kind = L::kind;
    d.spec = L::spec();
    d.in_h = L::in_shape::h;
    d.in_w = L::in_shape::w;
    d.in_c = L::in_shape::c;
    d.out_h = L::out_shape::h;
    d.out_w = L::out_shape::w;
    d.out_c = L::out_shape::c;
    detail::layer_traits<L>::fill(d);
    layer.for_each_parameter([&](const char* suffix, float* v, float*, std::size_t n) {
      ArrayView a{suffix, v, {}};
      const std::string s = suffix;
      if (d.kind == "Conv2D" && s == "kernel") a.shape = {d.kernel, d.kernel, d.in_c, d.filters};
      else if (d.kind == "Dense" && s == "kernel") a.shape = {d.in_c, d.units};
      else a.shape = {std::int64_t(n)};
      HUBBLE_CHECK(a.size() == n, "hubble::onnx: ", d.name, "/", s, " holds ", n, " values, not the ", a.size(),
                   " its shape says");
      d.arrays.push_back(a);
    });
    if constexpr (requires { layer.for_each_buffer([](const char*, float*, std::size_t) {}); })
      layer.for_each_buffer([&](const char* suffix, float* v, std::size_t n) {
        d.arrays.push_back({suffix, v, {std::int64_t(n)}});
      });
    out.layers.push_back(std::move(d));
  });
  return out;
}

// Writes `net` as an ONNX model (opset 13) and checks the file with onnx::checker and shape inference.
template <class Net>
void save(Net& net, const std::string& path, const ExportOptions& options = {}) {
  save_description(describe(net), path, options);
}

// Reads an ONNX model into `net`, checking every node against Net (op, shapes, attributes).
template <class Net>
void load(Net& net, const std::string& path) {
  load_file(path, describe(net));
}

}  // namespace hubble::onnx
