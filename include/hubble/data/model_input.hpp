#pragma once
// model_input(full, crop, side): the images a network takes, made from a set of whole cut-outs:
// each one's centre crop x crop, resized to side x side (hubble::prepare_image) when the two
// differ, as galaxy10_train does for --crop. Labels are kept.
#include <algorithm>

#include "hubble/data/galaxy10.hpp"
#include "hubble/model.hpp"

namespace hubble::data {

inline ImageSet model_input(const ImageSet& full, int crop, int side) {
  ImageSet cropped = centre_crop(full, crop);
  if (crop == side) return cropped;
  ImageSet out;
  out.height = out.width = side;
  out.channels = cropped.channels;
  out.labels = cropped.labels;
  out.pixels.resize(std::size_t(cropped.size()) * out.image_bytes());
  for (int i = 0; i < cropped.size(); ++i) {
    const std::vector<std::uint8_t> img = prepare_image(cropped.image(i), crop, crop, cropped.channels, side);
    std::copy(img.begin(), img.end(), out.image(i));
  }
  return out;
}

}  // namespace hubble::data
