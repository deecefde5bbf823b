// galaxy10_classify — classifies galaxy pictures (PNG, JPEG, BMP, TGA, ...; any size) with a
// checkpoint written by galaxy10_train, through the type-erased hubble::Model.
//
//   galaxy10_classify runs/x/best.h5 galaxy.jpg                 top-3 classes with probabilities
//   galaxy10_classify runs/x/best.h5 cutouts/ --csv out.csv     every picture in a folder, one CSV row each
//
// Each picture is centre-cropped to a square, then to the central part the training crop kept
// (the checkpoint's model/crop_fraction: 0.5 for Galaxy10's 128 of 256 pixels; --crop-fraction
// overrides), and resized to the network's 128 x 128 input by area averaging. Pictures are read
// with io::read_picture, which refuses FIFOs, devices, folders, symbolic link loops and oversized
// pictures with a named error: each picture that cannot be classified is reported on stderr and
// skipped, the others are classified, and the exit status says whether any was skipped.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "hubble/io/picture.hpp"
#include "hubble/io/text_file.hpp"
#include "hubble/model.hpp"
#if HUBBLE_CLASSIFY_ONNX  // built with hubble::onnx: CHECKPOINT may be an .onnx model
#include "hubble/onnx/model.hpp"
#endif

namespace fs = std::filesystem;

namespace {

// Exit statuses (also in --help).
constexpr int exit_all_classified = 0, exit_error = 1, exit_usage = 2, exit_some_skipped = 3;
constexpr long long max_top = 1000;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void usage(std::ostream& os) {
  os << "usage: galaxy10_classify CHECKPOINT IMAGE|FOLDER... [--csv FILE] [--top K] [--crop-fraction F]\n"
        "\n"
        "Classifies pictures with a checkpoint from galaxy10_train (best.h5 or last.h5), or an .onnx model\n"
        "of a built-in network (hubble_convert's, or PyTorch's torch.onnx.export) when built with hubble::onnx.\n"
        "  IMAGE             a PNG, JPEG, BMP, TGA, GIF, PSD, PIC or PNM picture of any size\n"
        "  FOLDER            every picture directly inside it, in name order\n"
        "  --csv FILE        also write one row per picture: file, predicted class, its probability,\n"
        "                    then the probability of every class\n"
        "  --top K           classes to print per picture: a whole number from 1 (default 3)\n"
        "  --crop-fraction F keep the central F of the square crop before resizing (default: what the\n"
        "                    checkpoint's training used, 0.5 for 128-pixel crops of 256-pixel cut-outs;\n"
        "                    1 = the whole square)\n"
        "A picture that cannot be classified (missing, unreadable, not a picture, a FIFO, a device, a\n"
        "symbolic link loop, too large) is reported on stderr and skipped; the others are classified.\n"
        "Exit status: 0 every picture was classified; 1 the checkpoint is unusable, or no picture could be\n"
        "classified; 2 a bad command line; 3 some pictures were classified and some skipped.\n";
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

// `v` as a whole number in [lo, hi], nothing else ("3", not "3.0", "nan", "1e300" or "3x").
long long whole_number(const std::string& option, const std::string& v, long long lo, long long hi) {
  long long x = 0;
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  if (v.empty() || ec == std::errc::invalid_argument || ptr != end)
    throw UsageError(option + " needs a whole number, not '" + v + "'");
  if (ec == std::errc::result_out_of_range || x < lo || x > hi)
    throw UsageError(option + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", not " + v);
  return x;
}

// `v` as a finite number, or nothing ("0.5", not "nan", "inf" or "0.5x").
bool parse_number(const std::string& v, double& x) {
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  return !v.empty() && ec == std::errc() && ptr == end && std::isfinite(x);
}

// The pictures to classify: files as given, folders expanded (name order). A folder that cannot
// be read or holds no pictures is reported and counted in `failed`. Nothing here opens a file:
// io::read_picture says what is wrong with each one.
std::vector<std::string> pictures_of(const std::vector<std::string>& inputs, int& failed) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (!fs::is_directory(in, ec)) {
      files.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    fs::directory_iterator it(in, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      std::error_code type_ec;
      if (is_picture(it->path()) && !it->is_directory(type_ec)) found.push_back(it->path().string());
    }
    if (ec) {
      std::cerr << "galaxy10_classify: skipping folder " << in << ": cannot list it (" << ec.message() << ")\n";
      ++failed;
      continue;
    }
    std::sort(found.begin(), found.end());
    if (found.empty()) {
      std::cerr << "galaxy10_classify: skipping folder " << in << ": no pictures in it\n";
      ++failed;
    }
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

int run(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string csv, checkpoint;
  int top = 3;
  double crop_fraction = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&](const char* what) -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value (" + what + ")");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(std::cout);
      return exit_all_classified;
    } else if (a == "--csv") {
      csv = value("FILE");
      if (csv.empty()) throw UsageError("--csv needs a file name, not an empty string");
    } else if (a == "--top") {
      top = int(whole_number("--top", value("K"), 1, max_top));
    } else if (a == "--crop-fraction") {
      const std::string v = value("F");
      if (!parse_number(v, crop_fraction) || !(crop_fraction > 0 && crop_fraction <= 1))
        throw UsageError("--crop-fraction needs a number in (0, 1], not '" + v + "'");
    } else if (a.rfind("--", 0) == 0) {
      throw UsageError("unknown option " + a);
    } else if (checkpoint.empty()) {
      checkpoint = a;
    } else {
      inputs.push_back(a);
    }
  }
  if (checkpoint.empty() || inputs.empty()) throw UsageError("needs a checkpoint and at least one picture or folder");

  const hubble::Model model = hubble::Model::load(checkpoint);
  if (crop_fraction < 0) {
    const std::string saved = model.metadata("model/crop_fraction", "1");
    HUBBLE_CHECK(parse_number(saved, crop_fraction) && crop_fraction > 0 && crop_fraction <= 1, checkpoint,
                 ": its model/crop_fraction '", saved, "' is not a number in (0, 1] (damaged checkpoint? --crop-fraction "
                 "overrides it)");
  }
  const int side = model.input_height();
  HUBBLE_CHECK(model.input_width() == side && model.input_channels() == 3, checkpoint,
               ": galaxy10_classify needs a square RGB network, this one takes ", model.input_height(), "x",
               model.input_width(), "x", model.input_channels());
  const std::vector<std::string>& names = model.class_names();
  top = std::min(top, model.classes());

  int done = 0, skipped = 0;
  const std::vector<std::string> files = pictures_of(inputs, skipped);
  std::string table = "file,prediction,probability";
  for (const std::string& n : names) table += "," + csv_field("p_" + n);
  table += "\n";
  std::size_t name_w = 0;
  for (const std::string& n : names) name_w = std::max(name_w, n.size());
  for (const std::string& file : files) {
    hubble::io::Picture picture;
    std::vector<std::uint8_t> input;
    try {
      picture = hubble::io::read_picture(file);
      input = hubble::prepare_image(picture.pixels.data(), picture.width, picture.height, picture.channels, side,
                                    crop_fraction);
    } catch (const std::exception& e) {  // this picture only: the others are still classified
      std::cerr << "galaxy10_classify: skipping " << file << ": " << e.what() << "\n";
      ++skipped;
      continue;
    }
    const std::vector<float> p = model.predict(std::span<const std::uint8_t>(input));
    std::vector<int> order(p.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = int(k);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[std::size_t(a)] > p[std::size_t(b)]; });
    const int crop = int(std::min(picture.width, picture.height) * crop_fraction + 0.5);
    std::printf("%s  (%dx%d, centre %dx%d -> %dx%d)\n", file.c_str(), picture.width, picture.height, crop, crop, side,
                side);
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
  std::fflush(stdout);
  if (!csv.empty()) {
    hubble::io::write_text_atomically(csv, table);
    std::printf("wrote %s (%d rows)\n", csv.c_str(), done);
    std::fflush(stdout);
  }
  if (skipped == 0) return exit_all_classified;
  std::fprintf(stderr, "galaxy10_classify: %d picture%s classified, %d skipped\n", done, done == 1 ? "" : "s", skipped);
  return done > 0 ? exit_some_skipped : exit_error;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "galaxy10_classify: " << e.what() << "\n\n";
    usage(std::cerr);
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "galaxy10_classify: error: " << e.what() << "\n";
    return exit_error;
  }
}
