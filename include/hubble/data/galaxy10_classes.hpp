#pragma once
// The 10 classes of Galaxy10 DECaLS, in the order of the data set's `ans` labels 0..9.
#include <array>

namespace hubble::data {

inline constexpr int galaxy10_num_classes = 10;
inline constexpr std::array<const char*, 10> galaxy10_class_names = {
    "Disturbed",           "Merging",        "Round Smooth",           "In-between Round Smooth",
    "Cigar Shaped Smooth", "Barred Spiral",  "Unbarred Tight Spiral",  "Unbarred Loose Spiral",
    "Edge-on without Bulge", "Edge-on with Bulge"};

}  // namespace hubble::data
