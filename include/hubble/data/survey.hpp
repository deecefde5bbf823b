#pragma once
// Image transforms that model how the same galaxy varies across a survey: apparent size and
// position (resample), seeing (gaussian_blur), sky and read noise (add_gaussian_noise), photometric
// calibration (brightness_contrast, band_gain) and lossy compression of cut-outs (jpeg_recompress).
// They serve both as training augmentation and as the fixed shifts of the robustness benchmark
// (data/robustness.hpp; docs/data.md, "Survey variation and the robustness benchmark").
//
// Float images are HWC rows of values nominally in [0, 1] (pixel / 255), as the networks take them.
// Each function is cheap enough to run per training image (128 x 128 x 3) on the fly; scratch
// buffers are thread_local, so a call allocates only the first time a thread needs a larger one.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/data/augment.hpp"
#include "hubble/io/picture.hpp"  // stb_image (decoder), one private static copy per program
#include "hubble/io/png.hpp"      // stb_image_write (encoder), likewise

namespace hubble::data::survey {

// Bilinear resampling of the uint8 image src (src_h x src_w x c) into out (side x side x c floats,
// pixel / 255). Pixel (i, j) has its centre at (i + 0.5, j + 0.5). Output centre p reads the
// source at
//     q = src_centre + R_t (p - out_centre) / scale + (shift_y, shift_x)
// where R_t is the 2 x 2 signed permutation matrix of the dihedral transform t in centred
// coordinates (the coefficients of data::detail::source_map: (yy, yx; xy, xx)), so scale > 1 magnifies,
// shifts are in source pixels, and with scale 1, shift 0 and side == src side every q lands on a
// source pixel centre and the result is exactly transform_image(src) / 255. The value at q is the
// bilinear mix of the 4 nearest source pixels; a neighbour outside the source is its nearest edge
// pixel (clamp). Interpolation runs in 0..255 units and divides by 255 last, in float, so whole
// values give exactly float(v) / 255 as to_tensor does.
inline void resample(const std::uint8_t* src, int src_h, int src_w, int c, double scale, double shift_y, double shift_x,
                     Dihedral t, int side, float* out) {
  HUBBLE_CHECK(src != nullptr && out != nullptr, "survey::resample: null image pointer");
  HUBBLE_CHECK(src_h > 0 && src_w > 0 && c > 0, "survey::resample: bad source size ", src_h, " x ", src_w, " x ", c);
  HUBBLE_CHECK(side > 0, "survey::resample: bad output side ", side);
  HUBBLE_CHECK(std::isfinite(scale) && scale > 0, "survey::resample: scale must be a positive number, not ", scale);
  HUBBLE_CHECK(std::isfinite(shift_y) && std::isfinite(shift_x), "survey::resample: shifts must be finite, not (",
               shift_y, ", ", shift_x, ")");
  HUBBLE_CHECK(int(t) >= 0 && int(t) < 8, "survey::resample: invalid Dihedral value ", int(t));
  // source_map(t, side) holds the rotation part independent of side: take the signs only.
  const ::hubble::data::detail::SourceMap m = ::hubble::data::detail::source_map(t, 1);
  const double inv = 1.0 / scale;
  // Continuous source index (centre of pixel i is i + 0.5, so index = position - 0.5).
  const double cy = 0.5 * src_h + shift_y - 0.5, cx = 0.5 * src_w + shift_x - 0.5;
  const double half = 0.5 * side;
  const std::size_t row = std::size_t(src_w) * std::size_t(c);
  for (int y = 0; y < side; ++y) {
    const double dy = (y + 0.5 - half) * inv;
    for (int x = 0; x < side; ++x) {
      const double dx = (x + 0.5 - half) * inv;
      const double fy = cy + m.yy * dy + m.yx * dx, fx = cx + m.xy * dy + m.xx * dx;
      const double y0f = std::floor(fy), x0f = std::floor(fx);
      const float wy = float(fy - y0f), wx = float(fx - x0f);
      // Clamp in double before converting: far-away samples (huge shifts) stay defined.
      const int y0 = int(std::clamp(y0f, 0.0, double(src_h - 1))),
                y1 = int(std::clamp(y0f + 1, 0.0, double(src_h - 1)));
      const int x0 = int(std::clamp(x0f, 0.0, double(src_w - 1))),
                x1 = int(std::clamp(x0f + 1, 0.0, double(src_w - 1)));
      const std::uint8_t* p00 = src + std::size_t(y0) * row + std::size_t(x0) * c;
      const std::uint8_t* p01 = src + std::size_t(y0) * row + std::size_t(x1) * c;
      const std::uint8_t* p10 = src + std::size_t(y1) * row + std::size_t(x0) * c;
      const std::uint8_t* p11 = src + std::size_t(y1) * row + std::size_t(x1) * c;
      float* d = out + (std::size_t(y) * side + x) * std::size_t(c);
      for (int k = 0; k < c; ++k) {
        const float top = float(p00[k]) + wx * (float(p01[k]) - float(p00[k]));
        const float bottom = float(p10[k]) + wx * (float(p11[k]) - float(p10[k]));
        d[k] = (top + wy * (bottom - top)) / 255.0f;
      }
    }
  }
}

namespace survey_detail {
// Index i folded into 0..n-1 by mirroring about the edges with the edge pixel repeated
// (-1 -> 0, -2 -> 1, n -> n - 1): period 2n, so any radius works on any image.
inline int mirror(int i, int n) {
  const int period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}
inline std::vector<float>& scratch(int which) {
  thread_local std::vector<float> buffers[2];
  return buffers[which];
}
}  // namespace survey_detail

// Gaussian blur (seeing): img <- img * g, g(d) = exp(-d^2 / (2 sigma^2)) / sum, separable (rows,
// then columns), taps -r..r with r = ceil(3 sigma), edges mirrored with the edge pixel repeated
// (survey_detail::mirror), so a flat background stays flat and an image whose border is constant keeps
// its mean. sigma <= 0 leaves img unchanged.
inline void gaussian_blur(float* img, int h, int w, int c, double sigma) {
  HUBBLE_CHECK(h > 0 && w > 0 && c > 0, "survey::gaussian_blur: bad image size ", h, " x ", w, " x ", c);
  HUBBLE_CHECK(img != nullptr, "survey::gaussian_blur: null image pointer");
  HUBBLE_CHECK(std::isfinite(sigma), "survey::gaussian_blur: sigma must be finite, not ", sigma);
  if (sigma <= 0) return;
  HUBBLE_CHECK(sigma <= 1000, "survey::gaussian_blur: sigma ", sigma, " px is beyond any seeing (at most 1000)");
  const int r = int(std::ceil(3 * sigma));
  float kernel_storage[6002];          // 2 * 3000 + 1 taps at most
  float* kernel = kernel_storage + r;  // kernel[-r .. r]
  double total = 0;
  for (int d = -r; d <= r; ++d) total += std::exp(-double(d) * d / (2 * sigma * sigma));
  for (int d = -r; d <= r; ++d) kernel[d] = float(std::exp(-double(d) * d / (2 * sigma * sigma)) / total);

  const std::size_t row = std::size_t(w) * c;
  std::vector<float>& padded = survey_detail::scratch(0);  // one row with r mirrored pixels each side
  std::vector<float>& tmp = survey_detail::scratch(1);     // the row-blurred image
  padded.resize((std::size_t(w) + 2 * std::size_t(r)) * c);
  tmp.resize(std::size_t(h) * row);
  // Rows: tmp[y][x] = sum_d k[d] img[y][mirror(x + d)].
  for (int y = 0; y < h; ++y) {
    const float* s = img + std::size_t(y) * row;
    for (int x = -r; x < w + r; ++x)
      std::copy_n(s + std::size_t(survey_detail::mirror(x, w)) * c, c, padded.data() + std::size_t(x + r) * c);
    float* d = tmp.data() + std::size_t(y) * row;
    std::fill_n(d, row, 0.0f);
    for (int k = -r; k <= r; ++k) {
      const float kk = kernel[k];
      const float* p = padded.data() + std::size_t(k + r) * c;
      for (std::size_t i = 0; i < row; ++i) d[i] += kk * p[i];
    }
  }
  // Columns: img[y] = sum_d k[d] tmp[mirror(y + d)], a whole row at a time (vectorises).
  for (int y = 0; y < h; ++y) {
    float* d = img + std::size_t(y) * row;
    std::fill_n(d, row, 0.0f);
    for (int k = -r; k <= r; ++k) {
      const float kk = kernel[k];
      const float* p = tmp.data() + std::size_t(survey_detail::mirror(y + k, h)) * row;
      for (std::size_t i = 0; i < row; ++i) d[i] += kk * p[i];
    }
  }
}

// Sky and read noise: v <- v + sigma * z, z ~ N(0, 1) drawn from rng, one per value in order.
// sigma == 0 draws nothing.
inline void add_gaussian_noise(float* img, std::size_t n, double sigma, Rng& rng) {
  HUBBLE_CHECK(std::isfinite(sigma) && sigma >= 0, "survey::add_gaussian_noise: sigma must be >= 0, not ", sigma);
  HUBBLE_CHECK(img != nullptr || n == 0, "survey::add_gaussian_noise: null image pointer");
  if (sigma == 0) return;
  for (std::size_t i = 0; i < n; ++i) img[i] += float(sigma * rng.normal());
}

// Exposure and stretch: per channel k, v <- (m_k + contrast (v - m_k)) brightness, m_k the mean of
// channel k over the image. contrast 1 and brightness 1 leave the image as it is.
inline void brightness_contrast(float* img, std::size_t pixels, int c, double brightness, double contrast) {
  HUBBLE_CHECK(c > 0, "survey::brightness_contrast: bad channel count ", c);
  HUBBLE_CHECK(img != nullptr || pixels == 0, "survey::brightness_contrast: null image pointer");
  HUBBLE_CHECK(std::isfinite(brightness) && brightness >= 0,
               "survey::brightness_contrast: brightness must be >= 0, not ", brightness);
  HUBBLE_CHECK(std::isfinite(contrast) && contrast >= 0, "survey::brightness_contrast: contrast must be >= 0, not ",
               contrast);
  if (pixels == 0) return;
  constexpr int max_channels = 64;
  HUBBLE_CHECK(c <= max_channels, "survey::brightness_contrast: at most ", max_channels, " channels, not ", c);
  double mean[max_channels] = {};
  if (contrast != 1) {
    for (std::size_t p = 0; p < pixels; ++p)
      for (int k = 0; k < c; ++k) mean[k] += img[p * std::size_t(c) + std::size_t(k)];
    for (int k = 0; k < c; ++k) mean[k] /= double(pixels);
  }
  // v -> a_k + b v with b = contrast * brightness, a_k = m_k (1 - contrast) brightness.
  float a[max_channels];
  for (int k = 0; k < c; ++k) a[k] = float(mean[k] * (1 - contrast) * brightness);
  const float b = float(contrast * brightness);
  for (std::size_t p = 0; p < pixels; ++p)
    for (int k = 0; k < c; ++k)
      img[p * std::size_t(c) + std::size_t(k)] = a[k] + b * img[p * std::size_t(c) + std::size_t(k)];
}

// Band-to-band calibration (colour): channel k of every pixel multiplied by gain[k].
inline void band_gain(float* img, std::size_t pixels, int c, const double* gain) {
  HUBBLE_CHECK(c > 0, "survey::band_gain: bad channel count ", c);
  HUBBLE_CHECK(gain != nullptr, "survey::band_gain: null gain pointer");
  HUBBLE_CHECK(img != nullptr || pixels == 0, "survey::band_gain: null image pointer");
  for (int k = 0; k < c; ++k)
    HUBBLE_CHECK(std::isfinite(gain[k]) && gain[k] >= 0, "survey::band_gain: gain of channel ", k,
                 " must be >= 0, not ", gain[k]);
  if (c == 3) {
    const float g0 = float(gain[0]), g1 = float(gain[1]), g2 = float(gain[2]);
    for (std::size_t p = 0; p < pixels; ++p) {
      img[3 * p] *= g0;
      img[3 * p + 1] *= g1;
      img[3 * p + 2] *= g2;
    }
    return;
  }
  for (std::size_t p = 0; p < pixels; ++p)
    for (int k = 0; k < c; ++k) img[p * std::size_t(c) + std::size_t(k)] *= float(gain[k]);
}

// v <- min(max(v, 0), 1); NaN becomes 0.
inline void clamp01(float* img, std::size_t n) {
  HUBBLE_CHECK(img != nullptr || n == 0, "survey::clamp01: null image pointer");
  for (std::size_t i = 0; i < n; ++i) {
    const float v = img[i];
    img[i] = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;  // NaN fails v > 0
  }
}

// A lossy cut-out service: v -> round(clamp(v) 255) as uint8, JPEG-encoded in memory at `quality`
// (1..100, stb_image_write: baseline, 4:2:0 chroma subsampling at quality 90 and below), decoded again
// (stb_image), back to pixel / 255. c must be 1 (grey) or 3 (RGB), what JPEG stores.
inline void jpeg_recompress(float* img, int h, int w, int c, int quality) {
  HUBBLE_CHECK(img != nullptr, "survey::jpeg_recompress: null image pointer");
  HUBBLE_CHECK(h > 0 && w > 0 && (c == 1 || c == 3), "survey::jpeg_recompress: JPEG holds grey or RGB images, not ", h,
               " x ", w, " x ", c);
  HUBBLE_CHECK(h <= 65535 && w <= 65535, "survey::jpeg_recompress: ", h, " x ", w,
               " is larger than JPEG's 65535 pixels a side");
  HUBBLE_CHECK(quality >= 1 && quality <= 100, "survey::jpeg_recompress: quality must be 1..100, not ", quality);
  const std::size_t n = std::size_t(h) * w * c;
  thread_local std::vector<std::uint8_t> bytes, encoded;
  bytes.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float v = img[i] * 255.0f;
    bytes[i] = std::uint8_t(v > 0.0f ? (v < 255.0f ? std::lround(v) : 255) : 0);
  }
  encoded.clear();
  auto sink = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(context);
    const auto* p = static_cast<const std::uint8_t*>(data);
    out->insert(out->end(), p, p + size);
  };
  const int ok = stbi_write_jpg_to_func(sink, &encoded, w, h, c, bytes.data(), quality);
  HUBBLE_CHECK(ok != 0 && !encoded.empty(), "survey::jpeg_recompress: stb_image_write could not encode a ", h, " x ", w,
               " x ", c, " image at quality ", quality);
  int dw = 0, dh = 0, dc = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> decoded(
      stbi_load_from_memory(encoded.data(), int(encoded.size()), &dw, &dh, &dc, c), stbi_image_free);
  HUBBLE_CHECK(decoded != nullptr, "survey::jpeg_recompress: stb_image could not decode its own JPEG (",
               stbi_failure_reason(), ")");
  HUBBLE_CHECK(dw == w && dh == h, "survey::jpeg_recompress: the JPEG decoded to ", dw, " x ", dh, ", not ", w, " x ",
               h);
  for (std::size_t i = 0; i < n; ++i) img[i] = float(decoded.get()[i]) / 255.0f;
}

}  // namespace hubble::data::survey
