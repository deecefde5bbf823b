#pragma once
// The dihedral group D4 (the 8 symmetries of the square) acting on filters and feature maps: the
// conventions the D4 layers (d4_conv.hpp, d4_pool.hpp, D4BatchNorm in batchnorm.hpp) are built on.
//
// Group elements are data::Dihedral (data/augment.hpp), g = 0..7: identity, rot90, rot180,
// rot270, flip, flip_rot90, flip_rot180, flip_rot270, acting on pixels exactly as
// data::transform_image does. Products follow data::compose(a, b) = "first a, then b", so in the
// usual group notation (ab = the map a after the map b):
//     a b      = compose(b, a)           a^-1 = inverse(a)
//     a^-1 b   = compose(b, inverse(a))  ("first b, then undo a")
//
// A D4 feature map with F fields has 8 * F channels, channel = field * 8 + g: the response to the
// field's filter transformed by g. D4 acts on such a map X (the "regular representation") by
// moving every channel spatially and permuting the 8 channels of each field:
//     (t . X)[f, g] = t . X[f, t^-1 g]  = spatial_t( X[f, compose(g, inverse(t))] )
// transform_fields() below computes it. A D4-equivariant layer L satisfies L(t . X) = t . L(X);
// for a plain image (D4Lift's input) t . x is transform_image on every channel (transform_spatial).
//
// Filters: g . w is transform_image applied to a K x K filter (transform_filter). Since the
// transforms are linear maps about the centre of the square, the same g turns a K x K filter and an
// H x H image about their own centres, which is what makes conv(t . x, t . w) = t . conv(x, w) hold
// exactly when the output grid is centred in the input (the size rule in d4_conv.hpp).
#include <cstddef>
#include <cstdint>

#include "hubble/core/error.hpp"
#include "hubble/core/tensor.hpp"
#include "hubble/data/augment.hpp"

namespace hubble::d4 {

using data::Dihedral;
inline constexpr int order = 8;  // |D4|: channels per field

// Group product a b (b first, then a) and inverse, as indices 0..7.
inline int product(int a, int b) { return int(data::compose(Dihedral(b), Dihedral(a))); }
inline int inverse(int a) { return int(data::inverse(Dihedral(a))); }

// Where pixel (y, x) of g . img (side x side) reads from in img: (src_y, src_x). data::transform_image's
// own table (data::detail::source_map), so filters, images and augmentation share one convention.
struct Source {
  int y, x;
};
inline Source source_of(Dihedral g, int side, int y, int x) {
  const data::detail::SourceMap m = data::detail::source_map(g, side);
  return {m.y0 + m.yy * y + m.yx * x, m.x0 + m.xy * y + m.xx * x};
}

// out = g . w for one K x K filter stored [K][K] with a stride of `step` elements between taps
// (step 1: a plain K x K array). out and w must not overlap.
template <class T>
void transform_filter(Dihedral g, const T* w, int k, T* out, std::size_t step = 1) {
  for (int y = 0; y < k; ++y)
    for (int x = 0; x < k; ++x) {
      const Source s = source_of(g, k, y, x);
      out[(std::size_t(y) * k + x) * step] = w[(std::size_t(s.y) * k + s.x) * step];
    }
}

// out = t . x: every sample and channel of a square NHWC batch moved as transform_image moves pixels.
template <class T>
void transform_spatial(const Tensor<T>& x, Dihedral t, Tensor<T>& out) {
  HUBBLE_CHECK(x.height() == x.width(), "d4::transform_spatial: images must be square, not ", x.height(), " x ",
               x.width());
  HUBBLE_CHECK(int(t) >= 0 && int(t) < order, "d4::transform_spatial: invalid Dihedral value ", int(t));
  const int side = x.height(), c = x.channels();
  out.resize(x.batch(), side, side, c);
  for (int n = 0; n < x.batch(); ++n)
    for (int y = 0; y < side; ++y)
      for (int xx = 0; xx < side; ++xx) {
        const Source s = source_of(t, side, y, xx);
        const T* from = x.sample(n) + (std::size_t(s.y) * side + s.x) * c;
        T* to = out.sample(n) + (std::size_t(y) * side + xx) * c;
        for (int ch = 0; ch < c; ++ch) to[ch] = from[ch];
      }
}

// out = t . X for a D4 feature map (channels = fields * 8): spatially t, and channel (f, g) takes
// channel (f, t^-1 g) — the regular representation above.
template <class T>
void transform_fields(const Tensor<T>& x, Dihedral t, Tensor<T>& out) {
  HUBBLE_CHECK(x.channels() % order == 0, "d4::transform_fields: ", x.channels(),
               " channels is not a D4 feature map (a multiple of 8)");
  Tensor<T> moved;
  transform_spatial(x, t, moved);
  out.resize(x.batch(), x.height(), x.width(), x.channels());
  const int fields = x.channels() / order, t_inv = inverse(int(t));
  const std::size_t pixels = std::size_t(x.batch()) * x.height() * x.width();
  for (std::size_t p = 0; p < pixels; ++p)
    for (int f = 0; f < fields; ++f)
      for (int g = 0; g < order; ++g)
        out[p * x.channels() + f * order + g] = moved[p * x.channels() + f * order + product(t_inv, g)];
}

}  // namespace hubble::d4
