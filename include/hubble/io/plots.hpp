#pragma once
// Plots drawn by hand into an RGB pixel buffer and saved as PNG (through io/png.hpp): no plotting
// library, just lines, rectangles and a tiny built-in 5x7 bitmap font.
//
//   plots::save_training_curves("runs/x/curves.png", epochs, train_loss, val_loss, train_acc, val_acc);
//   plots::save_confusion_matrix("runs/x/confusion.png", counts, k, class_names, "validation");
//   plots::save_filter_grid("runs/x/filters.png", kernel, 5, 3, 32);   // first-layer filters
//
// Canvas coordinates: x to the right, y down, (0, 0) the top-left pixel.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/io/png.hpp"

namespace hubble::plots {

struct Color {
  std::uint8_t r = 0, g = 0, b = 0;
};
inline constexpr Color white{255, 255, 255}, black{0, 0, 0}, grey{128, 128, 128}, light_grey{225, 225, 225};
inline constexpr Color blue{31, 119, 180}, orange{255, 127, 14}, green{44, 160, 44}, red{214, 39, 40};

namespace font {
// 5x7 glyphs for ASCII 32..126 plus a descender row (g, j, p, q, y, comma): 8 rows top to bottom,
// bit 4 = the leftmost column; the baseline is under row 6. Each glyph advances 6 pixels.
inline constexpr int width = 5, height = 8, advance = 6, line_height = 10;
inline constexpr std::array<std::array<std::uint8_t, 8>, 95> glyphs = {{
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // ' '
    {0x04, 0x04, 0x04, 0x04, 0x00, 0x00, 0x04, 0x00},  // !
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00},  // "
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00},  // #
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00},  // $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00},  // %
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00},  // &
    {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00},  // '
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00},  // (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00},  // )
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00},  // *
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00},  // +
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},  // ,
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00},  // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00},  // .
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00},  // /
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00},  // 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00},  // 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00},  // 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00},  // 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00},  // 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00},  // 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00},  // 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00},  // 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00},  // 9
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00},  // :
    {0x00, 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08},  // ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00},  // <
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00},  // =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00},  // >
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00},  // ?
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00},  // @
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x00},  // A
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00},  // B
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00},  // C
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00},  // D
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00},  // E
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00},  // F
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00},  // G
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00},  // H
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00},  // J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00},  // K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00},  // L
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00},  // M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00},  // N
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00},  // O
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00},  // P
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00},  // Q
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00},  // R
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00},  // S
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00},  // T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00},  // U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00},  // V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00},  // W
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00},  // X
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00},  // Y
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00},  // Z
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00},  // [
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00},  // backslash
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00},  // ]
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00},  // ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00},  // _
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00},  // `
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00},  // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00},  // b
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00},  // c
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00},  // d
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00},  // e
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00},  // f
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00},  // h
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00},  // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C},  // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00},  // k
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // l
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00},  // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00},  // n
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00},  // o
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10},  // p
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01},  // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00},  // r
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00},  // s
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00},  // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00},  // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00},  // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00},  // w
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00},  // x
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // y
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00},  // z
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00},  // {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00},  // |
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00},  // }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00},  // ~
}};
// The glyph of c; characters outside 32..126 draw as '?'.
inline const std::array<std::uint8_t, 8>& glyph(char c) {
  const int i = static_cast<unsigned char>(c);
  return glyphs[std::size_t(i >= 32 && i <= 126 ? i - 32 : '?' - 32)];
}
}  // namespace font

// An RGB image to draw on.
class Canvas {
 public:
  Canvas(int width, int height, Color background = white) : w_(width), h_(height) {
    HUBBLE_CHECK(width > 0 && height > 0, "Canvas: bad size ", width, " x ", height);
    px_.resize(std::size_t(width) * height * 3);
    fill_rect(0, 0, width, height, background);
  }
  int width() const { return w_; }
  int height() const { return h_; }
  const std::vector<std::uint8_t>& pixels() const { return px_; }
  Color at(int x, int y) const {
    const std::size_t i = (std::size_t(y) * w_ + x) * 3;
    return {px_[i], px_[i + 1], px_[i + 2]};
  }

  void pixel(int x, int y, Color c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;  // clipped
    const std::size_t i = (std::size_t(y) * w_ + x) * 3;
    px_[i] = c.r;
    px_[i + 1] = c.g;
    px_[i + 2] = c.b;
  }
  // Fills [x0, x1) x [y0, y1).
  void fill_rect(int x0, int y0, int x1, int y1, Color c) {
    for (int y = std::max(0, y0); y < std::min(h_, y1); ++y)
      for (int x = std::max(0, x0); x < std::min(w_, x1); ++x) pixel(x, y, c);
  }
  void rect(int x0, int y0, int x1, int y1, Color c) {  // outline of [x0, x1] x [y0, y1]
    line(x0, y0, x1, y0, c);
    line(x1, y0, x1, y1, c);
    line(x1, y1, x0, y1, c);
    line(x0, y1, x0, y0, c);
  }
  // Bresenham; thickness > 1 draws a square brush; dash > 0 draws dash-on, dash-off.
  void line(int x0, int y0, int x1, int y1, Color c, int thickness = 1, int dash = 0) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, step = 0;
    for (;;) {
      if (dash <= 0 || (step / dash) % 2 == 0) {
        const int lo = -(thickness - 1) / 2, hi = thickness / 2;
        for (int oy = lo; oy <= hi; ++oy)
          for (int ox = lo; ox <= hi; ++ox) pixel(x0 + ox, y0 + oy, c);
      }
      ++step;
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }

  static int text_width(const std::string& s, int scale = 1) {
    return s.empty() ? 0 : int(s.size()) * font::advance * scale - scale;
  }
  static int text_height(int scale = 1) { return (font::height - 1) * scale; }  // cap height
  // Text with its top-left corner at (x, y).
  void text(int x, int y, const std::string& s, Color c, int scale = 1) {
    for (const char ch : s) {
      const auto& g = font::glyph(ch);
      for (int row = 0; row < font::height; ++row)
        for (int col = 0; col < font::width; ++col)
          if (g[std::size_t(row)] & (0x10 >> col)) fill_rect(x + col * scale, y + row * scale, x + (col + 1) * scale, y + (row + 1) * scale, c);
      x += font::advance * scale;
    }
  }
  // Text centred on (cx, y top).
  void text_centered(int cx, int y, const std::string& s, Color c, int scale = 1) {
    text(cx - text_width(s, scale) / 2, y, s, c, scale);
  }
  // Text turned 90 degrees counter-clockwise (reads bottom to top), centred on (x left, cy).
  void text_vertical(int x, int cy, const std::string& s, Color c, int scale = 1) {
    int y = cy + text_width(s, scale) / 2;
    for (const char ch : s) {
      const auto& g = font::glyph(ch);
      for (int row = 0; row < font::height; ++row)
        for (int col = 0; col < font::width; ++col)
          if (g[std::size_t(row)] & (0x10 >> col))
            fill_rect(x + row * scale, y - (col + 1) * scale, x + (row + 1) * scale, y - col * scale, c);
      y -= font::advance * scale;
    }
  }

  void save_png(const std::string& path) const { io::write_png(path, w_, h_, 3, px_.data()); }

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;
};

// Tick positions for [lo, hi]: about `target` round steps (1, 2, 2.5 or 5 times a power of 10).
inline std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  std::vector<double> ticks;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) { step = m * mag; break; }
  const double first = std::ceil(lo / step - 1e-9);
  for (int i = 0;; ++i) {  // multiples of step: no accumulated rounding
    const double t = (first + i) * step;
    if (t > hi + step * 1e-9) break;
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}
inline std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

struct Series {
  std::string name;
  std::vector<double> x, y;  // NaN y values are gaps
  Color color = blue;
  int dash = 0;              // 0: solid
};

struct Axes {
  std::string title, x_label, y_label;
  bool legend_bottom = false;  // legend in the bottom-right corner instead of the top-right
  double y_min = std::numeric_limits<double>::quiet_NaN(), y_max = std::numeric_limits<double>::quiet_NaN();  // NaN: from data
};

// A line chart of `series` into the box [x0, x0 + w) x [y0, y0 + h) of the canvas: frame, grid,
// ticks with labels, axis labels, title and a legend (top right).
inline void line_chart(Canvas& cv, int x0, int y0, int w, int h, const std::vector<Series>& series, const Axes& ax) {
  const int left = x0 + 58, right = x0 + w - 12, top = y0 + 30, bottom = y0 + h - 40;
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const Series& s : series)
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xmin = std::min(xmin, s.x[i]);
      xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]);
      ymax = std::max(ymax, s.y[i]);
    }
  if (!std::isfinite(xmin)) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
  if (!std::isnan(ax.y_min)) ymin = ax.y_min;
  if (!std::isnan(ax.y_max)) ymax = ax.y_max;
  if (xmax <= xmin) xmax = xmin + 1;
  if (ymax <= ymin) { ymin -= 0.5; ymax += 0.5; }
  const std::vector<double> yt = nice_ticks(ymin, ymax, 5);
  if (std::isnan(ax.y_min) && !yt.empty()) ymin = std::min(ymin, yt.front());
  if (std::isnan(ax.y_max) && !yt.empty()) ymax = std::max(ymax, yt.back());
  std::vector<double> xt = nice_ticks(xmin, xmax, 6);
  if (xmax - xmin <= 12) {  // few epochs: a tick per whole epoch
    xt.clear();
    for (double t = std::ceil(xmin); t <= xmax; t += 1) xt.push_back(t);
  }
  const auto px = [&](double x) { return left + int(std::lround((x - xmin) / (xmax - xmin) * (right - left))); };
  const auto py = [&](double y) { return bottom - int(std::lround((y - ymin) / (ymax - ymin) * (bottom - top))); };

  for (const double t : yt) {
    if (t < ymin - 1e-12 || t > ymax + 1e-12) continue;
    cv.line(left, py(t), right, py(t), light_grey);
    cv.line(left - 4, py(t), left, py(t), black);
    const std::string s = tick_label(t);
    cv.text(left - 7 - Canvas::text_width(s), py(t) - 3, s, black);
  }
  for (const double t : xt) {
    cv.line(px(t), top, px(t), bottom, light_grey);
    cv.line(px(t), bottom, px(t), bottom + 4, black);
    cv.text_centered(px(t), bottom + 8, tick_label(t), black);
  }
  cv.rect(left, top, right, bottom, black);
  cv.text_centered((left + right) / 2, y0 + 8, ax.title, black, 2);
  cv.text_centered((left + right) / 2, bottom + 22, ax.x_label, black);
  cv.text_vertical(x0 + 4, (top + bottom) / 2, ax.y_label, black);

  for (const Series& s : series) {
    bool have_prev = false;
    int prev_x = 0, prev_y = 0;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) { have_prev = false; continue; }
      const int X = px(s.x[i]), Y = py(std::clamp(s.y[i], ymin, ymax));
      if (have_prev) cv.line(prev_x, prev_y, X, Y, s.color, 2, s.dash);
      cv.fill_rect(X - 2, Y - 2, X + 3, Y + 3, s.color);  // a marker per point (one epoch shows too)
      prev_x = X;
      prev_y = Y;
      have_prev = true;
    }
  }
  // Legend, top right inside the frame.
  int lw = 0, shown = 0;
  for (const Series& s : series) {
    lw = std::max(lw, Canvas::text_width(s.name));
    shown += !s.name.empty();
  }
  if (shown == 0) return;
  const int bw = lw + 40, bh = 8 + 14 * shown, bx = right - bw - 6, by = ax.legend_bottom ? bottom - bh - 6 : top + 6;
  cv.fill_rect(bx, by, bx + bw, by + bh, white);
  cv.rect(bx, by, bx + bw, by + bh, grey);
  int ly = by + 6;
  for (const Series& s : series) {
    if (s.name.empty()) continue;
    cv.line(bx + 6, ly + 3, bx + 26, ly + 3, s.color, 2, s.dash);
    cv.text(bx + 32, ly, s.name, black);
    ly += 14;
  }
}

// Loss and accuracy per epoch, training vs validation, side by side. NaN validation values
// (no validation set) are left out.
inline void save_training_curves(const std::string& path, const std::vector<double>& epochs,
                                 const std::vector<double>& train_loss, const std::vector<double>& val_loss,
                                 const std::vector<double>& train_accuracy, const std::vector<double>& val_accuracy) {
  Canvas cv(1000, 420);
  const bool has_val = std::any_of(val_loss.begin(), val_loss.end(), [](double v) { return std::isfinite(v); });
  std::vector<Series> loss{{"training", epochs, train_loss, blue, 0}}, acc{{"training", epochs, train_accuracy, blue, 0}};
  if (has_val) {
    loss.push_back({"validation", epochs, val_loss, orange, 6});
    acc.push_back({"validation", epochs, val_accuracy, orange, 6});
  }
  Axes la{"Loss", "epoch", "cross-entropy"};
  la.y_min = 0;
  line_chart(cv, 0, 0, 500, 420, loss, la);
  Axes aa{"Accuracy", "epoch", "accuracy"};
  aa.y_min = 0;
  aa.y_max = 1;
  aa.legend_bottom = true;  // accuracy rises towards the top
  line_chart(cv, 500, 0, 500, 420, acc, aa);
  cv.save_png(path);
}

// White -> blue by the row-normalised value (the fraction of each true class predicted as
// each class, i.e. recall on the diagonal); the counts are written in the cells.
inline void save_confusion_matrix(const std::string& path, const std::vector<long long>& counts, int k,
                                  const std::vector<std::string>& names, const std::string& title) {
  HUBBLE_CHECK(k > 0 && counts.size() == std::size_t(k) * std::size_t(k), path, ": confusion matrix of ", counts.size(),
               " counts is not ", k, " x ", k);
  int name_w = 0;
  for (int i = 0; i < k; ++i)
    name_w = std::max(name_w, Canvas::text_width(std::to_string(i) + " " + (i < int(names.size()) ? names[std::size_t(i)] : "")));
  long long biggest = 1;
  for (long long c : counts) biggest = std::max(biggest, c);
  const int cell = std::max(34, Canvas::text_width(std::to_string(biggest)) + 10);
  const int left = name_w + 40, top = 70, width = left + k * cell + 20, height = top + k * cell + 50;
  Canvas cv(width, height);
  cv.text_centered(width / 2, 10, title, black, 2);
  cv.text_centered(left + k * cell / 2, top - 32, "predicted class", black);
  cv.text_vertical(6, top + k * cell / 2, "true class", black);
  for (int i = 0; i < k; ++i) {
    long long row = 0;
    for (int j = 0; j < k; ++j) row += counts[std::size_t(i * k + j)];
    const std::string label = std::to_string(i) + " " + (i < int(names.size()) ? names[std::size_t(i)] : "");
    cv.text(left - 6 - Canvas::text_width(label), top + i * cell + cell / 2 - 3, label, black);
    cv.text_centered(left + i * cell + cell / 2, top - 14, std::to_string(i), black);
    for (int j = 0; j < k; ++j) {
      const long long c = counts[std::size_t(i * k + j)];
      const double f = row > 0 ? double(c) / double(row) : 0.0;
      const Color fill{std::uint8_t(255 - f * (255 - 8)), std::uint8_t(255 - f * (255 - 48)), std::uint8_t(255 - f * (255 - 107))};
      const int x = left + j * cell, y = top + i * cell;
      cv.fill_rect(x, y, x + cell, y + cell, fill);
      cv.text_centered(x + cell / 2, y + cell / 2 - 3, std::to_string(c), f > 0.5 ? white : black);
    }
  }
  for (int i = 0; i <= k; ++i) {
    cv.line(left, top + i * cell, left + k * cell, top + i * cell, light_grey);
    cv.line(left + i * cell, top, left + i * cell, top + k * cell, light_grey);
  }
  cv.rect(left, top, left + k * cell, top + k * cell, black);
  cv.text(left, top + k * cell + 14, "colour: fraction of the row (true class); numbers: images", grey);
  cv.save_png(path);
}

// The first convolution's filters as small RGB images in a grid (the paper's Fig. 8). `kernel`
// is Conv2D's [K, K, C, F] array; each filter is stretched to [0, 255] by its own min and max.
// C = 3 draws colour, any other C draws the channel mean in grey.
template <class T>
void save_filter_grid(const std::string& path, const T* kernel, int k, int c, int f, int columns = 8, int zoom = 14) {
  HUBBLE_CHECK(k > 0 && c > 0 && f > 0 && columns > 0 && zoom > 0, path, ": bad filter grid ", k, "x", k, "x", c, "x", f);
  const int rows = (f + columns - 1) / columns, gap = 6, side = k * zoom, top = 34;
  const int width = columns * (side + gap) + gap, height = top + rows * (side + gap) + gap;
  Canvas cv(width, height, Color{240, 240, 240});
  cv.text_centered(width / 2, 8, "first-layer filters", black, 2);
  for (int n = 0; n < f; ++n) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int i = 0; i < k * k * c; ++i) {
      const double v = double(kernel[std::size_t(i) * std::size_t(f) + std::size_t(n)]);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const double scale = hi > lo ? 255.0 / (hi - lo) : 0.0;
    const auto value = [&](int y, int x, int ch) {
      return double(kernel[(std::size_t((y * k + x) * c + ch)) * std::size_t(f) + std::size_t(n)]);
    };
    const int ox = gap + (n % columns) * (side + gap), oy = top + gap + (n / columns) * (side + gap);
    for (int y = 0; y < k; ++y)
      for (int x = 0; x < k; ++x) {
        Color col;
        if (c == 3) {
          col = {std::uint8_t(std::lround((value(y, x, 0) - lo) * scale)), std::uint8_t(std::lround((value(y, x, 1) - lo) * scale)),
                 std::uint8_t(std::lround((value(y, x, 2) - lo) * scale))};
        } else {
          double m = 0;
          for (int ch = 0; ch < c; ++ch) m += value(y, x, ch);
          const auto g = std::uint8_t(std::lround((m / c - lo) * scale));
          col = {g, g, g};
        }
        cv.fill_rect(ox + x * zoom, oy + y * zoom, ox + (x + 1) * zoom, oy + (y + 1) * zoom, col);
      }
  }
  cv.save_png(path);
}

}  // namespace hubble::plots
