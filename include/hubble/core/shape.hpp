#pragma once
// Shape<H, W, C>: the compile-time shape of one sample (height, width, channels), NHWC.
// A flat vector of N features is Shape<1, 1, N>. The batch size is a runtime value.
#include <cstddef>
#include <string>

namespace hubble {

template <int H, int W, int C>
struct Shape {
  static_assert(H > 0 && W > 0 && C > 0, "Shape: every dimension must be positive");
  static constexpr int h = H, w = W, c = C;
  static constexpr std::size_t size = std::size_t(H) * W * C;
  static constexpr bool is_flat = (H == 1 && W == 1);
  // "62x62x32", or "1024" for a flat shape, as Keras' summary prints it.
  static std::string str() {
    if constexpr (is_flat) return std::to_string(C);
    else return std::to_string(H) + "x" + std::to_string(W) + "x" + std::to_string(C);
  }
};

// Train enables dropout (and anything else that differs between fitting and inference).
enum class Mode { train, eval };

}  // namespace hubble
