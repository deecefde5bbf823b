#pragma once
// The robustness benchmark's fixed shifts: the holdout (or any Galaxy10 set) as another part of the
// survey would show it: seen through worse or better seeing, with more sky noise, calibrated
// brighter, fainter, redder or bluer, the galaxy nearer or farther, the cut-out JPEG-compressed.
//
//   for (const data::Shift& s : data::robustness_shifts()) {
//     data::ImageSet moved = data::shifted(full_size_images, s);   // e.g. 256 x 256, before the crop
//     score(data::centre_crop(moved, 128));
//   }
//
// The settings were written down before any model was scored on them and are not to be tuned to a
// model: a change makes a new benchmark (rename it, and say so in docs/data.md). Why these
// strengths: docs/data.md, "Survey variation and the robustness benchmark".
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/data/image_set.hpp"
#include "hubble/data/survey.hpp"

namespace hubble::data {

// One shift: what it changes relative to the identity (every field at its default changes nothing).
// Applied in the order light meets them (apply_shift): apparent size, seeing, calibration, noise,
// compression.
struct Shift {
  std::string name;                        // a column of the benchmark table, unique
  std::string models;                      // the survey effect it stands for
  double scale = 1;                        // apparent size about the image centre (> 1: bigger)
  double blur_sigma = 0;                   // Gaussian PSF sigma, pixels of the full-size image
  std::array<double, 3> gain = {1, 1, 1};  // per-band (R, G, B) calibration factor
  double brightness = 1;                   // overall flux factor
  double noise_sigma = 0;                  // Gaussian noise sigma, in pixel / 255 units
  int jpeg_quality = 0;                    // 1..100: JPEG re-encode at this quality; 0: none
  std::uint64_t noise_seed = 0;            // image i draws its noise from Rng(noise_seed + i)
};

// The settings as text, e.g. "blur sigma 1 px" (empty for the clean set).
inline std::string settings_text(const Shift& s) {
  std::ostringstream os;
  const auto sep = [&] { return os.tellp() > 0 ? ", " : ""; };
  if (s.scale != 1) os << sep() << "scale x" << s.scale << " about the centre";
  if (s.blur_sigma > 0) os << sep() << "Gaussian blur sigma " << s.blur_sigma << " px";
  if (s.gain != std::array<double, 3>{1, 1, 1})
    os << sep() << "band gains R x" << s.gain[0] << ", G x" << s.gain[1] << ", B x" << s.gain[2];
  if (s.brightness != 1) os << sep() << "brightness x" << s.brightness;
  if (s.noise_sigma > 0)
    os << sep() << "Gaussian noise sigma " << s.noise_sigma << " (" << s.noise_sigma * 255 << "/255, seed "
       << s.noise_seed << " + image index)";
  if (s.jpeg_quality > 0) os << sep() << "JPEG quality " << s.jpeg_quality;
  return os.str();
}

// The benchmark's fixed list, in table order. Fixed on 2026-12-01 before any model was scored.
inline const std::vector<Shift>& robustness_shifts() {
  static const std::vector<Shift> shifts = [] {
    std::vector<Shift> v;
    const auto add = [&](std::string name, std::string models, auto set) {
      Shift s;
      s.name = std::move(name);
      s.models = std::move(models);
      set(s);
      v.push_back(s);
    };
    add("clean", "the images as they are", [](Shift&) {});
    add("blur1", "worse seeing", [](Shift& s) { s.blur_sigma = 1.0; });
    add("blur2", "much worse seeing", [](Shift& s) { s.blur_sigma = 2.0; });
    add("noise", "a shallower exposure (sky noise)", [](Shift& s) {
      s.noise_sigma = 0.03;
      s.noise_seed = 20261201;
    });
    add("bright1.25", "brighter calibration or stretch", [](Shift& s) { s.brightness = 1.25; });
    add("bright0.75", "fainter calibration or stretch", [](Shift& s) { s.brightness = 0.75; });
    add("redder", "band calibration: red up, blue down", [](Shift& s) { s.gain = {1.15, 1.0, 0.85}; });
    add("bluer", "band calibration: blue up, red down", [](Shift& s) { s.gain = {0.85, 1.0, 1.15}; });
    add("scale0.8", "the galaxy farther (smaller)", [](Shift& s) { s.scale = 0.8; });
    add("scale1.2", "the galaxy nearer (larger)", [](Shift& s) { s.scale = 1.2; });
    add("jpeg40", "a lossy cut-out service", [](Shift& s) { s.jpeg_quality = 40; });
    return v;
  }();
  return shifts;
}

// The shift named `name`; an Error listing the names when there is none.
inline const Shift& robustness_shift(const std::string& name) {
  std::string known;
  for (const Shift& s : robustness_shifts()) {
    if (s.name == name) return s;
    known += " " + s.name;
  }
  ::hubble::detail::fail("no robustness shift named '", name, "' (known:", known, ")");
}

// Checks a shift's settings (each within the range its transform accepts).
inline void check_shift(const Shift& s) {
  HUBBLE_CHECK(std::isfinite(s.scale) && s.scale > 0, "shift '", s.name, "': scale must be positive, not ", s.scale);
  HUBBLE_CHECK(std::isfinite(s.blur_sigma) && s.blur_sigma >= 0 && s.blur_sigma <= 1000, "shift '", s.name,
               "': blur sigma must be in [0, 1000] px, not ", s.blur_sigma);
  for (double g : s.gain)
    HUBBLE_CHECK(std::isfinite(g) && g >= 0, "shift '", s.name, "': band gains must be >= 0, not ", g);
  HUBBLE_CHECK(std::isfinite(s.brightness) && s.brightness >= 0, "shift '", s.name, "': brightness must be >= 0, not ",
               s.brightness);
  HUBBLE_CHECK(std::isfinite(s.noise_sigma) && s.noise_sigma >= 0, "shift '", s.name,
               "': noise sigma must be >= 0, not ", s.noise_sigma);
  HUBBLE_CHECK(s.jpeg_quality >= 0 && s.jpeg_quality <= 100, "shift '", s.name,
               "': JPEG quality must be 1..100 (0: none), not ", s.jpeg_quality);
}

// One side x side x c uint8 image shifted by s into out (side x side x c floats in [0, 1]); `index`
// picks the image's noise stream, Rng(s.noise_seed + index). Order: resample (scale), blur, band
// gains, brightness, noise, clamp to [0, 1], JPEG.
inline void apply_shift(const std::uint8_t* src, int side, int c, const Shift& s, std::uint64_t index, float* out) {
  const std::size_t pixels = std::size_t(side) * std::size_t(side);
  survey::resample(src, side, side, c, s.scale, 0.0, 0.0, Dihedral::identity, side, out);
  survey::gaussian_blur(out, side, side, c, s.blur_sigma);
  if (s.gain != std::array<double, 3>{1, 1, 1}) {
    HUBBLE_CHECK(c == 3, "shift '", s.name, "': band gains need 3-channel images, not ", c);
    survey::band_gain(out, pixels, c, s.gain.data());
  }
  if (s.brightness != 1) survey::brightness_contrast(out, pixels, c, s.brightness, 1.0);
  if (s.noise_sigma > 0) {
    Rng rng(s.noise_seed + index);
    survey::add_gaussian_noise(out, pixels * std::size_t(c), s.noise_sigma, rng);
  }
  survey::clamp01(out, pixels * std::size_t(c));
  if (s.jpeg_quality > 0) survey::jpeg_recompress(out, side, side, c, s.jpeg_quality);
}

// Every image of `full` (square, any size: the whole cut-out, before the network's centre crop, as
// a real survey image would be shifted) shifted by s and quantised back to uint8 (round, clamp).
// The same input gives the same set on every run and any number of threads.
inline ImageSet shifted(const ImageSet& full, const Shift& s) {
  check_shift(s);
  HUBBLE_CHECK(full.height == full.width && full.height > 0 && full.channels > 0,
               "shifted: the images must be square, not ", full.height, " x ", full.width, " x ", full.channels);
  HUBBLE_CHECK(full.pixels.size() == full.labels.size() * full.image_bytes(),
               "shifted: the image set is inconsistent: ", full.pixels.size(), " pixel bytes for ", full.labels.size(),
               " images of ", full.image_bytes(), " bytes");
  ImageSet out;
  out.height = full.height;
  out.width = full.width;
  out.channels = full.channels;
  out.labels = full.labels;
  out.pixels.resize(full.pixels.size());
  const std::ptrdiff_t n = full.size();
  const std::size_t values = full.image_bytes();
  // Errors inside the parallel loop are caught per image and rethrown after it (an exception may
  // not leave an OpenMP region).
  std::string error;
#pragma omp parallel for schedule(dynamic, 4)
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    thread_local std::vector<float> buffer;
    try {
      buffer.resize(values);
      apply_shift(full.image(int(i)), full.height, full.channels, s, std::uint64_t(i), buffer.data());
      std::uint8_t* d = out.image(int(i));
      for (std::size_t k = 0; k < values; ++k) {
        const float v = buffer[k] * 255.0f;
        d[k] = std::uint8_t(v > 0.0f ? (v < 255.0f ? std::lround(v) : 255) : 0);
      }
    } catch (const std::exception& e) {
#pragma omp critical(hubble_shifted_error)
      if (error.empty()) error = e.what();
    }
  }
  HUBBLE_CHECK(error.empty(), "shifted (", s.name, "): ", error);
  return out;
}

}  // namespace hubble::data
