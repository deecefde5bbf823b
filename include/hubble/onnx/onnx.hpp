#pragma once
// ONNX export and import for hubble networks (the optional `hubble::onnx` library: link it and
// include this header). The protobuf work (reading, writing, onnx::checker, shape inference) is
// compiled once in include/hubble/onnx/onnx.cpp against the plain description of a network's layers
// (describe(), hubble/network/describe.hpp), which the compiled code writes or fills.
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
#include "hubble/network/describe.hpp"

namespace hubble::lowp {
class QuantizedPlan;  // hubble/lowp/quantized_plan.hpp
}

namespace hubble::onnx {

// The plain description of a network's layers (ArrayView, LayerDesc, NetworkDesc, describe())
// lives in hubble/network/describe.hpp; ONNX export and import are written against it.
using ::hubble::ArrayView;
using ::hubble::describe;
using ::hubble::LayerDesc;
using ::hubble::NetworkDesc;

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
// Writes an int8 model (a lowp::QuantizedPlan, e.g. from lowp::load_quantized) as a standard QDQ
// graph (opset 13, NCHW), checked like save_description:
//   input -> QuantizeLinear/DequantizeLinear (the plan's u8 input code)
//   -> per conv stage: DequantizeLinear(s8 weights [F,C,K,K], per-output-channel scales, axis 0,
//        zero points 0) and DequantizeLinear(int32 bias at scale sx * sw[f]) into Conv, Relu,
//        then QuantizeLinear/DequantizeLinear with the stage's u8 output code, MaxPool, and the
//        same QuantizeLinear/DequantizeLinear again
//      (the last stage: Conv, Relu, MaxPool in fp32, as hubble writes it, unless the first Dense
//      is int8: then requantised like the others)
//   -> Flatten / GlobalAveragePool -> Gemm ... -> Softmax; an int8 first Dense (lowp::QuantizedDense)
//      is QuantizeLinear of its input, MatMulInteger with its s8 weights [I, U], Cast, Mul by
//      sx * sw[u] and Add of its fp32 bias (ONNX Runtime runs that as an integer product; its
//      QGemm fusion would want a QuantizeLinear after the Relu), the other Dense layers fp32 Gemm
// The requantisation sits between Relu and MaxPool (not after the pool) because that is the form
// ONNX Runtime fuses into QLinearConv (DQ -> Conv -> [Relu] -> Q) and a uint8 MaxPool
// (DQ -> MaxPool -> Q of one code); it means the same as hubble's requantise-after-pool, since
// requantising is monotone and so commutes with the max. A last stage with no QuantizeLinear after
// it runs in ONNX Runtime as an fp32 Conv of the dequantised weights. The metadata carries
// "hubble.architecture" and "hubble.int8" (the scheme). Throws hubble::Error naming the file.
void save_quantized(const lowp::QuantizedPlan& plan, const std::string& path, const ExportOptions& options = {});
// Runs onnx::checker and strict shape inference on a file (what save_description does after writing).
void check_file(const std::string& path);
// true when `architecture` (a Network::architecture()) can hold the graph: equal, or equal once the
// Dropout entries the graph lacks are dropped.
bool architecture_matches(const ImportedGraph& graph, const std::string& architecture);

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
