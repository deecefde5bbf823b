#pragma once
// A synthetic Galaxy10: procedural galaxies of all 10 classes with the look of the DECaLS
// cut-outs (dark sky at ~33 with noise, a galaxy in the centre, reddish bulges and bluish disks,
// a seeing blur, field stars and faint background galaxies), for tests, benchmarks and for
// checking that a pipeline learns before it meets real data.
//
// Model. Lengths are in units of size_unit = 2.5 px of a 256-px image (other sides scale them),
// times a per-image size factor; surface brightness is in flux units (sky noise ~0.1-0.2).
//   every image  size x0.75..1.35, brightness x0.7..1.4, random orientation, centre jitter
//                (sigma 1 px), Gaussian PSF (sigma 1.1..1.8 px), sky 31.5..35.5 (+-2 per channel),
//                noise correlated by the PSF plus white noise, 3..14 field stars, 1..8 faint
//                background galaxies, and in 12% of images a small companion 35..70 px away
//   0 Disturbed            lopsided low-concentration body (Sersic n 0.7..1.5, re 5..12), a second
//                          offset blue lobe, an off-centre nucleus, 1..3 broad one-sided plumes and
//                          2..10 bluish star-forming clumps
//   1 Merging              two nuclei (Sersic n 2..4, re 2.5..5) 5..22 apart, flux ratio 0.25..1, each
//                          in an exponential envelope, tidal tails curving away from both
//                          (antennae; the second in 70%), a bridge between them in 40%
//   2 Round Smooth         Sersic n 2.5..5, re 4..11, axis ratio 0.78..1, red
//   3 In-between Round Sm. Sersic n 1.5..4, re 2.5..7, axis ratio 0.42..0.78, red to white
//   4 Cigar Shaped Smooth  Sersic n 0.8..2.5, re 3..8, axis ratio 0.18..0.42, red to white
//   5 Barred Spiral        bulge + flat-topped bar (3..5 bulge radii long, axis ratio 0.2..0.35) +
//                          2 arms leaving the bar ends (pitch 12..28 deg), an inner ring in 30%
//   6 Unbarred Tight Spiral bulge + disk + 2..4 arms of pitch 7..15 deg, low arm contrast
//   7 Unbarred Loose Spiral smaller bulge + disk + 2..3 strong open arms, pitch 20..38 deg, more clumps
//   8 Edge-on without Bulge exponential disk seen edge-on (scale length 3..6.5, height/length
//                          0.12..0.26), blue, a dust lane in 25%
//   9 Edge-on with Bulge   the same disk (height/length 0.1..0.22) + a red central bulge (re 0.4..0.8
//                          disk lengths, axis ratio 0.5..0.85); a dust lane in 60%
// Spirals (5-7): exponential disk (scale length 7..15) inclined to axis ratio 0.4..1, logarithmic
// arms (random winding sense) with star-forming clumps along them, a Sersic bulge (n 1.5..3.5).
// Bulges and ellipticals are red (R:G:B 1 : 0.8 : 0.58), disks bluish, arms and clumps blue.
// Fluxes go through an asinh stretch (as in the Legacy Survey colour images) so cores saturate
// and faint disks stay visible. Every image has its own Rng stream derived from (seed, index), so
// the set is identical for any number of threads, and the same seed gives identical bytes.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/data/image_set.hpp"

namespace hubble::data {

struct SyntheticOptions {
  int count = 1500;        // images; labels cycle 0, 1, ..., 9, 0, ... so the classes are balanced
  int side = 256;          // square images of side x side x 3
  std::uint64_t seed = 1;
};

namespace synth {

inline constexpr double pi = 3.14159265358979323846;

struct Rgb {
  float r = 0, g = 0, b = 0;
};
inline Rgb operator*(Rgb c, double k) { return {float(c.r * k), float(c.g * k), float(c.b * k)}; }
inline Rgb operator+(Rgb a, Rgb b) { return {a.r + b.r, a.g + b.g, a.b + b.b}; }
inline Rgb mix(Rgb a, Rgb b, double t) { return a * (1 - t) + b * t; }

// Linear flux ratios R:G:B. Old stars (bulges, ellipticals) are red, young stars (disks, arms,
// star-forming clumps) blue.
inline constexpr Rgb bulge_colour{1.00f, 0.80f, 0.58f};
inline constexpr Rgb disk_colour{0.86f, 0.90f, 1.00f};
inline constexpr Rgb young_colour{0.66f, 0.82f, 1.15f};

// A float RGB image of linear fluxes (interleaved), painted component by component.
class Canvas {
 public:
  explicit Canvas(int side) : side_(side), px_(std::size_t(side) * side * 3, 0.f) {}
  int side() const { return side_; }
  float* data() { return px_.data(); }
  const float* data() const { return px_.data(); }

  // Adds f(dx, dy) (an Rgb) at every pixel centre within `radius` of (cx, cy), where (dx, dy) is
  // the pixel centre relative to (cx, cy).
  template <class F>
  void paint(double cx, double cy, double radius, F&& f) {
    const int x0 = std::max(0, int(std::floor(cx - radius))), x1 = std::min(side_ - 1, int(std::ceil(cx + radius)));
    const int y0 = std::max(0, int(std::floor(cy - radius))), y1 = std::min(side_ - 1, int(std::ceil(cy + radius)));
    for (int y = y0; y <= y1; ++y) {
      const double dy = y + 0.5 - cy;
      float* p = px_.data() + (std::size_t(y) * side_ + x0) * 3;
      for (int x = x0; x <= x1; ++x, p += 3) {
        const Rgb v = f(x + 0.5 - cx, dy);
        p[0] += v.r; p[1] += v.g; p[2] += v.b;
      }
    }
  }
  // Multiplies every pixel within `radius` of (cx, cy) by t(dx, dy) (dust absorption).
  template <class F>
  void attenuate(double cx, double cy, double radius, F&& t) {
    const int x0 = std::max(0, int(std::floor(cx - radius))), x1 = std::min(side_ - 1, int(std::ceil(cx + radius)));
    const int y0 = std::max(0, int(std::floor(cy - radius))), y1 = std::min(side_ - 1, int(std::ceil(cy + radius)));
    for (int y = y0; y <= y1; ++y) {
      float* p = px_.data() + (std::size_t(y) * side_ + x0) * 3;
      for (int x = x0; x <= x1; ++x, p += 3) {
        const Rgb k = t(x + 0.5 - cx, y + 0.5 - cy);
        p[0] *= k.r; p[1] *= k.g; p[2] *= k.b;
      }
    }
  }

  // Separable Gaussian blur (the seeing), borders clamped.
  void blur(double sigma) {
    const int radius = std::max(1, int(std::ceil(3 * sigma)));
    std::vector<float> kernel(std::size_t(2 * radius + 1));
    double sum = 0;
    for (int k = -radius; k <= radius; ++k) sum += kernel[std::size_t(k + radius)] = float(std::exp(-0.5 * k * k / (sigma * sigma)));
    for (float& k : kernel) k = float(k / sum);
    std::vector<float> tmp(px_.size());
    const int n = side_;
    for (int y = 0; y < n; ++y) {  // rows: the interior as contiguous runs (vectorised), the borders clamped
      const float* row = px_.data() + std::size_t(y) * n * 3;
      float* out = tmp.data() + std::size_t(y) * n * 3;
      std::fill(out, out + std::size_t(n) * 3, 0.f);
      const int lo = std::min(radius, n), hi = std::max(lo, n - radius);
      for (int k = -radius; k <= radius; ++k) {
        const float w = kernel[std::size_t(k + radius)];
        const float* in = row + 3 * k;
#pragma omp simd
        for (int i = 3 * lo; i < 3 * hi; ++i) out[i] += w * in[i];
      }
      for (int x = 0; x < n; ++x) {
        if (x == lo) x = hi;
        if (x >= n) break;
        float acc[3] = {0, 0, 0};
        for (int k = -radius; k <= radius; ++k) {
          const float* p = row + std::clamp(x + k, 0, n - 1) * 3;
          const float w = kernel[std::size_t(k + radius)];
          acc[0] += w * p[0]; acc[1] += w * p[1]; acc[2] += w * p[2];
        }
        out[x * 3] = acc[0]; out[x * 3 + 1] = acc[1]; out[x * 3 + 2] = acc[2];
      }
    }
    std::fill(px_.begin(), px_.end(), 0.f);
    for (int y = 0; y < n; ++y)  // columns, a whole row at a time
      for (int k = -radius; k <= radius; ++k) {
        const float* p = tmp.data() + std::size_t(std::clamp(y + k, 0, n - 1)) * n * 3;
        float* q = px_.data() + std::size_t(y) * n * 3;
        const float w = kernel[std::size_t(k + radius)];
#pragma omp simd
        for (int i = 0; i < n * 3; ++i) q[i] += w * p[i];
      }
  }

 private:
  int side_;
  std::vector<float> px_;
};

// Draws from the image's own stream.
struct Draw {
  Rng& rng;
  double uniform(double lo, double hi) { return rng.uniform(lo, hi); }
  double log_uniform(double lo, double hi) { return std::exp(rng.uniform(std::log(lo), std::log(hi))); }
  double angle() { return rng.uniform(0, 2 * pi); }
  bool chance(double p) { return rng.uniform() < p; }
  int integer(int lo, int hi) { return lo + int(rng.below(std::uint64_t(hi - lo + 1))); }  // [lo, hi]
  double normal() { return rng.normal(); }
  // Two cheap, bounded normal deviates for per-pixel noise from one 64-bit draw: each is the sum
  // of four 8-bit uniforms (Irwin-Hall), standardised (mean 510, sd sqrt(4 (256^2 - 1) / 12)).
  static void fast_normals(std::uint64_t bits, float& a, float& b) {
    const auto sum4 = [](std::uint32_t v) { return int(v & 255) + int((v >> 8) & 255) + int((v >> 16) & 255) + int(v >> 24); };
    constexpr float inv_sd = 1 / 147.80166f;
    a = float(sum4(std::uint32_t(bits)) - 510) * inv_sd;
    b = float(sum4(std::uint32_t(bits >> 32)) - 510) * inv_sd;
  }
  Rgb jitter(Rgb c, double amount) {
    return {float(c.r * std::exp(amount * normal())), float(c.g * std::exp(amount * normal())),
            float(c.b * std::exp(amount * normal()))};
  }
};

inline double sersic_b(double n) { return 2 * n - 1.0 / 3 + 4 / (405 * n) + 46 / (25515 * n * n); }

// Faintest flux worth painting; the sky noise is ~0.15 in these units.
inline constexpr double faint = 0.01;

// An ellipse or inclined disk: position angle pa of the major axis, axis ratio q.
// (u, v) are coordinates along the major and minor axes; (u, v / q) are coordinates in the
// galaxy's own plane, where its profile is round.
struct Frame {
  double cx, cy, cos_pa, sin_pa, q;
  Frame(double cx_, double cy_, double pa, double q_) : cx(cx_), cy(cy_), cos_pa(std::cos(pa)), sin_pa(std::sin(pa)), q(q_) {}
  void plane(double dx, double dy, double& x, double& y) const {
    x = dx * cos_pa + dy * sin_pa;
    y = (-dx * sin_pa + dy * cos_pa) / q;
  }
  // Plane coordinates back to the offset from the image position of the centre.
  void sky(double x, double y, double& dx, double& dy) const {
    const double v = y * q;
    dx = x * cos_pa - v * sin_pa;
    dy = x * sin_pa + v * cos_pa;
  }
};

// Sersic profile with surface brightness ie at the effective radius re.
inline void add_sersic(Canvas& cv, const Frame& f, double re, double n, double ie, Rgb colour) {
  if (ie <= 0) return;
  const double b = sersic_b(n), inv_n = 1 / n;
  const double extent = std::min(re * std::pow(1 + std::max(0.0, std::log(ie / faint)) / b, n), 0.8 * cv.side());
  // Single precision is plenty for pixels and twice as fast as double here.
  const float bf = float(b), inv_nf = float(inv_n), inv_re = float(1 / re), ief = float(ie);
  const float r_min = 0.3f;  // keeps the cusp of high-n profiles finite in the centre pixel
  cv.paint(f.cx, f.cy, extent, [&](double dx, double dy) {
    double x, y;
    f.plane(dx, dy, x, y);
    const double r2 = x * x + y * y;
    if (r2 > extent * extent) return Rgb{};
    const float r = std::max(std::sqrt(float(r2)), r_min);
    return colour * (ief * std::exp(-bf * (std::exp(inv_nf * std::log(r * inv_re)) - 1)));
  });
}

// A compact Gaussian blob of total flux `flux` (clumps, stars before the seeing).
inline void add_blob(Canvas& cv, double cx, double cy, double sigma, double flux, Rgb colour) {
  if (flux <= 0) return;
  const double peak = flux / (2 * pi * sigma * sigma), inv = 0.5 / (sigma * sigma);
  cv.paint(cx, cy, 3.5 * sigma + 1, [&](double dx, double dy) {
    return colour * (peak * std::exp(-(dx * dx + dy * dy) * inv));
  });
}

// A tidal tail or plume: Gaussian blobs along a circular arc from (x0, y0) in direction `heading`,
// turning by `curvature` radians per pixel, widening and fading along its length.
inline void add_stroke(Canvas& cv, double x0, double y0, double heading, double curvature, double length, double width,
                       double surface, Rgb colour, Draw& draw, double lumpiness = 0.3) {
  const double step = std::max(0.5, 0.4 * width);
  double x = x0, y = y0, h = heading;
  for (double t = 0; t < length; t += step) {
    const double frac = t / length;
    const double w = width * (0.7 + 0.8 * frac);
    const double s = surface * (1 - 0.75 * frac) * std::exp(lumpiness * draw.normal());
    add_blob(cv, x, y, w, s * 2 * pi * w * w * step / (2.5 * w), colour);
    x += step * std::cos(h);
    y += step * std::sin(h);
    h += curvature * step;
  }
}

// An inclined exponential disk with logarithmic spiral arms (and clumps along them).
struct Arms {
  int count = 2;
  double pitch = 0.3;       // radians
  double phase = 0;         // rotates the pattern
  int sense = 1;            // winding direction
  double r_start = 5;       // arms start here (the bar end for barred spirals)
  double strength = 1;      // arm surface brightness relative to the disk
  double sharpness = 4;     // higher -> narrower arms
  int clumps = 10;
};
inline void add_spiral_disk(Canvas& cv, const Frame& f, double h, double i0, const Arms& a, Rgb disk, Rgb arm_colour,
                            Draw& draw) {
  const double extent = std::min(h * std::log(std::max(i0 * (1 + a.strength), 2 * faint) / faint), 0.8 * cv.side());
  const float inv_tan = float(1 / std::tan(a.pitch)), i0f = float(i0), inv_h = float(1 / h), r_start = float(a.r_start),
              inv_r_start = float(1 / a.r_start), phase = float(a.phase), sharpness = float(a.sharpness),
              arm_i = float(a.strength * i0), inv_arm_h = float(1 / (1.15 * h));
  cv.paint(f.cx, f.cy, extent / std::max(f.q, 0.3) + 1, [&](double dx, double dy) {
    double x, y;
    f.plane(dx, dy, x, y);
    const float r = std::sqrt(float(x * x + y * y));
    if (r > extent) return Rgb{};
    Rgb v = disk * (i0f * std::exp(-r * inv_h));
    if (r > 0.5f * r_start) {
      const float theta = float(a.sense) * std::atan2(float(y), float(x));
      const float psi = float(a.count) * (theta - std::log(r * inv_r_start) * inv_tan) + phase;
      const float ridge = std::exp(sharpness * std::log(std::max(0.5f + 0.5f * std::cos(psi), 1e-6f)));
      const float fade_in = std::clamp((r - 0.6f * r_start) / (0.6f * r_start), 0.f, 1.f);
      v = v + arm_colour * (arm_i * std::exp(-r * inv_arm_h) * ridge * fade_in * fade_in);
    }
    return v;
  });
  // Star-forming knots on the arm ridges.
  for (int k = 0; k < a.clumps; ++k) {
    const int arm = draw.integer(0, a.count - 1);
    const double r = a.r_start * draw.uniform(0.9, 1.0) + draw.uniform(0, 2.6 * h);
    const double theta = a.sense * (std::log(r / a.r_start) * inv_tan + (2 * pi * arm - a.phase) / a.count) +
                         0.08 * draw.normal();
    double dx, dy;
    f.sky(r * std::cos(theta), r * std::sin(theta), dx, dy);
    add_blob(cv, f.cx + dx, f.cy + dy, draw.uniform(0.7, 1.6), a.strength * i0 * std::exp(-r / h) * draw.uniform(4, 14),
             arm_colour);
  }
}

// A bar (flat-topped, sharp-ended ellipse) in the plane of disk f, at angle `angle` there.
inline void add_bar(Canvas& cv, const Frame& f, double angle, double half_length, double ratio, double i0, Rgb colour) {
  const double c = std::cos(angle), s = std::sin(angle);
  cv.paint(f.cx, f.cy, 1.6 * half_length / std::max(f.q, 0.3) + 1, [&](double dx, double dy) {
    double x, y;
    f.plane(dx, dy, x, y);
    const double bu = (x * c + y * s) / half_length, bv = (-x * s + y * c) / (ratio * half_length);
    const double rho2 = bu * bu + bv * bv;
    return rho2 > 6 ? Rgb{} : colour * (i0 * std::exp(-rho2 * std::sqrt(rho2)));
  });
}

// An edge-on disk: exponential along the major axis (softened in the middle), sech^2 across.
inline void add_edge_on_disk(Canvas& cv, double cx, double cy, double pa, double h, double z0, double i0, Rgb colour) {
  const double c = std::cos(pa), s = std::sin(pa), soft = 0.6 * h;
  const double extent = std::min(h * std::log(std::max(i0, 2 * faint) / faint) + soft, 0.8 * cv.side());
  cv.paint(cx, cy, extent, [&](double dx, double dy) {
    const double u = dx * c + dy * s, v = (-dx * s + dy * c) / z0;
    if (std::abs(v) > 8 || std::abs(u) > extent) return Rgb{};
    const double sech = 2 / (std::exp(v) + std::exp(-v));
    return colour * (i0 * std::exp(-(std::sqrt(u * u + soft * soft) - soft) / h) * sech * sech);
  });
}

// Stars (point sources before the seeing) and small faint galaxies, away from the centre.
inline void add_field(Canvas& cv, Draw& draw, double scale) {
  const double side = cv.side(), centre = side / 2;
  auto position = [&](double& x, double& y) {
    do {
      x = draw.uniform(0, side);
      y = draw.uniform(0, side);
    } while (std::hypot(x - centre, y - centre) < 20 * scale);
  };
  const Rgb red{1.0f, 0.55f, 0.35f}, blue{0.72f, 0.86f, 1.1f};
  const int stars = int(std::lround(draw.integer(3, 14) * scale * scale));
  for (int k = 0; k < stars; ++k) {
    double x, y;
    position(x, y);
    const double t = draw.uniform(0, 1);
    add_blob(cv, x, y, 0.5 * scale, draw.log_uniform(4, 500) * scale * scale, mix(red, blue, t * t));
  }
  const int galaxies = int(std::lround(draw.integer(1, 8) * scale * scale));
  for (int k = 0; k < galaxies; ++k) {
    double x, y;
    position(x, y);
    const Frame f(x, y, draw.angle(), draw.uniform(0.3, 1));
    add_sersic(cv, f, draw.uniform(0.8, 2.5) * scale, draw.uniform(0.8, 3), draw.log_uniform(0.15, 1.5),
               mix(bulge_colour, red, draw.uniform(0, 1)));
  }
  if (draw.chance(0.12)) {  // a small companion: not every pair of galaxies is a merger
    const double r = draw.uniform(35, 70) * scale, a = draw.angle();
    const Frame f(centre + r * std::cos(a), centre + r * std::sin(a), draw.angle(), draw.uniform(0.4, 1));
    add_sersic(cv, f, draw.uniform(1.5, 4) * scale, draw.uniform(1, 4), draw.log_uniform(0.3, 2), bulge_colour);
  }
}

// The model's lengths and surface brightnesses are multiples of these.
inline constexpr double size_unit = 2.5, flux_unit = 2.5;

// The galaxy of class `label`, centred on (cx, cy); `scale` converts the model's 256-px lengths,
// `zoom` and `bright` are this image's size and brightness factors.
inline void add_galaxy(Canvas& cv, int label, double cx, double cy, double scale, Draw& draw) {
  const double zoom = draw.log_uniform(0.75, 1.35) * scale * size_unit, bright = draw.log_uniform(0.7, 1.4) * flux_unit;
  const double pa = draw.angle();
  const Rgb bulge = draw.jitter(bulge_colour, 0.05), disk = draw.jitter(disk_colour, 0.05),
            young = draw.jitter(young_colour, 0.05);
  switch (label) {
    case 0: {  // Disturbed: asymmetric, clumpy, no single regular shape
      const double re = draw.uniform(5, 12) * zoom, q = draw.uniform(0.45, 1);
      const double lop = draw.angle(), shift = draw.uniform(0.3, 0.8) * re;
      add_sersic(cv, Frame(cx, cy, pa, q), re, draw.uniform(0.7, 1.5), draw.uniform(0.3, 0.9) * bright,
                 mix(disk, bulge, draw.uniform(0, 0.8)));
      add_sersic(cv, Frame(cx + shift * std::cos(lop), cy + shift * std::sin(lop), pa + draw.uniform(-1, 1), draw.uniform(0.4, 1)),
                 re * draw.uniform(0.5, 0.9), draw.uniform(0.6, 1.2), draw.uniform(0.25, 0.7) * bright,
                 mix(young, disk, draw.uniform(0, 1)));
      add_sersic(cv, Frame(cx - 0.3 * shift * std::cos(lop), cy - 0.3 * shift * std::sin(lop), draw.angle(), draw.uniform(0.6, 1)),
                 draw.uniform(1.0, 2.0) * zoom, draw.uniform(1.5, 3), draw.uniform(0.5, 4) * bright, bulge);
      const int plumes = draw.integer(1, 3);
      for (int k = 0; k < plumes; ++k) {
        const double a = lop + draw.uniform(-1.2, 1.2);
        add_stroke(cv, cx + 0.5 * re * std::cos(a), cy + 0.5 * re * std::sin(a), a + draw.uniform(-0.6, 0.6),
                   draw.uniform(-0.04, 0.04) / zoom, draw.uniform(1.0, 2.5) * re, draw.uniform(2, 4) * zoom,
                   draw.uniform(0.15, 0.45) * bright, mix(disk, young, draw.uniform(0, 1)), draw, 0.5);
      }
      const int clumps = draw.integer(2, 10);
      const Rgb clump_colour = mix(young, disk, draw.uniform(0, 0.6));
      for (int k = 0; k < clumps; ++k) {
        const double a = lop + draw.uniform(-1.8, 1.8), r = draw.uniform(0.2, 1.6) * re;
        add_blob(cv, cx + r * std::cos(a), cy + r * std::sin(a), draw.uniform(0.6, 1.6) * zoom,
                 draw.log_uniform(2, 18) * bright * zoom * zoom, clump_colour);
      }
      break;
    }
    case 1: {  // Merging: two nuclei with envelopes and tidal tails
      const double sep = draw.uniform(5, 22) * zoom, ratio = draw.uniform(0.25, 1);
      const double w2 = ratio / (1 + ratio);  // keeps the pair's light centred
      const double x1 = cx - sep * w2 * std::cos(pa), y1 = cy - sep * w2 * std::sin(pa);
      const double x2 = cx + sep * (1 - w2) * std::cos(pa), y2 = cy + sep * (1 - w2) * std::sin(pa);
      const double i1 = draw.uniform(1.5, 4) * bright;
      const double re1 = draw.uniform(2.5, 5) * zoom, re2 = re1 * draw.uniform(0.6, 1.0);
      add_sersic(cv, Frame(x1, y1, draw.angle(), draw.uniform(0.6, 1)), re1, draw.uniform(2, 4), i1, bulge);
      add_sersic(cv, Frame(x2, y2, draw.angle(), draw.uniform(0.6, 1)), re2, draw.uniform(2, 4), i1 * ratio, bulge);
      const double env = draw.uniform(0.25, 0.6) * bright;
      add_sersic(cv, Frame(x1, y1, draw.angle(), draw.uniform(0.5, 1)), 2.5 * re1, 1, env, disk);
      add_sersic(cv, Frame(x2, y2, draw.angle(), draw.uniform(0.5, 1)), 2.5 * re2, 1, env * ratio, disk);
      const int turn = draw.chance(0.5) ? 1 : -1;
      const double curl = turn * draw.uniform(0.02, 0.06) / zoom;
      add_stroke(cv, x1, y1, pa + pi + turn * draw.uniform(0.3, 1.0), curl, draw.uniform(15, 40) * zoom,
                 draw.uniform(2, 3.5) * zoom, draw.uniform(0.25, 0.6) * bright, mix(disk, young, 0.4), draw);
      if (draw.chance(0.7))
        add_stroke(cv, x2, y2, pa + turn * draw.uniform(0.3, 1.0), curl, draw.uniform(10, 35) * zoom,
                   draw.uniform(2, 3.5) * zoom, draw.uniform(0.2, 0.5) * bright, mix(disk, young, 0.4), draw);
      if (draw.chance(0.4))  // a bridge of stars between the two
        add_stroke(cv, x1, y1, pa, 0, sep, draw.uniform(1.5, 2.5) * zoom, draw.uniform(0.3, 0.6) * bright, disk, draw, 0.2);
      break;
    }
    case 2:  // Round Smooth
      add_sersic(cv, Frame(cx, cy, pa, draw.uniform(0.78, 1)), draw.uniform(4, 11) * zoom, draw.uniform(2.5, 5),
                 draw.uniform(0.7, 1.6) * bright, bulge);
      break;
    case 3:  // In-between Round Smooth
      add_sersic(cv, Frame(cx, cy, pa, draw.uniform(0.42, 0.78)), draw.uniform(2.5, 7) * zoom, draw.uniform(1.5, 4),
                 draw.uniform(0.8, 1.8) * bright, mix(bulge, disk, draw.uniform(0.2, 1)));
      break;
    case 4:  // Cigar Shaped Smooth
      add_sersic(cv, Frame(cx, cy, pa, draw.uniform(0.18, 0.42)), draw.uniform(3, 8) * zoom, draw.uniform(0.8, 2.5),
                 draw.uniform(0.8, 1.8) * bright, mix(bulge, disk, draw.uniform(0.2, 1)));
      break;
    case 5:
    case 6:
    case 7: {  // spirals
      const double q = draw.uniform(0.4, 1), h = draw.uniform(label == 7 ? 7 : 8, label == 7 ? 13 : 15) * zoom;
      const Frame f(cx, cy, pa, q);
      Arms arms;
      arms.sense = draw.chance(0.5) ? 1 : -1;
      arms.phase = draw.angle();
      arms.sharpness = draw.uniform(2, 6);
      arms.strength = draw.uniform(0.8, 1.8);
      double bulge_re = draw.uniform(1.5, 3.5) * zoom, bulge_i = draw.uniform(1.5, 4) * bright;
      if (label == 5) {
        arms.count = 2;
        arms.pitch = draw.uniform(12, 28) * pi / 180;
        const double bar_angle = draw.angle(), bar_len = draw.uniform(3, 5) * bulge_re;
        arms.r_start = bar_len;
        arms.phase = -arms.count * arms.sense * bar_angle;  // arms leave the ends of the bar
        arms.clumps = draw.integer(4, 10);
        add_spiral_disk(cv, f, h, draw.uniform(0.4, 0.8) * bright, arms, disk, young, draw);
        add_bar(cv, f, bar_angle, bar_len, draw.uniform(0.2, 0.35), draw.uniform(1.5, 3) * bright, mix(bulge, disk, 0.3));
        if (draw.chance(0.3)) {  // an inner ring at the bar ends
          const double ring_r = bar_len * draw.uniform(0.95, 1.15), width = draw.uniform(1, 2) * zoom,
                       ring_i = draw.uniform(0.3, 0.7) * bright;
          cv.paint(cx, cy, ring_r / q + 4 * width, [&](double dx, double dy) {
            double x, y;
            f.plane(dx, dy, x, y);
            const double d = (std::sqrt(x * x + y * y) - ring_r) / width;
            return disk * (ring_i * std::exp(-0.5 * d * d));
          });
        }
      } else if (label == 6) {
        arms.count = draw.integer(2, 4);
        arms.pitch = draw.uniform(7, 15) * pi / 180;
        arms.r_start = draw.uniform(1.5, 2.5) * bulge_re;
        arms.sharpness = draw.uniform(2, 5);
        arms.strength = draw.uniform(0.5, 1.4);
        arms.clumps = draw.integer(6, 16);
        add_spiral_disk(cv, f, h, draw.uniform(0.35, 0.7) * bright, arms, disk, young, draw);
      } else {
        arms.count = draw.integer(2, 3);
        arms.pitch = draw.uniform(20, 38) * pi / 180;
        arms.r_start = draw.uniform(1.5, 3) * bulge_re;
        arms.clumps = draw.integer(10, 22);
        arms.strength = draw.uniform(1.4, 2.4);
        bulge_re *= 0.8;
        bulge_i *= 0.7;
        add_spiral_disk(cv, f, h, draw.uniform(0.35, 0.7) * bright, arms, disk, young, draw);
      }
      add_sersic(cv, Frame(cx, cy, pa, std::max(q, 0.75)), bulge_re, draw.uniform(1.5, 3.5), bulge_i, bulge);
      break;
    }
    case 8:
    case 9: {  // edge-on disks
      const double h = draw.uniform(3, 6.5) * zoom, z0 = h * draw.uniform(label == 8 ? 0.12 : 0.1, label == 8 ? 0.26 : 0.22);
      add_edge_on_disk(cv, cx, cy, pa, h, z0, draw.uniform(2.5, 5) * bright, label == 8 ? mix(disk, young, draw.uniform(0, 0.6)) : mix(disk, bulge, 0.3));
      if (label == 9) {
        const double re = h * draw.uniform(0.4, 0.8);
        add_sersic(cv, Frame(cx, cy, pa, draw.uniform(0.5, 0.85)), re, draw.uniform(1.5, 3.5), draw.uniform(1.0, 2.5) * bright, bulge);
      }
      if (draw.chance(label == 9 ? 0.6 : 0.25)) {  // a dust lane along the mid-plane
        const double c = std::cos(pa), s = std::sin(pa), depth = draw.uniform(0.3, 0.7), width = z0 * draw.uniform(0.3, 0.6);
        const double offset = z0 * draw.uniform(-0.3, 0.3);
        cv.attenuate(cx, cy, 4 * h, [&](double dx, double dy) {
          const double u = dx * c + dy * s, v = (-dx * s + dy * c - offset) / width;
          const double a = depth * std::exp(-0.5 * v * v) * std::exp(-std::abs(u) / (3 * h));
          return Rgb{float(1 - a), float(1 - 1.1 * a), float(1 - 1.2 * a)};  // dust reddens
        });
      }
      break;
    }
    default:
      ::hubble::detail::fail("make_synthetic_galaxy10: no model for class ", label);
  }
}

// Renders image `index` (class index % 10) into out (side x side x 3 uint8).
inline void render(int index, int side, std::uint64_t seed, std::uint8_t* out) {
  Rng rng = Rng(seed).split(std::uint64_t(index) + 1);
  Draw draw{rng};
  const int label = index % galaxy10_num_classes;
  const double scale = side / 256.0;
  Canvas cv(side);
  const double cx = side / 2.0 + 1.0 * scale * draw.normal(), cy = side / 2.0 + 1.0 * scale * draw.normal();
  add_galaxy(cv, label, cx, cy, scale, draw);
  add_field(cv, draw, scale);

  // Noise before the seeing comes out spatially correlated, as in the real cut-outs.
  const double corr_noise = draw.uniform(0.3, 0.7);
  float* p = cv.data();
  const std::size_t n = std::size_t(side) * side * 3;
  const float corr = float(corr_noise);
  for (std::size_t i = 0; i + 1 < n; i += 2) {  // n = 3 side^2 is even for even sides
    float a, b;
    Draw::fast_normals(rng(), a, b);
    p[i] += corr * a;
    p[i + 1] += corr * b;
  }
  if (n % 2) {
    float a, b;
    Draw::fast_normals(rng(), a, b);
    p[n - 1] += corr * a;
  }
  cv.blur(draw.uniform(1.1, 1.8) * scale);

  // asinh stretch of the mean flux, the same factor for all channels so colours survive.
  const double gain = draw.uniform(40, 50);
  const double sky_base = draw.uniform(31.5, 35.5);
  const double sky[3] = {sky_base + draw.uniform(-2, 2), sky_base + draw.uniform(-2, 2), sky_base + draw.uniform(-2, 2)};
  const double white = draw.uniform(2.5, 5);
  const float skyf[3] = {float(sky[0]), float(sky[1]), float(sky[2])}, whitef = float(white), gainf = float(gain);
  for (std::size_t i = 0; i < n; i += 3) {
    const float mean = (p[i] + p[i + 1] + p[i + 2]) * (1.f / 3), m2 = mean * mean;
    // gain * asinh(mean) / mean (softening 1 flux unit); its Taylor series near 0, where the sky is.
    const float k = m2 < 0.25f ? gainf * (1 - m2 * (1.f / 6 - m2 * (3.f / 40 - m2 * (15.f / 336))))
                               : gainf * std::asinh(mean) / mean;
    float n0, n1, n2, unused;
    Draw::fast_normals(rng(), n0, n1);
    Draw::fast_normals(rng(), n2, unused);
    const float noise[3] = {n0, n1, n2};
    for (std::size_t c = 0; c < 3; ++c) {
      const float v = skyf[c] + k * p[i + c] + whitef * noise[c];
      out[i + c] = std::uint8_t(std::clamp(v, 0.f, 255.f) + 0.5f);
    }
  }
}

}  // namespace synth

// `count` synthetic Galaxy10 images of side x side x 3, label = index % 10 (balanced).
inline ImageSet make_synthetic_galaxy10(const SyntheticOptions& options = {}) {
  HUBBLE_CHECK(options.count >= 0, "make_synthetic_galaxy10: count ", options.count, " is negative");
  HUBBLE_CHECK(options.side >= 32 && options.side <= 4096, "make_synthetic_galaxy10: side ", options.side,
               " is outside 32..4096");
  ImageSet set;
  set.height = set.width = options.side;
  set.channels = 3;
  set.pixels.resize(std::size_t(options.count) * set.image_bytes());
  set.labels.resize(std::size_t(options.count));
  for (int i = 0; i < options.count; ++i) set.labels[std::size_t(i)] = i % galaxy10_num_classes;
#pragma omp parallel for schedule(dynamic, 4)
  for (int i = 0; i < options.count; ++i) synth::render(i, options.side, options.seed, set.image(i));
  return set;
}

}  // namespace hubble::data
