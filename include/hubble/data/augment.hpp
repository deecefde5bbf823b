#pragma once
// Augmentation by the 8 symmetries of the square (the dihedral group D4), and conversion of
// uint8 images to float tensors.
//
// Pixel coordinates are (y, x): row y from the top, column x from the left, s = side - 1.
// Each transform moves the source pixel (y, x) to the destination pixel below:
//   identity      (y, x)
//   rot90         (s - x, y)       90 deg counter-clockwise as displayed (= numpy.rot90(img, 1))
//   rot180        (s - y, s - x)
//   rot270        (x, s - y)       90 deg clockwise
//   flip          (y, s - x)       left-right mirror
//   flip_rot90    (x, y)           = rot90 after flip   (transpose)
//   flip_rot180   (s - y, x)       = rot180 after flip  (upside-down mirror)
//   flip_rot270   (s - x, s - y)   = rot270 after flip  (anti-transpose)
// Galaxy classes do not change under any of them, which is why the paper multiplies its
// training set by 4 with rotations (rotate4) and why test-time averaging over all 8 views works.
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/core/tensor.hpp"
#include "hubble/data/image_set.hpp"

namespace hubble::data {

enum class Dihedral : int { identity, rot90, rot180, rot270, flip, flip_rot90, flip_rot180, flip_rot270 };

inline constexpr std::array<Dihedral, 8> all_dihedral = {
    Dihedral::identity, Dihedral::rot90,      Dihedral::rot180,      Dihedral::rot270,
    Dihedral::flip,     Dihedral::flip_rot90, Dihedral::flip_rot180, Dihedral::flip_rot270};

inline const char* dihedral_name(Dihedral t) {
  constexpr std::array<const char*, 8> names = {"identity", "rot90",      "rot180",      "rot270",
                                                "flip",     "flip_rot90", "flip_rot180", "flip_rot270"};
  return names[std::size_t(t) & 7];
}

// The composition "first a, then b".
inline Dihedral compose(Dihedral a, Dihedral b) {
  // t = (f, k) is the map rot^k(flip^f(.)), and flip rot^k = rot^-k flip, so
  // rot^kb flip^fb rot^ka flip^fa = rot^(kb + (fb ? -ka : ka)) flip^(fa xor fb).
  const int fa = int(a) >> 2, ka = int(a) & 3, fb = int(b) >> 2, kb = int(b) & 3;
  const int k = ((fb ? -ka : ka) + kb) & 3;
  return Dihedral(((fa ^ fb) << 2) | k);
}
inline Dihedral inverse(Dihedral t) {
  const int f = int(t) >> 2, k = int(t) & 3;
  return f ? t : Dihedral((4 - k) & 3);  // every reflection is its own inverse
}

namespace detail {
// Where destination pixel (y, x) reads from: src_y = y0 + yy*y + yx*x, src_x = x0 + xy*y + xx*x.
struct SourceMap {
  int y0, yy, yx, x0, xy, xx;
};
inline SourceMap source_map(Dihedral t, int side) {
  const int s = side - 1;
  switch (t) {
    case Dihedral::identity:    return {0, 1, 0, 0, 0, 1};
    case Dihedral::rot90:       return {0, 0, 1, s, -1, 0};   // dst (s-x, y)  <- src: y = x', x = s - y'
    case Dihedral::rot180:      return {s, -1, 0, s, 0, -1};
    case Dihedral::rot270:      return {s, 0, -1, 0, 1, 0};   // dst (x, s-y)  <- src: y = s - x', x = y'
    case Dihedral::flip:        return {0, 1, 0, s, 0, -1};
    case Dihedral::flip_rot90:  return {0, 0, 1, 0, 1, 0};    // transpose
    case Dihedral::flip_rot180: return {s, -1, 0, 0, 0, 1};
    case Dihedral::flip_rot270: return {s, 0, -1, s, -1, 0};  // dst (s-x, s-y) <- src: y = s - x', x = s - y'
  }
  ::hubble::detail::fail("Dihedral: invalid transform ", int(t));
}

// Applies t to one height x width image (square unless t is the identity) while converting each
// value with `convert` (uint8 -> Out).
template <class Out, class Convert>
void transform_convert(const std::uint8_t* src, int height, int width, int channels, Dihedral t, Out* dst,
                       Convert convert) {
  const std::size_t n = std::size_t(height) * width * channels;
  const int side = width;
  if (t == Dihedral::identity) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = convert(src[i]);
    return;
  }
  const SourceMap m = source_map(t, side);
  // Moving one destination column moves the source by (yx, xx) pixels.
  const std::ptrdiff_t step = (std::ptrdiff_t(m.yx) * side + m.xx) * channels;
  for (int y = 0; y < side; ++y) {
    const std::uint8_t* s = src + (std::ptrdiff_t(m.y0 + m.yy * y) * side + (m.x0 + m.xy * y)) * channels;
    Out* d = dst + std::size_t(y) * side * channels;
    if (channels == 3) {
      for (int x = 0; x < side; ++x, s += step, d += 3) {
        d[0] = convert(s[0]); d[1] = convert(s[1]); d[2] = convert(s[2]);
      }
    } else {
      for (int x = 0; x < side; ++x, s += step, d += channels)
        for (int c = 0; c < channels; ++c) d[c] = convert(s[c]);
    }
  }
}
}  // namespace detail

// dst = t(src) for a side x side x channels image; src and dst must not overlap.
inline void transform_image(const std::uint8_t* src, int side, int channels, Dihedral t, std::uint8_t* dst) {
  HUBBLE_CHECK(side > 0 && channels > 0, "transform_image: bad image size ", side, " x ", side, " x ", channels);
  HUBBLE_CHECK(int(t) >= 0 && int(t) < 8, "transform_image: invalid Dihedral value ", int(t));
  detail::transform_convert(src, side, side, channels, t, dst, [](std::uint8_t v) { return v; });
}

// The paper's x4 augmentation: every chosen image at 0, 90, 180 and 270 degrees. Image k of
// `indices` becomes images 4k .. 4k+3 (identity, rot90, rot180, rot270), all with its label.
inline ImageSet rotate4(const ImageSet& set, const std::vector<int>& indices) {
  HUBBLE_CHECK(set.height == set.width, "rotate4: images must be square, not ", set.height, " x ", set.width);
  ImageSet out;
  out.height = set.height; out.width = set.width; out.channels = set.channels;
  out.pixels.resize(4 * indices.size() * set.image_bytes());
  out.labels.resize(4 * indices.size());
  for (int i : indices)
    HUBBLE_CHECK(i >= 0 && i < set.size(), "rotate4: index ", i, " is outside the set of ", set.size(), " images");
  const auto n = std::ptrdiff_t(indices.size());
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t k = 0; k < n; ++k)
    for (int r = 0; r < 4; ++r) {
      transform_image(set.image(indices[std::size_t(k)]), set.height, set.channels, Dihedral(r),
                      out.image(int(4 * k + r)));
      out.labels[std::size_t(4 * k + r)] = set.labels[std::size_t(indices[std::size_t(k)])];
    }
  return out;
}

// One of the 8 transforms, uniformly.
inline Dihedral random_dihedral(Rng& rng) { return Dihedral(int(rng.below(8))); }

// out <- images `indices` of `set` as T in [0, 1] (pixel / 255), NHWC, batch = indices.size().
// With `views`, views[k] is applied to image indices[k] first (on-the-fly augmentation, or
// test-time averaging: the same index 8 times with all_dihedral). Runs in parallel over images.
template <class T>
void to_tensor(const ImageSet& set, std::span<const int> indices, Tensor<T>& out, std::span<const Dihedral> views = {}) {
  HUBBLE_CHECK(views.empty() || views.size() == indices.size(), "to_tensor: ", views.size(), " views for ",
               indices.size(), " images");
  HUBBLE_CHECK(set.height > 0 && set.width > 0 && set.channels > 0, "to_tensor: the image set is empty");
  for (int i : indices)
    HUBBLE_CHECK(i >= 0 && i < set.size(), "to_tensor: index ", i, " is outside the set of ", set.size(), " images");
  for (Dihedral v : views) {
    HUBBLE_CHECK(int(v) >= 0 && int(v) < 8, "to_tensor: invalid Dihedral value ", int(v));
    HUBBLE_CHECK(v == Dihedral::identity || set.height == set.width,
                 "to_tensor: rotations and flips need square images, not ", set.height, " x ", set.width);
  }
  out.resize(int(indices.size()), set.height, set.width, set.channels);
  if (indices.empty()) return;
  // Division, not a multiply by 1/255, so values are exactly v / 255 in T; it vectorises.
  const auto convert = [](std::uint8_t v) { return T(v) / T(255); };
  const auto n = std::ptrdiff_t(indices.size());
  const std::size_t bytes = set.image_bytes();
  // Threads pay off from a few images of 128 x 128 x 3 upwards.
#pragma omp parallel for schedule(static) if (std::size_t(n) * bytes > (std::size_t(1) << 17))
  for (std::ptrdiff_t k = 0; k < n; ++k)
    detail::transform_convert(set.image(indices[std::size_t(k)]), set.height, set.width, set.channels,
                              views.empty() ? Dihedral::identity : views[std::size_t(k)], out.sample(int(k)), convert);
}

}  // namespace hubble::data
