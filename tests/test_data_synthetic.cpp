// The synthetic Galaxy10 generator (determinism, the real images' look, per-class structure)
// and the PNG writer.
#include <doctest/doctest.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "hubble/data/galaxy10.hpp"
#include "hubble/data/synthetic.hpp"
#include "hubble/io/png.hpp"
#include "support.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using hubble::data::ImageSet;
using hubble::data::make_synthetic_galaxy10;

namespace {

struct TempDir : test_support::TempDir {
  TempDir() : test_support::TempDir("data_synth") {}
};

std::vector<char> bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Shape and colour of the central object of one image, measured from the light above the sky.
struct Measure {
  double axis_ratio = 0;   // minor / major from the second moments
  double red_over_blue = 0;
  double excess = 0;       // summed light above the sky within the central disc
};
Measure measure(const ImageSet& s, int i) {
  const int n = s.height;
  const std::uint8_t* p = s.image(i);
  double sky[3] = {0, 0, 0};
  int border = 0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x)
      if (y < 6 || x < 6 || y >= n - 6 || x >= n - 6) {
        for (int c = 0; c < 3; ++c) sky[c] += p[(y * n + x) * 3 + c];
        ++border;
      }
  for (double& v : sky) v /= border;
  const double c0 = n / 2.0, radius = 0.25 * n;
  // Only the inner isophotes (above a quarter of the peak) so field stars do not count.
  double peak = 0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const double dx = x + 0.5 - c0, dy = y + 0.5 - c0;
      if (dx * dx + dy * dy > 0.01 * n * n) continue;
      const std::uint8_t* q = p + (y * n + x) * 3;
      peak = std::max(peak, (q[0] - sky[0] + q[1] - sky[1] + q[2] - sky[2]) / 3);
    }
  const double threshold = std::max(12.0, 0.25 * peak);
  double w = 0, mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0, red = 0, blue = 0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const double dx = x + 0.5 - c0, dy = y + 0.5 - c0;
      if (dx * dx + dy * dy > radius * radius) continue;
      const std::uint8_t* q = p + (y * n + x) * 3;
      const double e = (q[0] - sky[0] + q[1] - sky[1] + q[2] - sky[2]) / 3 - threshold;
      if (e <= 0) continue;
      w += e; mx += e * dx; my += e * dy; mxx += e * dx * dx; myy += e * dy * dy; mxy += e * dx * dy;
      red += q[0] - sky[0];
      blue += q[2] - sky[2];
    }
  Measure m;
  m.excess = w;
  if (w <= 0) return m;
  mx /= w; my /= w;
  const double a = mxx / w - mx * mx, b = myy / w - my * my, c = mxy / w - mx * my;
  const double root = std::sqrt((a - b) * (a - b) / 4 + c * c);
  const double l1 = (a + b) / 2 + root, l2 = std::max((a + b) / 2 - root, 0.0);
  m.axis_ratio = std::sqrt(l2 / l1);
  m.red_over_blue = red / std::max(blue, 1.0);
  return m;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

TEST_CASE("data: make_synthetic_galaxy10 is balanced, deterministic per seed and independent of threads") {
  const ImageSet a = make_synthetic_galaxy10({.count = 23, .side = 64, .seed = 5});
  REQUIRE(a.size() == 23);
  CHECK(a.height == 64);
  CHECK(a.width == 64);
  CHECK(a.channels == 3);
  CHECK(a.pixels.size() == 23u * 64 * 64 * 3);
  for (int i = 0; i < 23; ++i) CHECK(a.labels[std::size_t(i)] == i % 10);

  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const ImageSet one_thread = make_synthetic_galaxy10({.count = 23, .side = 64, .seed = 5});
  omp_set_num_threads(3);
  const ImageSet three_threads = make_synthetic_galaxy10({.count = 23, .side = 64, .seed = 5});
  omp_set_num_threads(threads);
  CHECK(one_thread.pixels == a.pixels);
  CHECK(three_threads.pixels == a.pixels);

  const ImageSet b = make_synthetic_galaxy10({.count = 23, .side = 64, .seed = 6});
  CHECK(b.pixels != a.pixels);
  // image i does not depend on how many come after it
  const ImageSet fewer = make_synthetic_galaxy10({.count = 4, .side = 64, .seed = 5});
  CHECK(std::equal(fewer.pixels.begin(), fewer.pixels.end(), a.pixels.begin()));
  CHECK_THROWS_AS(make_synthetic_galaxy10({.count = 1, .side = 8}), hubble::Error);
}

TEST_CASE("data: the same seed gives a byte-identical file, and it loads back") {
  TempDir dir;
  const ImageSet set = make_synthetic_galaxy10({.count = 20, .side = 64, .seed = 3});
  hubble::data::write_galaxy10(dir.file("a.h5"), set);
  // HDF5 can stamp objects with the time in seconds; a later second must not change the bytes.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  hubble::data::write_galaxy10(dir.file("b.h5"), make_synthetic_galaxy10({.count = 20, .side = 64, .seed = 3}));
  const auto a = bytes_of(dir.file("a.h5")), b = bytes_of(dir.file("b.h5"));
  CHECK(a.size() > 20u * 64 * 64);
  CHECK(a == b);
  const ImageSet back = hubble::data::load_galaxy10(dir.file("a.h5"), {.crop = 0});
  CHECK(back.pixels == set.pixels);
  CHECK(back.labels == set.labels);
  const ImageSet cropped = hubble::data::load_galaxy10(dir.file("a.h5"), {.crop = 32});
  CHECK(std::equal(cropped.image(0), cropped.image(0) + 32 * 3, set.image(0) + (16 * 64 + 16) * 3));
}

TEST_CASE("data: synthetic images look like Galaxy10 DECaLS: dark sky near 33, a galaxy in the centre") {
  const ImageSet s = make_synthetic_galaxy10({.count = 60, .side = 128, .seed = 11});
  double total = 0;
  for (std::uint8_t v : s.pixels) total += v;
  const double mean = total / double(s.pixels.size());
  MESSAGE("mean pixel ", mean, " (the real images: about 38)");
  CHECK(mean > 30);
  CHECK(mean < 46);
  int centred = 0;
  for (int i = 0; i < s.size(); ++i) {
    const int n = s.height;
    double centre = 0, corner = 0;
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x)
        for (int c = 0; c < 3; ++c) {
          centre += s.image(i)[((n / 2 - 8 + y) * n + n / 2 - 8 + x) * 3 + c];
          corner += s.image(i)[(y * n + x) * 3 + c];
        }
    centred += centre > corner + 16 * 16 * 3 * 10;
  }
  CHECK(centred >= s.size() - 3);  // a few are faint, as in the real set
}

TEST_CASE("data: synthetic classes differ in shape and colour the way their names say") {
  const int per_class = 12;
  const ImageSet s = make_synthetic_galaxy10({.count = 10 * per_class, .side = 128, .seed = 21});
  std::array<std::vector<double>, 10> q, rb;
  for (int i = 0; i < s.size(); ++i) {
    const Measure m = measure(s, i);
    q[std::size_t(s.labels[std::size_t(i)])].push_back(m.axis_ratio);
    rb[std::size_t(s.labels[std::size_t(i)])].push_back(m.red_over_blue);
  }
  std::array<double, 10> mq{}, mrb{};
  for (int c = 0; c < 10; ++c) {
    mq[std::size_t(c)] = median(q[std::size_t(c)]);
    mrb[std::size_t(c)] = median(rb[std::size_t(c)]);
    MESSAGE("class ", c, " (", std::string(hubble::data::galaxy10_class_names[std::size_t(c)]), "): axis ratio ", mq[std::size_t(c)],
            ", red/blue ", mrb[std::size_t(c)]);
  }
  CHECK(mq[2] > 0.75);       // round
  CHECK(mq[3] < mq[2]);      // in-between
  CHECK(mq[4] < mq[3]);      // cigar
  CHECK(mq[8] < 0.3);        // edge-on
  CHECK(mq[5] < mq[6]);      // a bar stretches the centre of a spiral
  CHECK(mq[1] < mq[2]);      // two nuclei side by side
  CHECK(mq[9] < 0.5);
  CHECK(mrb[2] > mrb[8]);    // ellipticals are red, thin disks blue
  CHECK(mrb[2] > mrb[0]);    // disturbed galaxies are star-forming
  CHECK(mrb[9] > mrb[8]);    // the bulge is redder than the disk
}

TEST_CASE("data: write_png writes a PNG that decodes to the same pixels, atomically") {
  TempDir dir;
  std::vector<std::uint8_t> px(7 * 5 * 3);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t(i * 13);
  const std::string path = dir.file("x.png");
  hubble::io::write_png(path, 7, 5, 3, px);
  int w = 0, h = 0, c = 0;
  unsigned char* back = stbi_load(path.c_str(), &w, &h, &c, 3);
  REQUIRE(back != nullptr);
  CHECK(w == 7);
  CHECK(h == 5);
  CHECK(std::equal(px.begin(), px.end(), back));
  stbi_image_free(back);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  CHECK(files == 1);
  const std::string nowhere = dir.file("missing/x.png");
  try {
    hubble::io::write_png(nowhere, 7, 5, 3, px);
    FAIL("no error");
  } catch (const hubble::Error& e) {
    CHECK(std::string(e.what()).find(nowhere) != std::string::npos);
  }
  CHECK_THROWS_AS(hubble::io::write_png(path, 7, 6, 3, px), hubble::Error);  // wrong pixel count
}
