// libFuzzer target: hubble::io::decode_picture (stb_image behind hubble's checks) on arbitrary
// bytes. Accepted: a hubble::Error, or a Picture whose pixel count matches its declared size.
// Anything else is a finding (docs/hardening.md).
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_support.hpp"
#include "hubble/io/picture.hpp"

using namespace hubble;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  fuzz::accept_hubble_errors([&] {
    const io::Picture p = io::decode_picture(std::span<const std::uint8_t>(bytes, size), "fuzz input");
    fuzz::require(p.width > 0 && p.height > 0 && p.channels >= 1 && p.channels <= 4, "picture shape");
    fuzz::require(std::uint64_t(p.width) * std::uint64_t(p.height) <= io::max_picture_pixels, "pixel limit");
    fuzz::require(p.pixels.size() == std::size_t(p.width) * std::size_t(p.height) * std::size_t(p.channels),
                  "pixel bytes == width x height x channels");
  });
  return 0;
}
