// hubble_onnx_type MODEL.onnx: prints the hubble::Sequential<...> type that holds an ONNX model
// (from PyTorch's torch.onnx.export, tf2onnx, or hubble_convert), ready to paste into a program
// that then loads the weights with hubble::onnx::load(net, "MODEL.onnx"). When a node has no
// hubble equivalent it says which node and why, and exits 1.
#include <iostream>

#include "hubble/onnx/onnx.hpp"

int main(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) == "--help") {
    std::cerr << "usage: hubble_onnx_type MODEL.onnx   (prints the Sequential<...> type that holds it)\n";
    return argc == 2 ? 0 : 2;
  }
  try {
    const auto graph = hubble::onnx::read_graph(argv[1]);
    std::cout << "// " << argv[1] << " (input NCHW [N, " << graph.c << ", " << graph.h << ", " << graph.w
              << "]; hubble takes the same images as NHWC)\n"
              << "using Net = " << graph.sequential_type() << ";\n"
              << "// architecture: " << graph.architecture() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "hubble_onnx_type: " << e.what() << "\n";
    return 1;
  }
}
