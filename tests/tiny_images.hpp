#pragma once
// tiny_images(n, seed): n 12x12x3 images of 4 learnable classes, a bright square in one quadrant
// (the class) on noise. Not symmetric under rotation, but quadrant -> class stays learnable
// enough for the trainer's tests. Shared by test_trainer.cpp and test_sharded.cpp.
#include <cstdint>

#include "hubble/core/rng.hpp"
#include "hubble/data/image_set.hpp"

namespace test_support {

inline hubble::data::ImageSet tiny_images(int n, std::uint64_t seed) {
  hubble::data::ImageSet s;
  s.height = s.width = 12;
  s.channels = 3;
  hubble::Rng r(seed);
  for (int i = 0; i < n; ++i) {
    const int label = i % 4;
    s.labels.push_back(label);
    for (int y = 0; y < 12; ++y)
      for (int x = 0; x < 12; ++x) {
        const bool lit = (y < 6) == (label < 2) && (x < 6) == (label % 2 == 0);
        for (int c = 0; c < 3; ++c) s.pixels.push_back(std::uint8_t(r.below(60) + (lit ? 150 : 0)));
      }
  }
  return s;
}

}  // namespace test_support
