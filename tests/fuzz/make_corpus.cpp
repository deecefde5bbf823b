// Writes the fuzz targets' seed corpora from real files, at build/test time (nothing from
// ../shared is committed):
//   <out>/galaxy10/    small Galaxy10 files: the first images of the real training file when it is
//                      there (else synthetic galaxies), centre-cropped to 32 x 32, in the layout
//                      write_galaxy10 uses (gzip chunks, uint8 labels) and in a contiguous one
//                      with int64 labels
//   <out>/checkpoint/  a PaperNet checkpoint (fresh weights, Adam before its first step) and
//                      small-network checkpoints with and without Adam state after two steps, and
//                      the small network as an int8 model file
//   <out>/picture/     one galaxy encoded as PNG (grey, RGB, RGBA), JPEG, BMP and TGA, plus the
//                      pictures named on the command line (a PNG from docs/images and the
//                      progressive JPEG of tests/fixtures, whose Huffman tables sit between scans)
// Every seed is read back with the reader its target fuzzes and must load: a seed that fails
// would only teach the fuzzer the error paths.
// Usage: make_corpus <out> [<galaxy10 .h5 to take images from> [<pictures to copy>...]]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "hubble/data/galaxy10.hpp"
#include "hubble/data/synthetic.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/io/picture.hpp"
#include "hubble/io/png.hpp"  // stb_image_write, compiled privately into this unit
#include "hubble/lowp/quantized_file.hpp"
#include "networks.hpp"

namespace fs = std::filesystem;
using namespace hubble;

namespace {

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  HUBBLE_CHECK(out.good(), path.string(), ": cannot write");
}

// Four 32 x 32 galaxies, from the real file when given (its first images) or synthetic.
data::ImageSet seed_images(const std::string& source) {
  if (!source.empty() && fs::exists(source)) {
    data::LoadOptions o;
    o.crop = 32;
    o.limit = 4;
    std::cout << "make_corpus: images from the first 4 of " << source << "\n";
    return data::load_galaxy10(source, o);
  }
  std::cout << "make_corpus: no real Galaxy10 file; synthetic images\n";
  data::SyntheticOptions o;
  o.count = 4;
  o.side = 32;
  return data::make_synthetic_galaxy10(o);
}

void galaxy10_seeds(const fs::path& dir, const data::ImageSet& set) {
  write_galaxy10((dir / "chunked_gzip_4.h5").string(), set, {{"source", "hubble fuzz corpus"}});
  data::ImageSet one = set;
  one.labels.resize(1);
  one.pixels.resize(one.image_bytes());
  write_galaxy10((dir / "chunked_gzip_1.h5").string(), one);
  {  // contiguous pixels, int64 labels: the other storage and label type the reader accepts
    h5::File f = h5::File::create((dir / "contiguous_int64.h5").string());
    f.write<std::uint8_t>("images", set.pixels.data(),
                          {hsize_t(set.size()), hsize_t(set.height), hsize_t(set.width), hsize_t(set.channels)});
    const std::vector<std::int64_t> ans(set.labels.begin(), set.labels.end());
    f.write("ans", ans);
    f.close();
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    data::LoadOptions o;
    o.crop = 0;
    const data::ImageSet back = data::load_galaxy10(entry.path().string(), o);
    HUBBLE_CHECK(back.size() >= 1 && back.height == 32, entry.path().string(), ": seed does not read back");
  }
}

void checkpoint_seeds(const fs::path& dir) {
  {
    PaperNet paper(1);
    Adam<float> adam;  // before its first step: name and step count, no slots
    CheckpointData d;
    d.metadata["recipe"] = "paper";
    save_checkpoint((dir / "paper_net_fresh.h5").string(), paper, &adam, d);
    PaperNet back(2);
    Adam<float> adam_back;
    load_checkpoint((dir / "paper_net_fresh.h5").string(), back, &adam_back);
  }
  fuzz::SmallNet small(3);
  Adam<float> adam;
  Tensor<float> x(4, 8, 8, 2);
  Rng r(7);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
  const std::vector<int> y{0, 1, 2, 3};
  for (int step = 0; step < 2; ++step) small.train_step(x, y, adam);
  CheckpointData d;
  d.epoch = 2;
  d.rngs["shuffle"] = Rng(99).state();
  d.metadata["recipe"] = "small";
  d.values["best_val_accuracy"] = {0.5};
  d.values["history/train_loss"] = {2.0, 1.5};
  save_checkpoint((dir / "small_net_adam.h5").string(), small, &adam, d);
  save_checkpoint((dir / "small_net_plain.h5").string(), small, nullptr);
  for (const char* name : {"small_net_adam.h5", "small_net_plain.h5"}) {
    fuzz::SmallNet back(4);
    load_checkpoint((dir / name).string(), back);
  }
  fuzz::SmallNet back(5);
  Adam<float> adam_back;
  load_checkpoint((dir / "small_net_adam.h5").string(), back, &adam_back);
  HUBBLE_CHECK(adam_back.steps == 2, "make_corpus: small_net_adam.h5 does not restore Adam's steps");
  // An int8 model file (lowp/quantized_file.hpp) of the same network: the target reads it too.
  const lowp::InferencePlan plan = lowp::plan_of(small);
  const lowp::QuantizedPlan q(plan, lowp::calibrate(plan, x.data(), x.batch(), lowp::CalibrationMethod::minmax));
  lowp::save_quantized((dir / "small_net.int8.h5").string(), q, {{"model/class_names", "a,b,c,d"}});
  (void)lowp::load_quantized((dir / "small_net.int8.h5").string());
}

void append(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(context);
  out->insert(out->end(), static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + size);
}

void picture_seeds(const fs::path& dir, const data::ImageSet& set, const std::vector<std::string>& to_copy) {
  const int w = set.width, h = set.height;
  const std::uint8_t* rgb = set.image(0);
  std::vector<std::uint8_t> grey(std::size_t(w) * h), rgba(std::size_t(w) * h * 4);
  for (std::size_t i = 0; i < grey.size(); ++i) {
    grey[i] = std::uint8_t((rgb[3 * i] + rgb[3 * i + 1] + rgb[3 * i + 2]) / 3);
    for (int c = 0; c < 3; ++c) rgba[4 * i + c] = rgb[3 * i + c];
    rgba[4 * i + 3] = std::uint8_t(255 - grey[i]);
  }
  struct Encoded {
    const char* name;
    int channels;
    std::vector<std::uint8_t> bytes;
  };
  std::vector<Encoded> seeds{{"galaxy_grey.png", 1, {}}, {"galaxy_rgb.png", 3, {}}, {"galaxy_rgba.png", 4, {}},
                             {"galaxy.jpg", 3, {}},      {"galaxy.bmp", 3, {}},     {"galaxy.tga", 3, {}}};
  HUBBLE_CHECK(stbi_write_png_to_func(append, &seeds[0].bytes, w, h, 1, grey.data(), w) &&
                   stbi_write_png_to_func(append, &seeds[1].bytes, w, h, 3, rgb, w * 3) &&
                   stbi_write_png_to_func(append, &seeds[2].bytes, w, h, 4, rgba.data(), w * 4) &&
                   stbi_write_jpg_to_func(append, &seeds[3].bytes, w, h, 3, rgb, 90) &&
                   stbi_write_bmp_to_func(append, &seeds[4].bytes, w, h, 3, rgb) &&
                   stbi_write_tga_to_func(append, &seeds[5].bytes, w, h, 3, rgb),
               "make_corpus: stb_image_write failed");
  for (const Encoded& s : seeds) {
    write_bytes(dir / s.name, s.bytes);
    const io::Picture p = io::decode_picture(s.bytes, s.name);
    HUBBLE_CHECK(p.width == w && p.height == h && p.channels == s.channels, s.name, ": seed decodes to ", p.width,
                 " x ", p.height, " x ", p.channels);
  }
  for (const std::string& path : to_copy) {
    const std::vector<std::uint8_t> bytes = read_bytes(path);
    (void)io::decode_picture(bytes, path);
    write_bytes(dir / fs::path(path).filename(), bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: make_corpus <out> [<galaxy10 .h5 to take images from> [<pictures to copy>...]]\n";
    return 2;
  }
  try {
    const fs::path out = argv[1];
    for (const char* target : {"galaxy10", "checkpoint", "picture"}) {
      fs::remove_all(out / target);
      fs::create_directories(out / target);
    }
    const data::ImageSet set = seed_images(argc > 2 ? argv[2] : "");
    galaxy10_seeds(out / "galaxy10", set);
    checkpoint_seeds(out / "checkpoint");
    picture_seeds(out / "picture", set, std::vector<std::string>(argv + std::min(argc, 3), argv + argc));
    for (const char* target : {"galaxy10", "checkpoint", "picture"}) {
      std::size_t n = 0, bytes = 0;
      for (const auto& e : fs::directory_iterator(out / target)) ++n, bytes += fs::file_size(e.path());
      std::cout << "make_corpus: " << target << ": " << n << " seeds, " << bytes << " bytes\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "make_corpus: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
