// galaxy10_classify — classifies galaxy pictures (PNG, JPEG, BMP, TGA, ...; any size) with a
// checkpoint written by galaxy10_train, through the type-erased hubble::Model.
//
//   galaxy10_classify runs/x/best.h5 galaxy.jpg                 top-3 classes with probabilities
//   galaxy10_classify runs/x/best.h5 cutouts/ --csv out.csv     every picture in a folder, one CSV row each
//
// Each picture is centre-cropped to a square, then to the central part the training crop kept
// (the checkpoint's model/crop_fraction: 0.5 for Galaxy10's 128 of 256 pixels; --crop-fraction
// overrides), and resized to the network's 128 x 128 input by area averaging. Pictures that
// cannot be read are reported on stderr and skipped.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#pragma GCC diagnostic pop

#include "hubble/io/text_file.hpp"
#include "hubble/model.hpp"

namespace fs = std::filesystem;

namespace {

void usage(std::ostream& os) {
  os << "usage: galaxy10_classify CHECKPOINT IMAGE|FOLDER... [--csv FILE] [--top K] [--crop-fraction F]\n"
        "\n"
        "Classifies pictures with a checkpoint from galaxy10_train (best.h5 or last.h5).\n"
        "  IMAGE             a PNG, JPEG, BMP, TGA, GIF, PSD, PNM or HDR picture of any size\n"
        "  FOLDER            every picture directly inside it, in name order\n"
        "  --csv FILE        also write one row per picture: file, predicted class, its probability,\n"
        "                    then the probability of every class\n"
        "  --top K           classes to print per picture (default 3)\n"
        "  --crop-fraction F keep the central F of the square crop before resizing (default: what the\n"
        "                    checkpoint's training used, 0.5 for 128-pixel crops of 256-pixel cut-outs;\n"
        "                    1 = the whole square)\n"
        "Unreadable pictures are reported on stderr and skipped. Exit status: 0 when at least one\n"
        "picture was classified, 1 when none was (or the checkpoint is unusable), 2 for a bad command line.\n";
}

bool is_picture(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (const char* e : {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".gif", ".psd", ".pnm", ".ppm", ".pgm", ".hdr", ".pic"})
    if (ext == e) return true;
  return false;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The whole of `v` as a number, or std::invalid_argument naming it.
double number(const std::string& v) {
  std::size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (v.empty() || used != v.size()) throw std::invalid_argument("'" + v + "' is not a number");
  return x;
}

int run(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string csv, checkpoint;
  int top = 3;
  double crop_fraction = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&](const char* what) -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value (" + what + ")");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(std::cout);
      return 0;
    } else if (a == "--csv") {
      csv = value("FILE");
    } else if (a == "--top") {
      const std::string v = value("K");
      top = int(number(v));
      if (double(top) != number(v) || top < 1) throw std::invalid_argument("--top needs a positive whole number, not " + v);
    } else if (a == "--crop-fraction") {
      const std::string v = value("F");
      crop_fraction = number(v);
      if (!(crop_fraction > 0 && crop_fraction <= 1))
        throw std::invalid_argument("--crop-fraction needs a number in (0, 1], not " + v);
    } else if (a.rfind("--", 0) == 0) {
      throw std::invalid_argument("unknown option " + a);
    } else if (checkpoint.empty()) {
      checkpoint = a;
    } else {
      inputs.push_back(a);
    }
  }
  if (checkpoint.empty() || inputs.empty()) throw std::invalid_argument("needs a checkpoint and at least one picture or folder");

  const hubble::Model model = hubble::Model::load(checkpoint);
  if (crop_fraction < 0) crop_fraction = std::stod(model.metadata("model/crop_fraction", "1"));
  const int side = model.input_height();
  HUBBLE_CHECK(model.input_width() == side && model.input_channels() == 3, checkpoint,
               ": galaxy10_classify needs a square RGB network, this one takes ", model.input_height(), "x",
               model.input_width(), "x", model.input_channels());
  const std::vector<std::string>& names = model.class_names();
  top = std::min(top, model.classes());

  // The pictures: files as given, folders expanded (name order).
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(in, ec))
        if (e.is_regular_file() && is_picture(e.path())) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      if (found.empty()) std::cerr << "galaxy10_classify: " << in << ": no pictures in this folder\n";
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(in);
    }
  }

  std::string table = "file,prediction,probability";
  for (const std::string& n : names) table += "," + csv_field("p_" + n);
  table += "\n";
  int done = 0, skipped = 0;
  std::size_t name_w = 0;
  for (const std::string& n : names) name_w = std::max(name_w, n.size());
  for (const std::string& file : files) {
    int w = 0, h = 0, channels = 0;
    stbi_uc* pixels = stbi_load(file.c_str(), &w, &h, &channels, 0);
    if (!pixels) {
      std::cerr << "galaxy10_classify: skipping " << file << ": " << (fs::exists(file) ? stbi_failure_reason() : "no such file")
                << "\n";
      ++skipped;
      continue;
    }
    std::vector<std::uint8_t> input;
    try {
      input = hubble::prepare_image(pixels, w, h, channels, side, crop_fraction);
    } catch (const hubble::Error& e) {
      stbi_image_free(pixels);
      std::cerr << "galaxy10_classify: skipping " << file << ": " << e.what() << "\n";
      ++skipped;
      continue;
    }
    stbi_image_free(pixels);
    const std::vector<float> p = model.predict(std::span<const std::uint8_t>(input));
    std::vector<int> order(p.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = int(k);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[std::size_t(a)] > p[std::size_t(b)]; });
    const int crop = int(std::min(w, h) * crop_fraction + 0.5);
    std::printf("%s  (%dx%d, centre %dx%d -> %dx%d)\n", file.c_str(), w, h, crop, crop, side, side);
    for (int k = 0; k < top; ++k) {
      const int c = order[std::size_t(k)];
      std::printf("  %d. %-*s %.3f\n", k + 1, int(name_w), names[std::size_t(c)].c_str(), p[std::size_t(c)]);
    }
    table += csv_field(file) + "," + csv_field(names[std::size_t(order[0])]);
    char buf[32];
    std::snprintf(buf, sizeof buf, ",%.6f", p[std::size_t(order[0])]);
    table += buf;
    for (const float v : p) {
      std::snprintf(buf, sizeof buf, ",%.6f", v);
      table += buf;
    }
    table += "\n";
    ++done;
  }
  if (!csv.empty()) {
    hubble::io::write_text_atomically(csv, table);
    std::printf("wrote %s (%d rows)\n", csv.c_str(), done);
  }
  if (skipped > 0) std::fprintf(stderr, "galaxy10_classify: %d of %zu pictures skipped\n", skipped, files.size());
  return done > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "galaxy10_classify: " << e.what() << "\n\n";
    usage(std::cerr);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "galaxy10_classify: error: " << e.what() << "\n";
    return 1;
  }
}
