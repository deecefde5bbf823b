#pragma once
// Include this (and link hubble::onnx) to let hubble::Model::load open .onnx files as well as
// checkpoints: the graph goes to the registered network whose architecture holds it (Dropout nodes
// may be absent, as in PyTorch's exports), checked node by node (hubble/onnx/onnx.hpp).
//
//   #include "hubble/onnx/model.hpp"
//   hubble::Model m = hubble::Model::load("papernet.onnx");
#include <memory>

#include "hubble/model.hpp"
#include "hubble/onnx/onnx.hpp"

namespace hubble::onnx::detail {

// Installs the ONNX reader into Model once, in every program that includes this header.
inline const bool model_support_installed = [] {
  Model::OnnxSupport& s = Model::onnx_support();
  s.read = [](const std::string& path) { return std::make_shared<const ImportedGraph>(read_graph(path)); };
  s.matches = [](const ImportedGraph& g, const std::string& arch) { return architecture_matches(g, arch); };
  s.load = [](const ImportedGraph& g, const NetworkDesc& d) { load_description(g, d); };
  return true;
}();

}  // namespace hubble::onnx::detail
