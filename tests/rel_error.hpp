#pragma once
// How far a kernel's output is from the reference's, for the kernel tests.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace test_support {

// max |ref - got| / max |ref|: the error relative to the reference's scale.
template <class T>
double rel_error(const std::vector<T>& ref, const std::vector<T>& got) {
  double err = 0, scale = 1e-300;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(double(ref[i]) - double(got[i])));
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  return err / scale;
}

}  // namespace test_support
