// make_synthetic_galaxy10: writes a synthetic Galaxy10 DECaLS file in the official layout
// (images uint8 N x S x S x 3, ans uint8 N), for tests and for trying the pipeline without
// the real data. The same seed always gives the same bytes.
//   make_synthetic_galaxy10 --out FILE [--count N] [--side S] [--seed K]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "hubble/data/galaxy10.hpp"
#include "hubble/data/synthetic.hpp"

namespace {

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: make_synthetic_galaxy10 --out FILE [--count N] [--side S] [--seed K]\n"
               "  Renders N procedural galaxies (classes 0..9 in turn, so balanced) of S x S RGB pixels\n"
               "  and writes them in the Galaxy10 DECaLS layout ('images' uint8 N x S x S x 3, 'ans' uint8 N).\n"
               "  --out FILE   the HDF5 file to write (replaced atomically)\n"
               "  --count N    number of images (default 1500)\n"
               "  --side S     image side in pixels, 32..4096 (default 256, as in Galaxy10 DECaLS)\n"
               "  --seed K     random seed (default 1); the same seed gives a byte-identical file\n"
               "  --help       this text\n");
}

long long parse_integer(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw hubble::Error(flag + ": '" + text + "' is not an integer");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string out;
    hubble::data::SyntheticOptions options;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        usage(stdout);
        return 0;
      }
      HUBBLE_CHECK(i + 1 < argc && (arg == "--out" || arg == "--count" || arg == "--side" || arg == "--seed"),
                   arg == "--out" || arg == "--count" || arg == "--side" || arg == "--seed"
                       ? arg + " needs a value" : "unknown argument '" + arg + "' (try --help)");
      const std::string value = argv[++i];
      if (arg == "--out") {
        out = value;
      } else if (arg == "--count") {
        const long long v = parse_integer(arg, value);
        HUBBLE_CHECK(v > 0 && v <= 10'000'000, "--count ", v, " must be in 1..10000000");
        options.count = int(v);
      } else if (arg == "--side") {
        const long long v = parse_integer(arg, value);
        HUBBLE_CHECK(v >= 32 && v <= 4096, "--side ", v, " must be in 32..4096");
        options.side = int(v);
      } else {
        const long long v = parse_integer(arg, value);
        HUBBLE_CHECK(v >= 0, "--seed ", v, " must not be negative");
        options.seed = std::uint64_t(v);
      }
    }
    if (out.empty()) {
      usage(stderr);
      std::fprintf(stderr, "error: --out FILE is required\n");
      return 2;
    }
    const auto start = std::chrono::steady_clock::now();
    const hubble::data::ImageSet set = hubble::data::make_synthetic_galaxy10(options);
    const auto rendered = std::chrono::steady_clock::now();
    hubble::data::write_galaxy10(out, set,
                                 {{"generator", "hubble make_synthetic_galaxy10"},
                                  {"seed", std::to_string(options.seed)},
                                  {"count", std::to_string(options.count)},
                                  {"side", std::to_string(options.side)}});
    const auto written = std::chrono::steady_clock::now();
    const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    std::printf("wrote %s: %d images of %d x %d x 3 (seed %llu); rendered in %.2f s, written in %.2f s\n",
                out.c_str(), set.size(), options.side, options.side, (unsigned long long)options.seed,
                seconds(start, rendered), seconds(rendered, written));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_synthetic_galaxy10: %s\n", e.what());
    return 1;
  }
}
