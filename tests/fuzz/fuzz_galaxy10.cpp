// libFuzzer target: hubble::data::load_galaxy10 on arbitrary bytes as an HDF5 file.
// Accepted: a hubble::Error, or an ImageSet whose sizes agree with each other and whose labels
// are class ids. Anything else is a finding (docs/hardening.md).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "hubble/data/galaxy10.hpp"

using namespace hubble;

namespace {
void check(const data::ImageSet& set) {
  fuzz::require(set.height > 0 && set.width > 0 && set.channels == 3, "image shape");
  fuzz::require(set.pixels.size() == set.labels.size() * set.image_bytes(), "pixel bytes == labels x image bytes");
  for (int label : set.labels) fuzz::require(label >= 0 && label < data::galaxy10_num_classes, "label in 0..9");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  static fuzz::ScratchFile file("galaxy10");
  const std::string& path = file.write(bytes, size);
  fuzz::accept_hubble_errors([&] {
    data::LoadOptions whole;  // every image, uncropped, in blocks of 3 rows (several hyperslabs)
    whole.crop = 0;
    whole.chunk_rows = 3;
    const data::ImageSet set = data::load_galaxy10(path, whole);
    check(set);
    data::LoadOptions cropped;  // the cropping path on the first two images, one row per block
    cropped.crop = std::max(1, std::min(set.height, set.width) / 2);
    cropped.chunk_rows = 1;
    cropped.limit = 2;
    const data::ImageSet part = data::load_galaxy10(path, cropped);
    check(part);
    fuzz::require(part.height == cropped.crop && part.width == cropped.crop, "crop size");
    fuzz::require(part.size() == std::min(2, set.size()), "limit");
  });
  return 0;
}
