#pragma once
// ImageSet: labelled uint8 images in memory, NHWC, all of one size. The Galaxy10 reader fills
// one; the trainer, augmentation and the synthetic generator use it without needing the file
// format (data/galaxy10.hpp).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/data/galaxy10_classes.hpp"

namespace hubble::data {

// uint8 images, NHWC, all of one size, with a class label per image.
struct ImageSet {
  int height = 0, width = 0, channels = 3;
  std::vector<std::uint8_t> pixels;  // size() * height * width * channels
  std::vector<int> labels;           // 0..9

  int size() const { return int(labels.size()); }
  std::size_t image_bytes() const { return std::size_t(height) * width * channels; }
  const std::uint8_t* image(int i) const { return pixels.data() + std::size_t(i) * image_bytes(); }
  std::uint8_t* image(int i) { return pixels.data() + std::size_t(i) * image_bytes(); }
};

// The images `indices` of `set`, in that order (e.g. the training half of a Split).
inline ImageSet subset(const ImageSet& set, const std::vector<int>& indices) {
  ImageSet out;
  out.height = set.height; out.width = set.width; out.channels = set.channels;
  out.pixels.resize(indices.size() * set.image_bytes());
  out.labels.reserve(indices.size());
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const int i = indices[k];
    HUBBLE_CHECK(i >= 0 && i < set.size(), "subset: index ", i, " is outside the set of ", set.size(), " images");
    std::copy_n(set.image(i), set.image_bytes(), out.pixels.data() + k * set.image_bytes());
    out.labels.push_back(set.labels[std::size_t(i)]);
  }
  return out;
}

// Images per class (index = class id).
inline std::array<int, galaxy10_num_classes> class_counts(const std::vector<int>& labels) {
  std::array<int, galaxy10_num_classes> n{};
  for (int l : labels) {
    HUBBLE_CHECK(l >= 0 && l < galaxy10_num_classes, "class_counts: label ", l, " is outside 0..9");
    ++n[std::size_t(l)];
  }
  return n;
}

}  // namespace hubble::data
