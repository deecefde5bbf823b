// Damages a galaxy10_train checkpoint in one chosen way, for tests/cli/run.sh (no HDF5 tools or
// h5py needed): the checkpoint is loaded into a PaperNet and saved back with one change.
//   checkpoint_tool FILE set-meta KEY VALUE      metadata/KEY = VALUE
//   checkpoint_tool FILE drop-meta PREFIX        removes every metadata/PREFIX... entry
//   checkpoint_tool FILE set-value KEY NUMBER    training/KEY = {NUMBER} (e.g. best_epoch nan)
//   checkpoint_tool FILE set-history-epoch I NUMBER   training/history/epoch[I] = NUMBER
//   checkpoint_tool FILE set-epoch N             epoch = N (an int64), rewritten in place with its checksum
//                                                (save_checkpoint refuses an epoch outside 0..2^31-1)
#include <cstdlib>
#include <iostream>
#include <string>

#include "../checkpoint_edit.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/optim/adam.hpp"
#include "hubble/paper_net.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: checkpoint_tool FILE set-meta|drop-meta|set-value|set-history-epoch|set-epoch ARGS...\n";
    return 2;
  }
  try {
    const std::string file = argv[1], what = argv[2];
    if (what == "set-epoch") {
      test_support::rewrite_checkpoint_epoch(file, std::stoll(argv[3]));
      return 0;
    }
    auto net = std::make_unique<hubble::PaperNet>(1);
    hubble::Adam<float> adam;
    hubble::CheckpointData d = hubble::load_checkpoint(file, *net, &adam);
    if (what == "set-meta" && argc == 5) {
      d.metadata[argv[3]] = argv[4];
    } else if (what == "drop-meta") {
      const std::string prefix = argv[3];
      std::erase_if(d.metadata, [&](const auto& kv) { return kv.first.rfind(prefix, 0) == 0; });
    } else if (what == "set-value" && argc == 5) {
      d.values[argv[3]] = {std::strtod(argv[4], nullptr)};
    } else if (what == "set-history-epoch" && argc == 5) {
      d.values.at("history/epoch").at(std::size_t(std::stoul(argv[3]))) = std::strtod(argv[4], nullptr);
    } else {
      std::cerr << "checkpoint_tool: bad arguments\n";
      return 2;
    }
    hubble::save_checkpoint(file, *net, &adam, d);
  } catch (const std::exception& e) {
    std::cerr << "checkpoint_tool: " << e.what() << "\n";
    return 1;
  }
}
