// render_figures: draws the pictures of the learner's tour (docs/learn/) as SVG, from the
// library itself: the shapes come from PaperNet's compile-time types, the im2col matrix from
// kernels::im2col, the input gradient and each pixel's window count from kernels::col2im, the
// gradient routing from MaxPoolLayer::backward, the loss gradient from softmax_cross_entropy.
// So the pictures show what the code does, not what someone drew.
//
//   render_figures [--out DIR]        (default docs/images; writes DIR/learn_*.svg)
//
// The output is deterministic; the test docs.figures checks that the checked-in pictures are
// what this program draws now.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "hubble/kernels/im2col.hpp"
#include "hubble/paper_net.hpp"

namespace {

using namespace hubble;

// ---- a tiny SVG writer --------------------------------------------------------------------
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  std::string s = buf;
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s == "-0" ? "0" : s;
}
std::string escape(const std::string& t) {
  std::string out;
  for (char c : t) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

class Svg {
 public:
  Svg(double w, double h) : w_(w), h_(h) {}
  Svg& rect(double x, double y, double w, double h, const std::string& fill, const std::string& stroke = "none",
            double stroke_width = 1) {
    s_ << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w) << "\" height=\"" << num(h)
       << "\" fill=\"" << fill << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(stroke_width) << "\"/>\n";
    return *this;
  }
  Svg& text(double x, double y, const std::string& t, double size = 12, const std::string& anchor = "middle",
            const std::string& extra = "") {
    s_ << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << num(size) << "\" text-anchor=\""
       << anchor << "\"" << (extra.empty() ? "" : " " + extra) << ">" << escape(t) << "</text>\n";
    return *this;
  }
  Svg& line(double x1, double y1, double x2, double y2, const std::string& stroke = "#444", double width = 1,
            bool arrow = false) {
    s_ << "<line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2) << "\" y2=\"" << num(y2)
       << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width) << "\""
       << (arrow ? " marker-end=\"url(#arrow)\"" : "") << "/>\n";
    return *this;
  }
  std::string str() const {
    std::ostringstream o;
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(w_) << "\" height=\"" << num(h_)
      << "\" viewBox=\"0 0 " << num(w_) << " " << num(h_) << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
      << "<!-- Drawn by examples/render_figures.cpp: edit that program, not this file. -->\n"
      << "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
         "orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#444\"/></marker></defs>\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << s_.str() << "</svg>\n";
    return o.str();
  }

 private:
  double w_, h_;
  std::ostringstream s_;
};

void write_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    HUBBLE_CHECK(out.good(), tmp.string(), ": cannot write (is the folder writable?)");
  }
  std::filesystem::rename(tmp, path);
  std::cout << "wrote " << path.string() << "\n";
}

// Window colours (ColorBrewer Set1) and their light tints.
const char* const strong[] = {"#e41a1c", "#377eb8", "#4daf4a", "#984ea3"};
const char* const light[] = {"#fbb4ae", "#b3cde3", "#ccebc5", "#decbe4"};

// ---- 1. the paper's network, layer by layer -----------------------------------------------
struct Block {
  std::string name, type;
  int h, w, c;
  std::size_t params;
};

std::vector<Block> paper_blocks() {
  std::vector<Block> blocks{{"input", "Input", 128, 128, 3, 0}};
  const auto rows = PaperNet::summary_rows();
  std::size_t row = 0;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ([&] {
      using L = PaperNet::layer_type<I>;
      if (L::is_activation) return;
      using S = typename L::out_shape;
      blocks.push_back({rows[row].name, rows[row].type, S::h, S::w, S::c, rows[row].params});
      ++row;
    }(), ...);
  }(std::make_index_sequence<PaperNet::layer_count>{});
  return blocks;
}

std::string network_figure() {
  const std::vector<Block> blocks = paper_blocks();  // 14: input + Table I's 13 rows
  const int per_row = 7;
  const double col_w = 150, row_h = 250, top = 40;
  Svg svg(per_row * col_w + 20, 2 * row_h + top + 30);
  svg.text(10, 24, "PaperNet, one batch of 32 images: the output of every layer (NHWC; ReLU folded into its layer)", 15,
           "start", "font-weight=\"bold\"");
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const Block& b = blocks[i];
    const double cx = 10 + (double(i % per_row) + 0.5) * col_w, base = top + double(i / per_row) * row_h + 150;
    const bool flat = b.h == 1 && b.w == 1;
    const std::string fill = b.type.rfind("Conv2D", 0) == 0 ? "#b3cde3"
                             : b.type == "MaxPool"           ? "#ccebc5"
                             : b.type.rfind("Dense", 0) == 0 ? "#fed9a6"
                             : b.type == "Input"             ? "#eeeeee"
                                                             : "#f2f2f2";
    if (flat) {
      const double hgt = 11 * std::log2(double(b.c));  // 1024 -> 110, 10 -> 37
      svg.rect(cx - 9, base - hgt, 18, hgt, fill, "#333");
    } else {
      // A square per feature map, side proportional to the map's side; depth hints the channels.
      const double side = 10 + 110 * double(b.h) / 128.0;
      const int layers = b.c >= 128 ? 4 : b.c >= 32 ? 3 : 2;
      const double off = 6;
      for (int k = layers - 1; k >= 0; --k)
        svg.rect(cx - side / 2 + k * off - (layers - 1) * off / 2, base - side - k * off, side, side, fill, "#333");
    }
    const std::string shape = flat ? std::to_string(b.c) : std::to_string(b.h) + "x" + std::to_string(b.w) + "x" + std::to_string(b.c);
    svg.text(cx, base + 22, b.name, 13, "middle", "font-weight=\"bold\"");
    svg.text(cx, base + 38, b.type, 11);
    svg.text(cx, base + 54, "32x" + shape, 12, "middle", "font-family=\"DejaVu Sans Mono, monospace\"");
    svg.text(cx, base + 70, b.params ? detail::thousands(b.params) + " params" : "no params", 11, "middle",
             "fill=\"#555\"");
    if (i % per_row != per_row - 1 && i + 1 < blocks.size())
      svg.line(cx + 62, base - 60, cx + col_w - 62, base - 60, "#444", 1.5, true);
  }
  svg.text(10, 2 * row_h + top + 20,
           "forward: left to right, top row then bottom row. backward: the same path in reverse, from d(loss)/d(logits) "
           "of dense_2.",
           12, "start", "fill=\"#333\"");
  return svg.str();
}

// ---- 2. im2col: a convolution as one matrix product ---------------------------------------
std::string im2col_figure() {
  // A 5x5 single-channel image, 3x3 kernel, stride 2: 2x2 output, like conv2d_1 in miniature.
  kernels::ConvGeometry g{1, 5, 5, 1, 3, 2, 0, 0, 2, 2, 1};
  std::vector<float> x(25);
  for (int i = 0; i < 25; ++i) x[std::size_t(i)] = float(i + 1);
  std::vector<float> col(g.out_pixels() * g.patch());
  kernels::im2col(g, x.data(), col.data());

  const double cell = 34, ix = 20, iy = 70;
  Svg svg(900, 370);
  svg.text(10, 24, "im2col: conv(x, w) = col * w   (5x5 input, 3x3 kernel, stride 2, one channel)", 15, "start",
           "font-weight=\"bold\"");
  svg.text(ix + 2.5 * cell, iy - 12, "input x (5x5)", 12);
  for (int y = 0; y < 5; ++y)
    for (int xx = 0; xx < 5; ++xx) {
      svg.rect(ix + xx * cell, iy + y * cell, cell, cell, "white", "#999");
      svg.text(ix + (xx + 0.5) * cell, iy + (y + 0.5) * cell + 4, num(x[std::size_t(y * 5 + xx)]), 11);
    }
  // The four windows, inset a little each so overlaps stay visible.
  for (int r = 0; r < 4; ++r) {
    const int oy = r / 2, ox = r % 2;
    const double inset = 2 + 2.5 * r;
    svg.rect(ix + ox * 2 * cell + inset, iy + oy * 2 * cell + inset, 3 * cell - 2 * inset, 3 * cell - 2 * inset, "none",
             strong[r], 2.5);
  }
  svg.text(ix, iy + 5 * cell + 22, "window of output (oy, ox) starts at (2*oy, 2*ox)", 11, "start");
  svg.text(ix, iy + 5 * cell + 38, "centre pixel 13 lies in all four windows", 11, "start");

  // The col matrix: one row per output pixel, one column per kernel tap.
  const double cx = 250, cy = 100, cw = 30;
  svg.text(cx + 4.5 * cw, cy - 42, "col = im2col(x): 4 rows (output pixels) x 9 columns (kernel taps)", 12);
  for (int k = 0; k < 9; ++k)
    svg.text(cx + (k + 0.5) * cw, cy - 8, std::to_string(k / 3) + "," + std::to_string(k % 3), 9, "middle",
             "fill=\"#666\"");
  svg.text(cx - 6, cy - 8, "ky,kx", 9, "end", "fill=\"#666\"");
  for (int r = 0; r < 4; ++r) {
    const char* const labels[4] = {"(0,0)", "(0,1)", "(1,0)", "(1,1)"};  // (oy, ox) of each row
    svg.text(cx - 6, cy + (r + 0.5) * cw + 4, labels[r], 10, "end", std::string("fill=\"").append(strong[r]).append("\""));
    for (int k = 0; k < 9; ++k) {
      svg.rect(cx + k * cw, cy + r * cw, cw, cw, light[r], "#999");
      svg.text(cx + (k + 0.5) * cw, cy + (r + 0.5) * cw + 4, num(col[std::size_t(r) * 9 + std::size_t(k)]), 11);
    }
  }
  // times w (9 x F) equals y (4 x F)
  const double wx = cx + 9 * cw + 40;
  svg.text(wx - 20, cy + 2 * cw + 5, "x", 16);
  svg.rect(wx, cy - 15, 3 * 14, 9 * 16, "#fed9a6", "#333");
  svg.text(wx + 21, cy - 22, "w", 12);
  svg.text(wx + 21, cy + 9 * 16 + 2, "9 x F", 11);
  svg.text(wx + 3 * 14 + 22, cy + 2 * cw + 5, "=", 16);
  const double yx = wx + 3 * 14 + 44;
  for (int r = 0; r < 4; ++r) svg.rect(yx, cy + r * cw, 3 * 14, cw, light[r], "#333");
  svg.text(yx + 21, cy - 8, "y", 12);
  svg.text(yx + 21, cy + 4 * cw + 16, "4 x F", 11);
  svg.text(yx + 60, cy + 2 * cw + 5, "+ b", 13, "start");

  svg.text(ix, 300, "Row (n, oy, ox) of col holds the k*k*c inputs under that window, in (ky, kx, c) order: the same", 12,
           "start");
  svg.text(ix, 316, "order as the rows of w [k][k][c][f]. So y = col*w + b is the whole convolution, one GEMM.", 12,
           "start");
  svg.text(ix, 340, "Backward: dw = col^T dy, dcol = dy w^T, and col2im adds every entry of dcol back onto", 12, "start");
  svg.text(ix, 356, "the pixel it was copied from (pixel 13 collects four terms).", 12, "start");
  return svg.str();
}

// ---- 2b. the backward of a strided convolution: dcol = dY * W^T, then col2im --------------
std::string col2im_figure() {
  // The im2col example (5x5 input, 3x3 kernel, stride 2, one channel, one filter), backward.
  const kernels::ConvGeometry g{1, 5, 5, 1, 3, 2, 0, 0, 2, 2, 1};
  const double w[9] = {1, 0, -1, 2, 1, 0, -1, 1, 2};  // w[ky][kx], one filter
  const double dy[4] = {1, -1, 2, 0.5};               // dY[(oy, ox)]
  std::vector<double> dcol(g.out_pixels() * g.patch()), dx(g.in_size()), ones(dcol.size(), 1.0), cover(g.in_size());
  for (int r = 0; r < 4; ++r)
    for (int k = 0; k < 9; ++k) dcol[std::size_t(r) * 9 + std::size_t(k)] = dy[r] * w[k];  // dY * W^T
  kernels::col2im(g, dcol.data(), dx.data());
  kernels::col2im(g, ones.data(), cover.data());  // how many windows hold each pixel

  Svg svg(980, 420);
  svg.text(10, 24, "Backward of a stride-2 convolution: dcol = dY * W^T, then col2im adds each row back onto its window",
           15, "start", "font-weight=\"bold\"");
  const double top = 90;
  // dY (2x2, one per window) and W^T (1x9).
  const double c = 30;
  svg.text(20 + c, top - 30, "dY (2x2)", 12);
  for (int r = 0; r < 4; ++r) {
    svg.rect(20 + (r % 2) * c, top + (r / 2) * c, c, c, light[r], strong[r], 2);
    svg.text(20 + (r % 2 + 0.5) * c, top + (r / 2 + 0.5) * c + 4, num(dy[r]), 11);
  }
  svg.text(20, top + 2 * c + 22, "W^T: 1 x 9 (ky,kx) =", 11, "start");
  for (int k = 0; k < 9; ++k) {
    svg.rect(20 + k * 18, top + 2 * c + 30, 18, 20, "#fed9a6", "#999");
    svg.text(20 + (k + 0.5) * 18, top + 2 * c + 44, num(w[k]), 10);
  }
  // dcol: 4 x 9.
  const double cx = 230, cw = 30;
  svg.text(cx + 4.5 * cw, top - 30, "dcol = dY * W^T (4 windows x 9 taps)", 12);
  for (int r = 0; r < 4; ++r) {
    const char* const labels[4] = {"(0,0)", "(0,1)", "(1,0)", "(1,1)"};
    svg.text(cx - 6, top + (r + 0.5) * cw + 4, labels[r], 10, "end", std::string("fill=\"").append(strong[r]).append("\""));
    for (int k = 0; k < 9; ++k) {
      svg.rect(cx + k * cw, top + r * cw, cw, cw, light[r], "#999");
      svg.text(cx + (k + 0.5) * cw, top + (r + 0.5) * cw + 4, num(dcol[std::size_t(r) * 9 + std::size_t(k)]), 11);
    }
  }
  svg.line(cx + 9 * cw + 8, top + 2 * cw, cx + 9 * cw + 52, top + 2 * cw, "#444", 1.5, true);
  svg.text(cx + 9 * cw + 30, top + 2 * cw - 8, "col2im", 11);
  // dx (5x5) and the coverage counts.
  auto grid = [&](double gx, const std::string& title, const std::vector<double>& v, bool shade) {
    const double cell = 34;
    svg.text(gx + 2.5 * cell, top - 30, title, 12);
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < 5; ++x) {
        const double n = cover[std::size_t(y * 5 + x)];
        const std::string fill = !shade ? "white" : n >= 4 ? "#9ecae1" : n >= 2 ? "#c6dbef" : n >= 1 ? "#eff3ff" : "#dddddd";
        svg.rect(gx + x * cell, top + y * cell, cell, cell, fill, "#999");
        svg.text(gx + (x + 0.5) * cell, top + (y + 0.5) * cell + 4, num(v[std::size_t(y * 5 + x)]), 11);
      }
    for (int r = 0; r < 4; ++r) {
      const double inset = 2 + 2.5 * r;
      svg.rect(gx + (r % 2) * 2 * cell + inset, top + (r / 2) * 2 * cell + inset, 3 * cell - 2 * inset,
               3 * cell - 2 * inset, "none", strong[r], 2);
    }
  };
  grid(560, "dx = col2im(dcol)", dx, false);
  grid(770, "windows holding each pixel", cover, true);
  svg.text(20, top + 5 * 34 + 40,
           "Row (oy, ox) of dcol is the gradient of the 9 pixels under window (oy, ox). col2im adds it back where im2col copied", 12,
           "start");
  svg.text(20, top + 5 * 34 + 58,
           "from: a pixel in one window gets one term, the pixels shared by two windows (stride 2 < kernel 3) get two, the", 12,
           "start");
  svg.text(20, top + 5 * 34 + 76,
           "centre pixel gets four. In index form: dx[iy, ix] = sum over (oy, ky) with 2*oy + ky = iy and (ox, kx) with", 12,
           "start");
  // The centre pixel's four terms, spelled out from the geometry.
  std::string terms;
  for (int r = 0; r < 4; ++r)
    for (int k = 0; k < 9; ++k)
      if ((r / 2) * 2 + k / 3 == 2 && (r % 2) * 2 + k % 3 == 2)
        terms += (terms.empty() ? "" : " + ") + std::string("(") + num(dy[r]) + ")(" + num(w[k]) + ")";
  svg.text(20, top + 5 * 34 + 94, "2*ox + kx = ix of dY[oy, ox] * w[ky, kx]. The centre: dx[2][2] = " + terms + " = " +
           num(dx[12]) + ".", 12, "start");
  return svg.str();
}

// ---- 3. max-pool: where the gradient goes -------------------------------------------------
std::string maxpool_figure() {
  using Pool = MaxPool<2>::bind<Shape<4, 4, 1>, float>;
  Pool pool;
  Tensor<float> x(1, 4, 4, 1), y, dy(1, 2, 2, 1), dx;
  const float values[16] = {1, 3, 2, 0, 4, 2, 1, 5, 0, 1, 7, 2, 6, 2, 3, 1};
  for (int i = 0; i < 16; ++i) x[std::size_t(i)] = values[i];
  pool.forward(x, y, Mode::train);
  const float grads[4] = {0.1f, -0.2f, 0.3f, 0.4f};
  for (int i = 0; i < 4; ++i) dy[std::size_t(i)] = grads[i];
  pool.backward(x, y, dy, &dx);

  const double cell = 36;
  Svg svg(900, 280);
  svg.text(10, 24, "MaxPool<2>: forward keeps each window's maximum; backward sends dy to that input only", 15, "start",
           "font-weight=\"bold\"");
  auto grid = [&](double gx, double gy, int n, const std::string& title, auto value, auto window, auto winner) {
    svg.text(gx + n * cell / 2, gy - 10, title, 12);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) {
        const int wdx = window(r, c);
        svg.rect(gx + c * cell, gy + r * cell, cell, cell, winner(r, c) ? light[wdx] : "white", "#999");
        svg.text(gx + (c + 0.5) * cell, gy + (r + 0.5) * cell + 5, value(r, c), 13, "middle",
                 winner(r, c) ? "font-weight=\"bold\"" : "fill=\"#777\"");
      }
    if (n == 4)
      for (int w = 0; w < 4; ++w)
        svg.rect(gx + (w % 2) * 2 * cell, gy + (w / 2) * 2 * cell, 2 * cell, 2 * cell, "none", strong[w], 2.5);
    else
      for (int w = 0; w < 4; ++w) svg.rect(gx + (w % 2) * cell, gy + (w / 2) * cell, cell, cell, "none", strong[w], 2.5);
  };
  auto win4 = [](int r, int c) { return (r / 2) * 2 + c / 2; };
  auto win2 = [](int r, int c) { return r * 2 + c; };
  auto is_max = [&](int r, int c) { return x[std::size_t(r * 4 + c)] == y[std::size_t(win4(r, c))]; };
  const double top = 70;
  grid(20, top, 4, "x (4x4)", [&](int r, int c) { return num(x[std::size_t(r * 4 + c)]); }, win4, is_max);
  svg.line(20 + 4 * cell + 8, top + 2 * cell, 20 + 4 * cell + 52, top + 2 * cell, "#444", 1.5, true);
  svg.text(20 + 4 * cell + 30, top + 2 * cell - 8, "max", 11);
  grid(240, top + cell, 2, "y (2x2)", [&](int r, int c) { return num(y[std::size_t(r * 2 + c)]); }, win2,
       [](int, int) { return true; });
  grid(430, top + cell, 2, "dy (given)", [&](int r, int c) { return num(dy[std::size_t(r * 2 + c)]); }, win2,
       [](int, int) { return true; });
  svg.line(430 + 2 * cell + 8, top + 2 * cell, 430 + 2 * cell + 52, top + 2 * cell, "#444", 1.5, true);
  svg.text(430 + 2 * cell + 30, top + 2 * cell - 8, "route", 11);
  grid(580, top, 4, "dx = MaxPoolLayer::backward", [&](int r, int c) { return num(dx[std::size_t(r * 4 + c)]); }, win4,
       is_max);
  svg.text(20, top + 4 * cell + 30,
           "dy/dx is 1 for the input that won its window and 0 for the others, so each dy lands on the remembered argmax.",
           12, "start");
  svg.text(20, top + 4 * cell + 48,
           "A row or column that no window covers (29 -> 14 drops row 28) gets zero gradient.", 12, "start");
  return svg.str();
}

// ---- 4. softmax + cross-entropy: the fused gradient ---------------------------------------
std::string softmax_figure() {
  Tensor<double> z(1, 1, 1, 10), dz;
  const double logits[10] = {0.2, -1.0, 2.1, 1.4, -0.3, 0.0, 0.8, -0.6, -1.5, 0.5};
  for (int i = 0; i < 10; ++i) z[std::size_t(i)] = logits[i];
  const int label[1] = {3};
  const BatchStats s = softmax_cross_entropy(z, label, LossOptions{}, &dz);
  // p = dz + t for one sample (N = 1).
  std::vector<double> p(10), t(10, 0.0);
  t[3] = 1;
  for (int i = 0; i < 10; ++i) p[std::size_t(i)] = dz[std::size_t(i)] + t[std::size_t(i)];

  // Four panels in two rows, every bar labelled with its value.
  Svg svg(820, 600);
  svg.text(10, 24, "Softmax + cross-entropy, one sample of class 3: d(loss)/d(logits) = p - t", 15, "start",
           "font-weight=\"bold\"");
  auto bars = [&](double px, double zero_y, const std::string& title, const std::vector<double>& v, double scale,
                  const char* colour, int digits) {
    const double bw = 36;
    svg.text(px + 5 * bw, zero_y - 110, title, 12);
    svg.line(px - 4, zero_y, px + 10 * bw + 4, zero_y, "#888");
    for (int i = 0; i < 10; ++i) {
      const double value = v[std::size_t(i)], h = value * scale;
      svg.rect(px + i * bw + 4, h >= 0 ? zero_y - h : zero_y, bw - 8, std::abs(h), i == 3 ? "#e41a1c" : colour, "none");
      char number[16];
      std::snprintf(number, sizeof number, "%.*f", digits, value);
      std::string text = number;
      if (text.rfind("-0.", 0) == 0 && std::stod(text) == 0) text = text.substr(1);  // no "-0.00"
      svg.text(px + (i + 0.5) * bw, h >= 0 ? zero_y - h - 4 : zero_y - h + 11, text, 9, "middle", "fill=\"#333\"");
    }
    for (int i = 0; i < 10; ++i) svg.text(px + (i + 0.5) * bw, zero_y + 106, std::to_string(i), 10, "middle", "fill=\"#666\"");
  };
  std::vector<double> zv(logits, logits + 10), g(10);
  for (int i = 0; i < 10; ++i) g[std::size_t(i)] = dz[std::size_t(i)];
  bars(20, 160, "logits z (dense_2 output)", zv, 30, "#b3cde3", 1);
  bars(420, 160, "p = softmax(z)", p, 150, "#ccebc5", 3);
  bars(20, 420, "t = one-hot(3)", t, 80, "#decbe4", 0);
  bars(420, 420, "p - t (what backward starts with)", g, 90, "#fed9a6", 3);
  char loss[64];
  std::snprintf(loss, sizeof loss, "%.3f", s.loss);
  svg.text(20, 570,
           std::string("loss = logsumexp(z) - z_3 = ") + loss + " = -log p_3. A step against this gradient raises z_3 and lowers",
           12, "start");
  svg.text(20, 588, "every other z_k in proportion to its probability: the confidently wrong z_2 most.", 12, "start");
  return svg.str();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::filesystem::path out = "docs/images";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--out" && i + 1 < argc) out = argv[++i];
      else if (a == "--help" || a == "-h") {
        std::cout << "usage: render_figures [--out DIR]   writes DIR/learn_*.svg (default docs/images)\n";
        return 0;
      } else {
        std::cerr << "render_figures: unknown argument '" << a << "' (try --help)\n";
        return 2;
      }
    }
    HUBBLE_CHECK(std::filesystem::is_directory(out), out.string(),
                 ": no such folder (run from the repository root, or pass --out DIR)");
    write_file(out / "learn_network_shapes.svg", network_figure());
    write_file(out / "learn_im2col.svg", im2col_figure());
    write_file(out / "learn_col2im.svg", col2im_figure());
    write_file(out / "learn_maxpool_routing.svg", maxpool_figure());
    write_file(out / "learn_softmax_gradient.svg", softmax_figure());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "render_figures: " << e.what() << "\n";
    return 1;
  }
}
