// contact_sheet: one row per Galaxy10 class, a few synthetic galaxies beside a few real ones,
// written as a PNG, to judge by eye whether the synthetic classes look like their real models.
//   contact_sheet --out docs/images/contact_sheet.png [--real FILE] [--synthetic FILE] [--seed K]
//                 [--per-class N] [--thumb PX] [--crop PX]
// Without --synthetic the synthetic images are rendered in memory (seed K). Without a readable
// --real file (default ../shared/data/galaxy10_real_train.h5) the sheet shows synthetic ones only.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "hubble/data/galaxy10.hpp"
#include "hubble/data/synthetic.hpp"
#include "hubble/io/png.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

namespace {

using hubble::data::ImageSet;

struct Rgb8 {
  std::uint8_t r, g, b;
};

class Sheet {
 public:
  Sheet(int w, int h, Rgb8 background) : w_(w), h_(h), px_(std::size_t(w) * h * 3) {
    for (std::size_t i = 0; i < px_.size(); i += 3) {
      px_[i] = background.r; px_[i + 1] = background.g; px_[i + 2] = background.b;
    }
  }
  void rect(double x0, double y0, double x1, double y1, Rgb8 c) {
    const int xa = std::max(0, int(x0 + 0.5)), xb = std::min(w_, int(x1 + 0.5));
    const int ya = std::max(0, int(y0 + 0.5)), yb = std::min(h_, int(y1 + 0.5));
    for (int y = ya; y < yb; ++y)
      for (int x = xa; x < xb; ++x) {
        std::uint8_t* p = px_.data() + (std::size_t(y) * w_ + x) * 3;
        p[0] = c.r; p[1] = c.g; p[2] = c.b;
      }
  }
  // Text with stb_easy_font (quads of a 7-px-high bitmap font), scaled by `scale`.
  void text(double x, double y, const std::string& s, double scale, Rgb8 c) {
    std::vector<char> buffer(s.size() * 300 + 1000);
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buffer.data(), int(buffer.size()));
    for (int q = 0; q < quads; ++q) {
      const float* v0 = reinterpret_cast<const float*>(buffer.data() + q * 64);        // top-left vertex
      const float* v2 = reinterpret_cast<const float*>(buffer.data() + q * 64 + 32);   // bottom-right vertex
      rect(x + v0[0] * scale, y + v0[1] * scale, x + v2[0] * scale, y + v2[1] * scale, c);
    }
  }
  static int text_width(const std::string& s, double scale) {
    std::string copy = s;
    return int(stb_easy_font_width(copy.data()) * scale + 0.5);
  }
  // Pastes image i of `set`, reduced to thumb x thumb by averaging boxes of source pixels.
  void thumbnail(const ImageSet& set, int i, int x0, int y0, int thumb) {
    const double fy = double(set.height) / thumb, fx = double(set.width) / thumb;
    for (int ty = 0; ty < thumb; ++ty)
      for (int tx = 0; tx < thumb; ++tx) {
        const int ya = int(ty * fy), yb = std::max(ya + 1, int((ty + 1) * fy));
        const int xa = int(tx * fx), xb = std::max(xa + 1, int((tx + 1) * fx));
        double sum[3] = {0, 0, 0};
        for (int y = ya; y < yb; ++y)
          for (int x = xa; x < xb; ++x)
            for (int c = 0; c < 3; ++c) sum[c] += set.image(i)[(std::size_t(y) * set.width + x) * 3 + c];
        const double n = double(yb - ya) * (xb - xa);
        std::uint8_t* p = px_.data() + (std::size_t(y0 + ty) * w_ + x0 + tx) * 3;
        for (int c = 0; c < 3; ++c) p[c] = std::uint8_t(sum[c] / n + 0.5);
      }
  }
  const std::vector<std::uint8_t>& pixels() const { return px_; }
  int width() const { return w_; }
  int height() const { return h_; }

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;
};

// `n` images of class c spread evenly over that class's images in `set`.
std::vector<int> pick(const ImageSet& set, int c, int n) {
  std::vector<int> members;
  for (int i = 0; i < set.size(); ++i)
    if (set.labels[std::size_t(i)] == c) members.push_back(i);
  std::vector<int> out;
  for (int k = 0; k < n && !members.empty() && k < int(members.size()); ++k)
    out.push_back(members[std::size_t(k) * members.size() / std::size_t(std::min<int>(n, int(members.size())))]);
  return out;
}

// A bad command line (exit status 2), as opposed to a failure while making the sheet (1).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The value of `option` as a whole number in [lo, hi], nothing else ("-3", "12px", "1e3" and
// numbers out of range are usage errors naming the option).
template <class Int>
Int whole_number(const std::string& option, const std::string& v, Int lo, Int hi) {
  Int x{};
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  const bool whole = !v.empty() && ptr == end && ec != std::errc::invalid_argument;
  if (!whole) throw UsageError(option + " needs a whole number, not '" + v + "'");
  if (ec == std::errc::result_out_of_range || x < lo || x > hi)
    throw UsageError(option + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", not " + v);
  return x;
}

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: contact_sheet --out FILE.png [--real FILE] [--synthetic FILE] [--seed K] [--per-class N]\n"
               "                     [--thumb PX] [--crop PX]\n"
               "  One row per class: N synthetic galaxies, then N real ones, centre-cropped and shrunk.\n"
               "  --real FILE       real Galaxy10 file (default ../shared/data/galaxy10_real_train.h5; skipped if absent)\n"
               "  --synthetic FILE  synthetic file to show (default: render 10*N images with --seed, default 1)\n"
               "  --per-class N     images per class and kind (default 4)\n"
               "  --thumb PX        thumbnail side (default 64)\n"
               "  --crop PX         centre crop before shrinking (default 128, the training crop)\n"
               "exit status: 0 written, 1 error (unreadable file, crop larger than the images, ...), 2 bad command line\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string out, real_path = "../shared/data/galaxy10_real_train.h5", synthetic_path;
    std::uint64_t seed = 1;
    int per_class = 4, thumb = 64, crop = 128;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        usage(stdout);
        return 0;
      }
      if (arg != "--out" && arg != "--real" && arg != "--synthetic" && arg != "--seed" && arg != "--per-class" &&
          arg != "--thumb" && arg != "--crop")
        throw UsageError("unknown argument '" + arg + "'");
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      const std::string value = argv[++i];
      if (value.empty()) throw UsageError(arg + " needs a value, not an empty string");
      if (arg == "--out") out = value;
      else if (arg == "--real") real_path = value;
      else if (arg == "--synthetic") synthetic_path = value;
      else if (arg == "--seed") seed = whole_number<std::uint64_t>(arg, value, 0, std::numeric_limits<std::uint64_t>::max());
      else if (arg == "--per-class") per_class = whole_number(arg, value, 1, 32);
      else if (arg == "--thumb") thumb = whole_number(arg, value, 8, 512);
      else crop = whole_number(arg, value, 1, 100000);
    }
    if (out.empty()) throw UsageError("--out FILE.png is required");

    const hubble::data::LoadOptions crop_only{.crop = crop};
    ImageSet synthetic;
    if (synthetic_path.empty()) {
      synthetic = hubble::data::centre_crop(
          hubble::data::make_synthetic_galaxy10({.count = 10 * per_class, .side = 256, .seed = seed}), crop);
    } else {
      synthetic = hubble::data::load_galaxy10(synthetic_path, crop_only);
    }
    ImageSet real;
    if (std::filesystem::exists(real_path)) real = hubble::data::load_galaxy10(real_path, crop_only);
    else std::fprintf(stderr, "contact_sheet: %s not found; showing synthetic images only\n", real_path.c_str());

    const Rgb8 background{18, 18, 22}, ink{225, 225, 225}, dim{150, 150, 160};
    const double label_scale = 1.5, header_scale = 2;
    int label_w = 0;
    for (int c = 0; c < 10; ++c)
      label_w = std::max(label_w, Sheet::text_width(std::to_string(c) + " " + hubble::data::galaxy10_class_names[std::size_t(c)], label_scale));
    const int margin = 10, gap = 2, group_gap = 14, header_h = 30;
    const int left = margin + label_w + margin;
    const int groups = real.size() > 0 ? 2 : 1;
    const int group_w = per_class * thumb + (per_class - 1) * gap;
    const std::string synthetic_title = synthetic_path.empty() ? "synthetic (seed " + std::to_string(seed) + ")"
                                                               : "synthetic";
    const std::string real_title = "real (" + std::filesystem::path(real_path).stem().string() + ")";
    const int group2_w = std::max(group_w, Sheet::text_width(real_title, header_scale));
    const int width = left + group_w + (groups == 2 ? group_gap + group2_w : 0) + margin;
    const int height = header_h + 10 * thumb + 9 * gap + margin;
    Sheet sheet(width, height, background);
    sheet.text(left, 8, synthetic_title, header_scale, ink);
    if (groups == 2) sheet.text(left + group_w + group_gap, 8, real_title, header_scale, ink);
    for (int c = 0; c < 10; ++c) {
      const int y = header_h + c * (thumb + gap);
      sheet.text(margin, y + thumb / 2 - 5, std::to_string(c) + " " + hubble::data::galaxy10_class_names[std::size_t(c)],
                 label_scale, c % 2 ? dim : ink);
      const std::vector<int> s = pick(synthetic, c, per_class);
      for (std::size_t k = 0; k < s.size(); ++k) sheet.thumbnail(synthetic, s[k], left + int(k) * (thumb + gap), y, thumb);
      if (groups == 2) {
        const std::vector<int> r = pick(real, c, per_class);
        for (std::size_t k = 0; k < r.size(); ++k)
          sheet.thumbnail(real, r[k], left + group_w + group_gap + int(k) * (thumb + gap), y, thumb);
      }
    }
    hubble::io::write_png(out, sheet.width(), sheet.height(), 3, sheet.pixels());
    std::printf("wrote %s (%d x %d): %d synthetic%s per class\n", out.c_str(), width, height, per_class,
                groups == 2 ? " and real" : "");
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "contact_sheet: %s (try --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "contact_sheet: %s\n", e.what());
    return 1;
  }
}
