#pragma once
// Training views that vary the way a survey's images vary: one random draw of every effect in
// data/survey.hpp per image per epoch, on top of a random symmetry of the square.
//
//   source image (side S >= the network's input, native pixel scale, e.g. the centre 176 x 176)
//     -> resample: dihedral view t, scale s (log-uniform), shift (dy, dx)      apparent size, centring
//     (with photometric_probability; the rest of the views stop here)
//     -> blur sigma ~ U(0, blur_sigma_max) with blur_probability              seeing
//     -> brightness b, contrast k, per-band gains g_c                          depth, sky level, calibration
//     -> Gaussian noise sigma ~ U(0, noise_sigma_max) with noise_probability  sky and read noise
//     -> JPEG at quality ~ U[q_min, q_max] with jpeg_probability              the release's compression
//     -> clamp to [0, 1]
// Each view draws from its own Rng (seeded per item by the trainer), so a batch's pixels do
// not depend on the thread count or on which thread built which image.
#include <cmath>
#include <cstdint>
#include <span>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/core/tensor.hpp"
#include "hubble/data/augment.hpp"
#include "hubble/data/image_set.hpp"
#include "hubble/data/survey.hpp"

namespace hubble::data {

// The ranges each training view is drawn from. The defaults span what one survey's images show
// between nights and fields (docs/galaxy10.md, "A recipe that generalises").
struct SurveyJitter {
  double scale_min = 0.8, scale_max = 1.25;  // apparent size; log-uniform
  double shift = 4.0;                        // source pixels, uniform in [-shift, shift] on each axis
  double blur_probability = 0.5, blur_sigma_max = 1.5;
  double brightness = 0.25;  // factor uniform in [1 - b, 1 + b]
  double contrast = 0.2;     // factor uniform in [1 - c, 1 + c]
  double band_gain = 0.15;   // each band's factor uniform in [1 - g, 1 + g]
  double noise_probability = 0.5, noise_sigma_max = 0.04;
  double jpeg_probability = 0.3;
  int jpeg_quality_min = 30, jpeg_quality_max = 90;
  // Share of views that get the photometric effects (blur .. JPEG); the others keep the
  // survey's own pixels and differ only by the geometry. 1: every view (no draw is spent).
  double photometric_probability = 1.0;
};

namespace detail {
inline double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * rng.uniform(); }
}  // namespace detail

// out (side x side x c floats in [0, 1]) <- one random survey view of src (src_side square, uint8).
inline void survey_view(const std::uint8_t* src, int src_side, int channels, int side, const SurveyJitter& j,
                        Dihedral t, Rng& rng, float* out) {
  const double scale = std::exp(detail::uniform(rng, std::log(j.scale_min), std::log(j.scale_max)));
  const double dy = detail::uniform(rng, -j.shift, j.shift), dx = detail::uniform(rng, -j.shift, j.shift);
  survey::resample(src, src_side, src_side, channels, scale, dy, dx, t, side, out);
  if (j.photometric_probability < 1 && !(rng.uniform() < j.photometric_probability)) return;
  const std::size_t pixels = std::size_t(side) * std::size_t(side), n = pixels * std::size_t(channels);
  if (rng.uniform() < j.blur_probability)
    survey::gaussian_blur(out, side, side, channels, detail::uniform(rng, 0.0, j.blur_sigma_max));
  const double brightness = detail::uniform(rng, 1 - j.brightness, 1 + j.brightness);
  const double contrast = detail::uniform(rng, 1 - j.contrast, 1 + j.contrast);
  survey::brightness_contrast(out, pixels, channels, brightness, contrast);
  double gain[16];
  HUBBLE_CHECK(channels <= 16, "survey_view: at most 16 bands, not ", channels);
  for (int c = 0; c < channels; ++c) gain[c] = detail::uniform(rng, 1 - j.band_gain, 1 + j.band_gain);
  survey::band_gain(out, pixels, channels, gain);
  if (rng.uniform() < j.noise_probability)
    survey::add_gaussian_noise(out, n, detail::uniform(rng, 0.0, j.noise_sigma_max), rng);
  survey::clamp01(out, n);
  if (rng.uniform() < j.jpeg_probability) {
    const int q = j.jpeg_quality_min + int(rng.below(std::uint64_t(j.jpeg_quality_max - j.jpeg_quality_min + 1)));
    survey::jpeg_recompress(out, side, side, channels, q);
  }
}

// out <- survey views of images `indices` of `set` (square, side >= out_side), NHWC, one per
// index; views[k] and seeds[k] are image k's symmetry and random stream. Parallel over images.
template <class T>
void survey_tensor(const ImageSet& set, std::span<const int> indices, std::span<const Dihedral> views,
                   std::span<const std::uint64_t> seeds, const SurveyJitter& jitter, int out_side, Tensor<T>& out) {
  HUBBLE_CHECK(views.size() == indices.size() && seeds.size() == indices.size(), "survey_tensor: ", indices.size(),
               " images, ", views.size(), " views and ", seeds.size(), " seeds");
  HUBBLE_CHECK(set.height == set.width && set.height >= out_side, "survey_tensor: needs square images of at least ",
               out_side, " pixels a side, not ", set.height, " x ", set.width);
  for (int i : indices)
    HUBBLE_CHECK(i >= 0 && i < set.size(), "survey_tensor: index ", i, " is outside the set of ", set.size(),
                 " images");
  out.resize(int(indices.size()), out_side, out_side, set.channels);
  const std::size_t per_image = std::size_t(out_side) * std::size_t(out_side) * std::size_t(set.channels);
  const auto n = std::ptrdiff_t(indices.size());
#pragma omp parallel
  {
    std::vector<float> view(per_image);
#pragma omp for schedule(dynamic)
    for (std::ptrdiff_t k = 0; k < n; ++k) {
      const auto kk = std::size_t(k);
      Rng rng(seeds[kk]);
      survey_view(set.image(indices[kk]), set.height, set.channels, out_side, jitter, views[kk], rng, view.data());
      T* dst = out.data() + kk * per_image;
      for (std::size_t i = 0; i < per_image; ++i) dst[i] = T(view[i]);
    }
  }
}

}  // namespace hubble::data
