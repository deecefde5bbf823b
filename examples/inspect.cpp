// inspect — one image through the paper's network, with everything a learner wants to see:
// each layer's output shape and statistics, the prediction, the gradients of one training step,
// a finite-difference check of one layer with its numbers, and the conv layers' feature maps as
// PNG grids. docs/learn/ explains what the numbers mean.
//
//   inspect [--data FILE] [--index N] [--checkpoint FILE] [--out DIR] [--check-layer NAME] ...
//
// Without --data it uses data/Galaxy10_DECals.h5 or data/synthetic_galaxy10.h5 when present,
// otherwise it renders a synthetic galaxy (hubble/data/synthetic.hpp). The image is prepared as
// in training: centre crop to the central 128 of 256 pixels (the checkpoint's
// model/crop_fraction when one is given), resized to 128 x 128 if needed, pixels / 255.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "hubble/data/galaxy10.hpp"
#include "hubble/data/synthetic.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/io/png.hpp"
#include "hubble/model.hpp"  // prepare_image: the same preprocessing as galaxy10_classify
#include "hubble/paper_net.hpp"

namespace fs = std::filesystem;
using namespace hubble;

namespace {

struct Options {
  std::string data, checkpoint, out = "inspect-out", check_layer = "conv2d_4", figure;
  int index = 0;
  std::uint64_t seed = 1;
  int check_entries = 64;
  double check_step = 1e-4;
};

void usage(std::ostream& os) {
  os << "usage: inspect [options]\n"
        "Runs one image through the Galaxy10 paper's network (PaperNet) and prints each layer's output\n"
        "statistics, the gradients of one training step and a gradient check of one layer; writes the\n"
        "conv layers' feature maps as PNG grids. docs/learn/README.md explains the output.\n"
        "  --data FILE          Galaxy10 HDF5 file ('images' N x H x W x 3 uint8, 'ans'). Default:\n"
        "                       data/Galaxy10_DECals.h5 or data/synthetic_galaxy10.h5 when present,\n"
        "                       else a synthetic galaxy rendered on the spot\n"
        "  --index N            which image of the file (default 0); for a rendered galaxy, image N of\n"
        "                       the synthetic set, whose class is N % 10\n"
        "  --checkpoint FILE    load PaperNet weights (e.g. runs/x/best.h5 from galaxy10_train);\n"
        "                       default: freshly initialised weights\n"
        "  --seed N             seed of the fresh weights and of the dropout masks (default 1)\n"
        "  --out DIR            folder for the PNGs (default inspect-out; created)\n"
        "  --check-layer NAME   layer to gradient-check, by name (default conv2d_4; any of conv2d_1..4,\n"
        "                       re_lu_1..5, max_pool_1..4, flatten_1, dropout_1..2, dense_1..2)\n"
        "  --check-entries N    entries probed per array in the check (default 64; 0 = all)\n"
        "  --check-step H       finite-difference step (default 1e-4: every layer but softmax is linear in\n"
        "                       any single input or weight between kinks, so a larger step adds no\n"
        "                       truncation error and divides the rounding error by 100 vs 1e-6)\n"
        "  --figure FILE        also write conv2d_1's feature-map grid to FILE (docs/images uses it)\n"
        "  --help               this text\n";
}

long long parse_int(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw Error(flag + ": '" + v + "' is not an integer");
}

// ---- the image --------------------------------------------------------------------------
struct Picture {
  std::vector<std::uint8_t> rgb;  // 128 x 128 x 3, as the network sees it (before / 255)
  int label = -1;
  std::string source;
};

Picture load_picture(const Options& o, double crop_fraction_override) {
  Picture pic;
  data::ImageSet set;
  std::string data = o.data;
  if (data.empty())
    for (const char* candidate : {"data/Galaxy10_DECals.h5", "data/synthetic_galaxy10.h5"})
      if (fs::exists(candidate)) { data = candidate; break; }
  HUBBLE_CHECK(o.index >= 0, "--index: ", o.index, " is negative");
  if (!data.empty()) {
    data::LoadOptions lo;
    lo.crop = 0;  // keep the full image: prepare_image crops exactly as training did
    lo.limit = std::size_t(o.index) + 1;
    set = data::load_galaxy10(data, lo);
    HUBBLE_CHECK(o.index < set.size(), data, ": has ", set.size(), " images, --index ", o.index, " is past the end");
    pic.source = data + ", image " + std::to_string(o.index);
  } else {
    set = data::make_synthetic_galaxy10({.count = o.index + 1, .side = 256, .seed = 1});
    pic.source = "synthetic galaxy " + std::to_string(o.index) + " (rendered; no data file found)";
  }
  pic.label = set.labels[std::size_t(o.index)];
  const int side = std::min(set.height, set.width);
  // Training crops the central 128 pixels (galaxy10_train --crop 128) and resizes to 128.
  const double crop_fraction = crop_fraction_override > 0 ? crop_fraction_override : std::min(1.0, 128.0 / side);
  pic.rgb = prepare_image(set.image(o.index), set.width, set.height, set.channels, 128, crop_fraction);
  return pic;
}

// ---- statistics and pictures --------------------------------------------------------------
struct Stats {
  double min = 0, mean = 0, max = 0, zeros = 0, norm = 0;
};
template <class T>
Stats stats(const T* v, std::size_t n) {
  Stats s;
  if (n == 0) return s;
  s.min = std::numeric_limits<double>::infinity();
  s.max = -s.min;
  double sum = 0, sq = 0, zeros = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = double(v[i]);
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    sum += x;
    sq += x * x;
    zeros += x == 0;
  }
  s.mean = sum / double(n);
  s.zeros = zeros / double(n);
  s.norm = std::sqrt(sq);
  return s;
}

std::string shape_of(const Tensor<float>& t) {
  if (t.height() == 1 && t.width() == 1) return std::to_string(t.batch()) + "x" + std::to_string(t.channels());
  return std::to_string(t.batch()) + "x" + std::to_string(t.height()) + "x" + std::to_string(t.width()) + "x" +
         std::to_string(t.channels());
}

// The channels of one sample's H x W x C activation as a grid of grey tiles, each scaled by its own
// maximum (0 is black; a map that is all zero stays black), enlarged to about `cell` pixels.
void write_feature_grid(const std::string& path, const Tensor<float>& a, int cell = 112) {
  const int H = a.height(), W = a.width(), C = a.channels();
  const int zoom = std::max(1, (cell + std::max(H, W) / 2) / std::max(H, W));  // nearest-neighbour enlargement
  const int cols = C <= 32 ? 8 : 16, rows = (C + cols - 1) / cols, gap = 2;
  const int tile_h = H * zoom, tile_w = W * zoom;
  const int img_w = cols * tile_w + (cols + 1) * gap, img_h = rows * tile_h + (rows + 1) * gap;
  std::vector<std::uint8_t> px(std::size_t(img_w) * img_h * 3, 70);  // grey gaps
  for (int ch = 0; ch < C; ++ch) {
    float top = 0;
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) top = std::max(top, a(0, y, x, ch));
    const int ox = gap + (ch % cols) * (tile_w + gap), oy = gap + (ch / cols) * (tile_h + gap);
    for (int y = 0; y < tile_h; ++y)
      for (int x = 0; x < tile_w; ++x) {
        const float v = top > 0 ? std::max(0.f, a(0, y / zoom, x / zoom, ch)) / top : 0.f;
        std::uint8_t* p = &px[(std::size_t(oy + y) * img_w + ox + x) * 3];
        p[0] = p[1] = p[2] = std::uint8_t(std::lround(255 * v));
      }
  }
  io::write_png(path, img_w, img_h, 3, px);
}

void print_row(const char* a, const char* b, const char* c, const Stats& s, bool zeros = true) {
  std::printf("%-3s %-13s %-15s %11.4g %11.4g %11.4g", a, b, c, s.min, s.mean, s.max);
  if (zeros) std::printf(" %6.1f%%", 100 * s.zeros);
  std::printf("\n");
}

// ---- the gradient check of one layer, in double -------------------------------------------
using DoubleNet = PaperNetT<double>;

// Central differences for a few entries, written out so their numbers can be printed: the same
// scalar L = sum(r * y) that check_layer_gradients uses.
template <class Layer>
void show_entries(const Layer& layer, const Tensor<double>& x, double h) {
  Rng rng(99);
  Layer work = layer;
  Tensor<double> y, dx;
  work.forward(x, y, Mode::eval);
  Tensor<double> r(y.batch(), y.height(), y.width(), y.channels());
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = rng.uniform(-1, 1);
  work.backward(x, y, r, &dx);
  auto L = [&](const Tensor<double>& in, const std::string& param, std::size_t idx, double delta) {
    Layer l = layer;
    l.for_each_parameter([&](const char* name, double* v, double*, std::size_t) {
      if (name == param) v[idx] += delta;
    });
    Tensor<double> out;
    l.forward(in, out, Mode::eval);
    double s = 0;
    for (std::size_t i = 0; i < out.size(); ++i) s += out[i] * r[i];
    return s;
  };
  std::printf("    %-16s %16s %16s %11s\n", "entry", "analytic", "numeric", "rel. error");
  auto show = [&](const std::string& what, double a, double n) {
    const double rel = std::abs(a - n) / std::max(std::abs(a) + std::abs(n), 1e-7);
    std::printf("    %-16s %16.9g %16.9g %11.2e\n", what.c_str(), a, n, rel);
  };
  // The entries with the largest analytic gradient, and one more from the middle of each array.
  auto pick = [](const double* g, std::size_t n) {
    std::size_t big = 0;
    for (std::size_t i = 1; i < n; ++i)
      if (std::abs(g[i]) > std::abs(g[big])) big = i;
    std::size_t other = n / 2;
    for (std::size_t k = 0; k < n && g[other] == 0; ++k) other = (n / 2 + k * 7919) % n;  // a non-zero one
    return std::vector<std::size_t>{big, other};
  };
  Tensor<double> xp = x;
  for (std::size_t i : pick(dx.data(), dx.size())) {
    const double keep = xp[i];
    xp[i] = keep + h; const double up = L(xp, "", 0, 0);
    xp[i] = keep - h; const double down = L(xp, "", 0, 0);
    xp[i] = keep;
    show("input[" + std::to_string(i) + "]", dx[i], (up - down) / (2 * h));
  }
  work.for_each_parameter([&](const char* name, double*, double* grad, std::size_t n) {
    for (std::size_t i : pick(grad, n)) {
      const double num = (L(x, name, i, h) - L(x, name, i, -h)) / (2 * h);
      show(std::string(name) + "[" + std::to_string(i) + "]", grad[i], num);
    }
  });
}

void gradient_check(PaperNet& net, const Tensor<float>& x, const Options& o) {
  // The same weights in double: finite differences need double's 16 digits (docs/learn/7-gradient-check.md).
  DoubleNet dnet(o.seed);
  auto from = net.parameters();
  auto to = dnet.parameters();
  for (std::size_t p = 0; p < from.size(); ++p) std::copy(from[p].value, from[p].value + from[p].size, to[p].value);
  Tensor<double> xd(x.batch(), x.height(), x.width(), x.channels());
  for (std::size_t i = 0; i < x.size(); ++i) xd[i] = x[i];
  dnet.forward(xd, Mode::eval);

  const auto& names = DoubleNet::layer_names();
  const auto it = std::find(names.begin(), names.end(), o.check_layer);
  HUBBLE_CHECK(it != names.end(), "--check-layer: no layer named '", o.check_layer, "' (see --help)");
  const std::size_t chosen = std::size_t(it - names.begin());
  const Tensor<double>& input = chosen == 0 ? xd : dnet.activation(chosen - 1);
  dnet.for_each_layer([&](auto& layer, std::size_t i) {
    if (i != chosen) return;
    GradientCheckOptions opt;
    opt.max_entries = std::size_t(o.check_entries);
    opt.mode = Mode::eval;  // dropout as the identity: the check then sees the inference function
    opt.step = o.check_step;
    const GradientCheckResult r = check_layer_gradients(layer, input, opt);
    std::printf("  %s (%s), input %dx%dx%dx%d, scalar L = sum(r * y) with random r:\n", names[i].c_str(),
                std::remove_reference_t<decltype(layer)>::spec().c_str(), input.batch(), input.height(), input.width(),
                input.channels());
    std::printf("    entries checked %zu, worst relative error %.3g at %s, worst absolute error %.3g -> %s\n",
                r.entries_checked, r.max_relative_error, r.worst.c_str(), r.max_absolute_error,
                r.passed(1e-6) ? "PASSED (tolerance 1e-6)" : "NOT passed at 1e-6");
    if (!r.passed(1e-6) && (names[i].rfind("max_pool", 0) == 0 || names[i].rfind("re_lu", 0) == 0))
      std::printf("    (a ReLU at exactly 0 or a pooling window of equal values, e.g. all zeros after a ReLU, is a\n"
                  "     kink where the derivative does not exist; finite differences then disagree by design)\n");
    else if (!r.passed(1e-6) && r.max_absolute_error < 1e-9)
      std::printf("    (the absolute error is below 1e-9: rounding on gradients that are themselves tiny, e.g. the\n"
                  "     softmax of a confident network with p ~ 1e-5, not a wrong derivative)\n");
    std::printf("  a few entries, by hand (h = %g):\n", o.check_step);
    show_entries(layer, input, o.check_step);
  });
}

int run(const Options& o) {
  // ---- the network
  PaperNet net(o.seed);
  net.set_fusion(false);  // keep every layer's output and gradient (fused pairs skip two of them)
  double crop_fraction = -1;
  std::printf("== network: PaperNet, %zu parameters\n", PaperNet::parameter_count);
  if (!o.checkpoint.empty()) {
    const CheckpointData d = load_checkpoint(o.checkpoint, net);
    const std::string cf = d.meta("model/crop_fraction");
    if (!cf.empty()) crop_fraction = std::stod(cf);
    std::printf("  weights: %s (epoch %lld)\n", o.checkpoint.c_str(), d.epoch);
  } else {
    std::printf("  weights: freshly initialised (Glorot uniform, seed %llu)\n", (unsigned long long)o.seed);
  }

  // ---- the image
  const Picture pic = load_picture(o, crop_fraction);
  fs::create_directories(o.out);
  io::write_png((fs::path(o.out) / "input.png").string(), 128, 128, 3, pic.rgb);
  std::printf("\n== image: %s\n  class %d (%s); network input 1x128x128x3, pixels / 255\n", pic.source.c_str(),
              pic.label, data::galaxy10_class_names[std::size_t(pic.label)]);
  Tensor<float> x(1, 128, 128, 3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(pic.rgb[i]) / 255.0f;

  // ---- forward, eval mode
  net.forward(x, Mode::eval);
  const auto& names = PaperNet::layer_names();
  std::printf("\n== forward (eval mode: dropout is the identity)\n");
  std::printf("%-3s %-13s %-15s %11s %11s %11s %7s\n", "#", "layer", "output", "min", "mean", "max", "zeros");
  print_row("-", "input", shape_of(x).c_str(), stats(x.data(), x.size()));
  for (std::size_t i = 0; i < PaperNet::layer_count; ++i) {
    const Tensor<float>& a = net.activation(i);
    print_row(std::to_string(i).c_str(), names[i].c_str(), shape_of(a).c_str(), stats(a.data(), a.size()));
  }
  const Tensor<float>& p = net.activation(PaperNet::layer_count - 1);
  std::vector<int> order(10);
  for (int k = 0; k < 10; ++k) order[std::size_t(k)] = k;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return p[std::size_t(a)] > p[std::size_t(b)]; });
  std::printf("  prediction:");
  for (int k = 0; k < 3; ++k)
    std::printf(" %s %.1f%%%s", data::galaxy10_class_names[std::size_t(order[std::size_t(k)])],
                100 * p[std::size_t(order[std::size_t(k)])], k < 2 ? "," : "\n");

  // ---- feature maps (the conv layers' outputs after their ReLU, as Keras shows Conv2D+ReLU)
  std::printf("\n== feature maps (after each conv's ReLU; each tile scaled to its own maximum, black = 0)\n");
  const std::size_t relu_of_conv[4] = {1, 4, 7, 10};
  for (int c = 0; c < 4; ++c) {
    const std::string file = (fs::path(o.out) / ("conv2d_" + std::to_string(c + 1) + ".png")).string();
    write_feature_grid(file, net.activation(relu_of_conv[c]));
    std::printf("  %s\n", file.c_str());
  }
  if (!o.figure.empty()) {
    write_feature_grid(o.figure, net.activation(1));
    std::printf("  %s\n", o.figure.c_str());
  }
  std::printf("  %s\n", (fs::path(o.out) / "input.png").string().c_str());

  // ---- one training step on this image
  std::printf("\n== one training step (train mode: dropout on; batch of this one image, label %d; Adam lr 1e-3)\n",
              pic.label);
  const int labels[1] = {pic.label};
  const BatchStats s = net.compute_gradients(x, labels);
  std::printf("  loss %.4f (= -ln p(true class) = -ln %.4f)\n", s.loss, std::exp(-s.loss));
  std::printf("  gradient reaching each layer's output, |dL/d output|:\n   ");
  for (std::size_t i = 0; i + 2 < PaperNet::layer_count; ++i) {
    const Tensor<float>& g = net.activation_gradient(i);
    std::printf(" %s %.3g%s", names[i].c_str(), stats(g.data(), g.size()).norm, i % 5 == 4 ? "\n   " : ",");
  }
  std::printf(" (dense_2: the fused softmax-cross-entropy gradient p - t)\n");
  auto params = net.parameters();
  std::vector<std::vector<float>> before;
  for (const auto& q : params) before.emplace_back(q.value, q.value + q.size);
  Adam<float> adam;
  adam.step(params);
  std::printf("  %-16s %8s %10s %11s %11s %11s\n", "parameters", "size", "|w|", "|dL/dw|", "rms dL/dw", "|step|");
  for (std::size_t k = 0; k < params.size(); ++k) {
    const auto& q = params[k];
    double step = 0;
    for (std::size_t i = 0; i < q.size; ++i) step += double(q.value[i] - before[k][i]) * (q.value[i] - before[k][i]);
    const Stats w = stats(before[k].data(), q.size), g = stats(q.grad, q.size);
    std::printf("  %-16s %8zu %10.4g %11.4g %11.4g %11.4g\n", q.name.c_str(), q.size, w.norm, g.norm,
                g.norm / std::sqrt(double(q.size)), std::sqrt(step));
  }
  std::printf("  (Adam's first step moves every weight with a non-zero gradient by about lr = 1e-3, so\n"
              "   |step| ~ 1e-3 * sqrt(size) whatever the gradient's scale: docs/learn/6-adam.md)\n");

  // ---- gradient check of one layer (on the weights before the step)
  auto now = net.parameters();
  for (std::size_t k = 0; k < now.size(); ++k) std::copy(before[k].begin(), before[k].end(), now[k].value);
  std::printf("\n== gradient check of one layer, in double (hubble::check_layer_gradients)\n");
  gradient_check(net, x, o);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") { usage(std::cout); return 0; }
      const bool takes_value = a == "--data" || a == "--index" || a == "--checkpoint" || a == "--out" ||
                               a == "--check-layer" || a == "--seed" || a == "--figure" || a == "--check-entries" ||
                               a == "--check-step";
      if (!takes_value) { std::cerr << "inspect: unknown argument '" << a << "' (try --help)\n"; return 2; }
      if (i + 1 >= argc) { std::cerr << "inspect: " << a << " needs a value\n"; return 2; }
      const std::string v = argv[++i];
      if (a == "--data") o.data = v;
      else if (a == "--index") o.index = int(parse_int(a, v));
      else if (a == "--checkpoint") o.checkpoint = v;
      else if (a == "--out") o.out = v;
      else if (a == "--check-layer") o.check_layer = v;
      else if (a == "--seed") o.seed = std::uint64_t(parse_int(a, v));
      else if (a == "--figure") o.figure = v;
      else if (a == "--check-entries") o.check_entries = int(parse_int(a, v));
      else if (a == "--check-step") {
        std::size_t used = 0;
        try { o.check_step = std::stod(v, &used); } catch (const std::exception&) { used = 0; }
        HUBBLE_CHECK(used == v.size() && o.check_step > 0 && o.check_step < 1, "--check-step: '", v,
                     "' is not a number in (0, 1)");
      }
    }
    HUBBLE_CHECK(o.check_entries >= 0, "--check-entries: ", o.check_entries, " is negative");
    const auto& layers = PaperNet::layer_names();  // checked now, not after a minute of work
    HUBBLE_CHECK(std::find(layers.begin(), layers.end(), o.check_layer) != layers.end(), "--check-layer: no layer named '",
                 o.check_layer, "' (see --help)");
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "inspect: " << e.what() << "\n";
    return 1;
  }
}
