// libFuzzer target: the checkpoint readers on arbitrary bytes as an HDF5 file:
// read_checkpoint_header, read_checkpoint_data, and load_checkpoint into PaperNet and into a small
// network (networks.hpp), each with and without Adam state; and the int8 model reader
// (lowp::load_quantized), which shares the checkpoint's HDF5 conventions.
// Accepted: a hubble::Error. Anything else is a finding (docs/hardening.md).
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/lowp/quantized_file.hpp"
#include "networks.hpp"

using namespace hubble;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  static fuzz::ScratchFile file("checkpoint");
  static PaperNet* paper = new PaperNet(1);  // built once: 2.6 MB of weights
  static fuzz::SmallNet* small = new fuzz::SmallNet(1);
  const std::string& path = file.write(bytes, size);
  fuzz::accept_hubble_errors([&] { (void)read_checkpoint_header(path); });
  fuzz::accept_hubble_errors([&] { (void)read_checkpoint_data(path); });
  fuzz::accept_hubble_errors([&] { (void)load_checkpoint(path, *paper); });
  fuzz::accept_hubble_errors([&] {
    Adam<float> adam;
    (void)load_checkpoint(path, *paper, &adam);
  });
  fuzz::accept_hubble_errors([&] { (void)load_checkpoint(path, *small); });
  fuzz::accept_hubble_errors([&] { (void)lowp::load_quantized(path); });
  fuzz::accept_hubble_errors([&] {
    Adam<float> adam;
    (void)load_checkpoint(path, *small, &adam);
  });
  return 0;
}
