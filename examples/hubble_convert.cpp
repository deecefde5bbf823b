// hubble_convert: moves weights between hubble checkpoints and ONNX models.
//   hubble_convert IN.h5 OUT.onnx       checkpoint -> ONNX (opset 13, checked by onnx::checker)
//   hubble_convert IN.onnx OUT.h5       ONNX -> checkpoint (node-by-node checked against the network)
//   hubble_convert IN.int8.h5 OUT.onnx  int8 model (galaxy10_quantize --out) -> ONNX QDQ (opset 13,
//                                       checked): QuantizeLinear/DequantizeLinear around each conv
//                                       stage, as ONNX Runtime runs int8 (hubble/onnx/onnx.hpp)
//   hubble_convert --describe [FILE]    the exact architecture strings of the built-in networks, or
//                                       of FILE (a checkpoint or an ONNX model)
// The network is found from the architecture: a built-in one (PaperNet, ImprovedNet). An ONNX graph
// without Dropout nodes (PyTorch leaves them out in eval mode) matches a network that has them.
#include <iostream>
#include <string>

#include "hubble/improved_net.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/lowp/quantized_file.hpp"
#include "hubble/onnx/onnx.hpp"
#include "hubble/paper_net.hpp"

namespace {

using Builtins = std::tuple<hubble::PaperNet, hubble::ImprovedNet>;
const char* builtin_names[] = {"PaperNet", "ImprovedNet"};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Calls f.template operator()<Net>(name) for the built-in network that `accepts` the file; false if none.
template <class Accept, class F>
bool with_network(Accept&& accepts, F&& f) {
  bool done = false;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((!done && accepts(std::tuple_element_t<I, Builtins>::architecture())
          ? (f.template operator()<std::tuple_element_t<I, Builtins>>(builtin_names[I]), done = true)
          : false),
     ...);
  }
  (std::make_index_sequence<std::tuple_size_v<Builtins>>{});
  return done;
}

// true when `path` is named *.int8.h5 (the int8 reader then says what is wrong with it) or is an
// HDF5 file whose 'format' attribute names a hubble int8 model (other files, and files that cannot
// be read, go on to the checkpoint reader, which says what is wrong with them).
bool is_int8_model(const std::string& path) {
  if (ends_with(path, ".int8.h5")) return true;
  if (!std::filesystem::exists(path)) return false;
  try {
    const hubble::h5::File f = hubble::h5::File::open(path);
    return f.has_attribute("format") && f.attribute("format") == hubble::lowp::quantized_format;
  } catch (const std::exception&) {
    return false;
  }
}

std::string known() {
  std::string s;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((s += std::string("  ") + builtin_names[I] + ": " + std::tuple_element_t<I, Builtins>::architecture() + "\n"),
     ...);
  }
  (std::make_index_sequence<std::tuple_size_v<Builtins>>{});
  return s;
}

int run(int argc, char** argv) {
  const std::string usage =
      "usage: hubble_convert IN.h5 OUT.onnx | hubble_convert IN.int8.h5 OUT.onnx | hubble_convert IN.onnx OUT.h5 | "
      "hubble_convert --describe [FILE]\n";
  if (argc >= 2 && std::string(argv[1]) == "--describe") {
    if (argc == 2) {
      std::cout << "built-in networks (the 'architecture' attribute of their checkpoints):\n" << known();
      return 0;
    }
    const std::string file = argv[2];
    if (ends_with(file, ".onnx")) std::cout << hubble::onnx::read_graph(file).architecture() << "\n";
    else if (is_int8_model(file)) std::cout << hubble::lowp::load_quantized(file).plan().architecture << " (int8)\n";
    else std::cout << hubble::read_checkpoint_header(file).architecture << "\n";
    return 0;
  }
  if (argc != 3) {
    std::cerr << usage;
    return 2;
  }
  const std::string in = argv[1], out = argv[2];
  if (ends_with(in, ".onnx")) {
    const auto graph = hubble::onnx::read_graph(in);
    const bool ok =
        with_network([&](const std::string& arch) { return hubble::onnx::architecture_matches(graph, arch); },
                     [&]<class Net>(const char* name) {
                       auto net = std::make_unique<Net>();
                       hubble::onnx::load(*net, in);
                       hubble::CheckpointData data;
                       data.metadata = graph.metadata;
                       data.metadata.erase("hubble.architecture");
                       data.metadata["converted/from"] = in;
                       hubble::save_checkpoint(out, *net, nullptr, data);
                       std::cout << in << " -> " << out << " (" << name << ")\n";
                     });
    HUBBLE_CHECK(ok, in, ": no built-in network holds this graph\n  ", graph.architecture(), "\nbuilt-in:\n", known(),
                 "(hubble_onnx_type prints the type that holds it; compile it into your program)");
  } else if (is_int8_model(in)) {
    HUBBLE_CHECK(ends_with(out, ".onnx"), out, ": the output of an int8 model conversion must end in .onnx");
    hubble::lowp::QuantizedFile info;
    const hubble::lowp::QuantizedPlan q = hubble::lowp::load_quantized(in, &info);
    hubble::onnx::ExportOptions options;
    options.metadata = info.metadata;  // class names, calibration, ...
    options.metadata["converted/from"] = in;
    hubble::onnx::save_quantized(q, out, options);
    std::cout << in << " -> " << out << " (int8 " << q.plan().architecture << ", QDQ, opset 13, checked)\n";
  } else {
    const auto header = hubble::read_checkpoint_header(in);
    HUBBLE_CHECK(ends_with(out, ".onnx"), out, ": the output of a checkpoint conversion must end in .onnx");
    const bool ok = with_network([&](const std::string& arch) { return arch == header.architecture; },
                                 [&]<class Net>(const char* name) {
                                   auto net = std::make_unique<Net>();
                                   const hubble::CheckpointData data = hubble::load_checkpoint(in, *net);
                                   hubble::onnx::ExportOptions options;
                                   options.metadata = data.metadata;  // class names, crop fraction, ...
                                   hubble::onnx::save(*net, out, options);
                                   std::cout << in << " -> " << out << " (" << name << ", opset 13, checked)\n";
                                 });
    HUBBLE_CHECK(ok || header.architecture.find("D4") == std::string::npos, in,
                 ": its network has D4-equivariant layers (D4Net), which have no ONNX export yet; use it through "
                 "hubble::Model or galaxy10_classify");
    HUBBLE_CHECK(ok, in, ": no built-in network has its architecture\n  ", header.architecture, "\nbuilt-in:\n",
                 known());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "hubble_convert: " << e.what() << "\n";
    return 1;
  }
}
