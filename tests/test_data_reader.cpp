// The Galaxy10 reader and writer: the official layout, centre crop, chunked reading, every
// kind of bad file, and the real training file when it is present.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hubble/data/galaxy10.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using hubble::data::ImageSet;
using hubble::data::LoadOptions;
using hubble::data::load_galaxy10;
using hubble::data::write_galaxy10;

namespace {

struct TempDir : test_support::TempDir {
  TempDir() : test_support::TempDir("data_reader") {}
};
using test_support::error_of;

// An n x h x w x 3 set whose pixel values encode (image, y, x, channel).
ImageSet pattern_set(int n, int h, int w) {
  ImageSet s;
  s.height = h; s.width = w; s.channels = 3;
  s.pixels.resize(std::size_t(n) * h * w * 3);
  for (int i = 0; i < n; ++i) {
    s.labels.push_back((3 * i + 1) % 10);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) s.image(i)[(std::size_t(y) * w + x) * 3 + c] = std::uint8_t(i * 31 + y * 7 + x * 3 + c * 101);
  }
  return s;
}

void write_raw(const std::string& path, const std::vector<std::uint8_t>& images, std::vector<hsize_t> dims,
               const std::vector<std::uint8_t>& ans) {
  hubble::h5::File f = hubble::h5::File::create(path);
  f.write<std::uint8_t>("images", images.data(), dims, 1);
  f.write<std::uint8_t>("ans", ans.data(), {hsize_t(ans.size())});
}

void check_names_file(const std::string& message, const std::string& path, const std::string& what) {
  INFO("message: ", message);
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find(what) != std::string::npos);
}

}  // namespace

TEST_CASE("data: write_galaxy10 then load_galaxy10 round-trips without a crop") {
  TempDir dir;
  const ImageSet set = pattern_set(7, 10, 12);
  const std::string path = dir.file("set.h5");
  write_galaxy10(path, set);
  const ImageSet back = load_galaxy10(path, {.crop = 0});
  CHECK(back.height == 10);
  CHECK(back.width == 12);
  CHECK(back.channels == 3);
  CHECK(back.labels == set.labels);
  CHECK(back.pixels == set.pixels);
  // crop == side also means no crop (here only for a square set)
  const ImageSet square = pattern_set(3, 9, 9);
  write_galaxy10(path, square);
  CHECK(load_galaxy10(path, {.crop = 9}).pixels == square.pixels);
  // the file appeared atomically: no temporary file is left beside it
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("data: load_galaxy10 crops the centre, in any chunk size, and honours limit") {
  TempDir dir;
  const ImageSet set = pattern_set(11, 16, 20);
  const std::string path = dir.file("set.h5");
  write_galaxy10(path, set);
  for (std::size_t chunk : {std::size_t(1), std::size_t(3), std::size_t(4), std::size_t(64)}) {
    CAPTURE(chunk);
    const ImageSet c = load_galaxy10(path, {.crop = 8, .chunk_rows = chunk});
    REQUIRE(c.size() == 11);
    CHECK(c.height == 8);
    CHECK(c.width == 8);
    bool same = true;
    for (int i = 0; i < 11; ++i)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x)
          for (int ch = 0; ch < 3; ++ch)  // window starts at ((16-8)/2, (20-8)/2) = (4, 6)
            same &= c.image(i)[(y * 8 + x) * 3 + ch] == set.image(i)[((y + 4) * 20 + x + 6) * 3 + ch];
    CHECK(same);
    CHECK(c.labels == set.labels);
  }
  const ImageSet in_memory = hubble::data::centre_crop(set, 8);  // the same window without a file
  CHECK(in_memory.pixels == load_galaxy10(path, {.crop = 8}).pixels);
  CHECK(hubble::data::centre_crop(set, 0).pixels == set.pixels);
  CHECK_THROWS_AS(hubble::data::centre_crop(set, 17), hubble::Error);
  const ImageSet first = load_galaxy10(path, {.crop = 8, .chunk_rows = 2, .limit = 5});
  CHECK(first.size() == 5);
  CHECK(first.labels == std::vector<int>(set.labels.begin(), set.labels.begin() + 5));
  CHECK(load_galaxy10(path, {.crop = 8, .limit = 100}).size() == 11);
}

TEST_CASE("data: load_galaxy10 accepts labels stored as any integer type") {
  TempDir dir;
  const ImageSet set = pattern_set(4, 8, 8);
  const std::vector<std::int64_t> l64(set.labels.begin(), set.labels.end());
  const std::vector<std::int32_t> l32(set.labels.begin(), set.labels.end());
  {
    hubble::h5::File f = hubble::h5::File::create(dir.file("i64.h5"));
    f.write<std::uint8_t>("images", set.pixels.data(), {4, 8, 8, 3});
    f.write("ans", l64);
  }
  {
    hubble::h5::File f = hubble::h5::File::create(dir.file("i32.h5"));
    f.write<std::uint8_t>("images", set.pixels.data(), {4, 8, 8, 3});
    f.write("ans", l32);
  }
  CHECK(load_galaxy10(dir.file("i64.h5"), {.crop = 0}).labels == set.labels);
  CHECK(load_galaxy10(dir.file("i32.h5"), {.crop = 6}).labels == set.labels);
}

TEST_CASE("data: load_galaxy10 reports a missing file") {
  TempDir dir;
  const std::string path = dir.file("nope.h5");
  check_names_file(error_of([&] { load_galaxy10(path); }), path, "no such file");
}

TEST_CASE("data: load_galaxy10 reports a file that is not HDF5") {
  TempDir dir;
  const std::string path = dir.file("text.h5");
  std::ofstream(path) << "these are not the galaxies you are looking for\n";
  check_names_file(error_of([&] { load_galaxy10(path); }), path, "not an HDF5 file");
}

TEST_CASE("data: load_galaxy10 reports a missing 'images' or 'ans' dataset") {
  TempDir dir;
  const std::vector<std::uint8_t> px(2 * 8 * 8 * 3, 9), ans = {1, 2};
  const std::string no_images = dir.file("no_images.h5"), no_ans = dir.file("no_ans.h5");
  { hubble::h5::File f = hubble::h5::File::create(no_images); f.write<std::uint8_t>("ans", ans.data(), {2}); }
  { hubble::h5::File f = hubble::h5::File::create(no_ans); f.write<std::uint8_t>("images", px.data(), {2, 8, 8, 3}); }
  check_names_file(error_of([&] { load_galaxy10(no_images, {.crop = 0}); }), no_images, "no 'images' dataset");
  check_names_file(error_of([&] { load_galaxy10(no_ans, {.crop = 0}); }), no_ans, "no 'ans'");
}

TEST_CASE("data: load_galaxy10 reports float images, images of the wrong rank and non-RGB images") {
  TempDir dir;
  const std::vector<float> fpx(2 * 8 * 8 * 3, 0.5f);
  const std::vector<std::uint8_t> px(2 * 8 * 8 * 3, 9), ans = {1, 2};
  const std::string floats = dir.file("float.h5"), rank3 = dir.file("rank3.h5");
  {
    hubble::h5::File f = hubble::h5::File::create(floats);
    f.write<float>("images", fpx.data(), {2, 8, 8, 3});
    f.write<std::uint8_t>("ans", ans.data(), {2});
  }
  write_raw(rank3, px, {2, 8, 24}, ans);
  const std::string e1 = error_of([&] { load_galaxy10(floats, {.crop = 0}); });
  check_names_file(e1, floats, "uint8");
  CHECK(e1.find("floating point") != std::string::npos);
  check_names_file(error_of([&] { load_galaxy10(rank3, {.crop = 0}); }), rank3, "rank 3");
  const std::string rgba = dir.file("rgba.h5");
  write_raw(rgba, std::vector<std::uint8_t>(2 * 8 * 8 * 4, 9), {2, 8, 8, 4}, ans);
  check_names_file(error_of([&] { load_galaxy10(rgba, {.crop = 0}); }), rgba, "4 channels");
}

TEST_CASE("data: load_galaxy10 reports images smaller than the crop") {
  TempDir dir;
  const std::string path = dir.file("small.h5");
  write_galaxy10(path, pattern_set(2, 64, 64));
  check_names_file(error_of([&] { load_galaxy10(path); }), path, "smaller than the requested 128 x 128 crop");
  CHECK(load_galaxy10(path, {.crop = 64}).height == 64);
}

TEST_CASE("data: load_galaxy10 reports image and label counts that differ") {
  TempDir dir;
  const std::string path = dir.file("counts.h5");
  write_raw(path, std::vector<std::uint8_t>(5 * 8 * 8 * 3, 1), {5, 8, 8, 3}, {0, 1, 2, 3});
  check_names_file(error_of([&] { load_galaxy10(path, {.crop = 0}); }), path, "5 images but 'ans' has 4 labels");
}

TEST_CASE("data: load_galaxy10 reports a label outside 0..9") {
  TempDir dir;
  const std::string high = dir.file("label10.h5"), negative = dir.file("label_neg.h5");
  write_raw(high, std::vector<std::uint8_t>(3 * 8 * 8 * 3, 1), {3, 8, 8, 3}, {0, 10, 2});
  {
    const std::vector<std::int32_t> ans = {0, 1, -1};
    const std::vector<std::uint8_t> px(3 * 8 * 8 * 3, 1);
    hubble::h5::File f = hubble::h5::File::create(negative);
    f.write<std::uint8_t>("images", px.data(), {3, 8, 8, 3});
    f.write("ans", ans);
  }
  const std::string e = error_of([&] { load_galaxy10(high, {.crop = 0}); });
  check_names_file(e, high, "label 10 of image 1 is outside 0..9");
  check_names_file(error_of([&] { load_galaxy10(negative, {.crop = 0}); }), negative, "label -1 of image 2");
}

TEST_CASE("data: load_galaxy10 reports empty files") {
  TempDir dir;
  const std::string zero = dir.file("zero.h5"), nothing = dir.file("nothing.h5");
  {
    const std::vector<std::uint8_t> dummy(1);
    hubble::h5::File f = hubble::h5::File::create(zero);
    f.write<std::uint8_t>("images", dummy.data(), {0, 8, 8, 3});
    f.write<std::uint8_t>("ans", dummy.data(), {0});
  }
  { hubble::h5::File f = hubble::h5::File::create(nothing); }
  check_names_file(error_of([&] { load_galaxy10(zero, {.crop = 0}); }), zero, "holds no images");
  check_names_file(error_of([&] { load_galaxy10(nothing); }), nothing, "no 'images' dataset and no 'ans' dataset");
}

TEST_CASE("data: write_galaxy10 refuses bad sets and unwritable places with the file named") {
  TempDir dir;
  ImageSet bad = pattern_set(2, 8, 8);
  bad.labels[1] = 12;
  const std::string path = dir.file("bad.h5");
  check_names_file(error_of([&] { write_galaxy10(path, bad); }), path, "label 12");
  bad.labels[1] = 3;
  bad.pixels.pop_back();
  check_names_file(error_of([&] { write_galaxy10(path, bad); }), path, "inconsistent");
  CHECK_FALSE(fs::exists(path));
  const std::string nowhere = dir.file("no/such/folder/x.h5");
  check_names_file(error_of([&] { write_galaxy10(nowhere, pattern_set(1, 8, 8)); }), nowhere, "cannot create");
  // subset and class_counts
  const ImageSet s = pattern_set(6, 4, 4);
  const ImageSet sub = hubble::data::subset(s, {4, 1});
  CHECK(sub.labels == std::vector<int>{s.labels[4], s.labels[1]});
  CHECK(std::equal(sub.image(0), sub.image(0) + sub.image_bytes(), s.image(4)));
  CHECK(hubble::data::class_counts(s.labels)[std::size_t(s.labels[0])] >= 1);
  CHECK_THROWS_AS(hubble::data::subset(s, {6}), hubble::Error);
}

TEST_CASE("data: the real Galaxy10 training file loads, 80 per class, and the crop is the centre") {
  const std::string path = std::string(HUBBLE_SHARED_DATA_DIR) + "/galaxy10_real_train.h5";
  if (!fs::exists(path)) {
    MESSAGE("skipped: ", path, " is absent");
    return;
  }
  const ImageSet set = load_galaxy10(path);  // crop 128 by default
  REQUIRE(set.size() == 798);
  CHECK(set.height == 128);
  CHECK(set.width == 128);
  CHECK(set.pixels.size() == 798u * 128 * 128 * 3);
  const auto counts = hubble::data::class_counts(set.labels);
  for (int c = 0; c < 10; ++c) {
    CAPTURE(c);
    CHECK(counts[std::size_t(c)] == (c == 7 || c == 8 ? 79 : 80));
  }
  CHECK(std::is_sorted(set.labels.begin(), set.labels.end()));  // the file is sorted by class

  const ImageSet full = load_galaxy10(path, {.crop = 0, .chunk_rows = 7, .limit = 20});
  REQUIRE(full.size() == 20);
  CHECK(full.height == 256);
  bool centre = true;
  for (int i = 0; i < 20; ++i)
    for (int y = 0; y < 128; ++y)
      centre &= std::equal(set.image(i) + y * 128 * 3, set.image(i) + (y + 1) * 128 * 3,
                           full.image(i) + ((y + 64) * 256 + 64) * 3);
  CHECK(centre);
  // The galaxy is in the centre: the crop is brighter than the whole image on average.
  double crop_sum = 0, full_sum = 0;
  for (int i = 0; i < 20; ++i) {
    for (std::size_t k = 0; k < set.image_bytes(); ++k) crop_sum += set.image(i)[k];
    for (std::size_t k = 0; k < full.image_bytes(); ++k) full_sum += full.image(i)[k];
  }
  CHECK(crop_sum / (20.0 * double(set.image_bytes())) > full_sum / (20.0 * double(full.image_bytes())));
}

// ---- hardening: declared sizes, full disk, checksummed chunks --------------------------------

namespace {
// A Galaxy10-shaped file whose 'images' declares `dims` in chunks of `chunk` that were never
// written: HDF5 lets a chunked dataset declare any size without storing it.
void write_declared(const std::string& path, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk) {
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
  const hid_t ds = H5Dcreate2(f, "images", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  REQUIRE(ds >= 0);
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  const hsize_t n = dims[0];
  const std::vector<std::uint8_t> labels(n, 1);
  const hid_t ls = H5Screate_simple(1, &n, nullptr);
  const hid_t ans = H5Dcreate2(f, "ans", H5T_STD_U8LE, ls, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ans, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
  H5Dclose(ans);
  H5Sclose(ls);
  H5Fclose(f);
}
}  // namespace

TEST_CASE("data: images declaring a side above 2^32 (or sizes the file cannot hold) are a named error") {
  TempDir dir;
  // Before: the height was narrowed to int for the buffer while HDF5 wrote the real size past it.
  const std::string tall = dir.file("tall.h5"), wide = dir.file("wide.h5"), many = dir.file("many.h5");
  write_declared(tall, {2, 5000000000ULL, 4, 3}, {1, 1000000, 4, 3});
  write_declared(wide, {2, 4, (1ULL << 32) + 8, 3}, {1, 4, 1000000, 3});
  write_declared(many, {3000000000ULL, 8, 8, 3}, {100000, 8, 8, 3});
  for (const std::string& path : {tall, wide, many}) {
    for (int crop : {0, 2}) {
      CAPTURE(path);
      CAPTURE(crop);
      std::string msg;
      try {
        load_galaxy10(path, {.crop = crop, .limit = 1});
      } catch (const hubble::h5::CorruptFile& e) {
        msg = e.what();
      }
      check_names_file(msg, path, "'images' declares");
    }
  }
  // The file holds the sizes it declares, but a side above 65536 is still refused before any narrowing.
  const std::string ok = dir.file("ok.h5");
  write_galaxy10(ok, pattern_set(2, 8, 8));
  CHECK(load_galaxy10(ok, {.crop = 0}).size() == 2);
}

TEST_CASE("data: read_rows refuses rows out of range and buffers too small") {
  TempDir dir;
  const std::string path = dir.file("rows.h5");
  write_galaxy10(path, pattern_set(5, 4, 4));
  const hubble::h5::File f = hubble::h5::File::open(path);
  std::vector<std::uint8_t> buf(2 * 4 * 4 * 3);
  f.read_rows<std::uint8_t>("images", 3, 2, buf.data(), buf.size());
  CHECK(buf[0] == pattern_set(5, 4, 4).image(3)[0]);
  check_names_file(error_of([&] { f.read_rows<std::uint8_t>("images", 4, 2, buf.data(), buf.size()); }), path,
                   "out of range");
  check_names_file(error_of([&] { f.read_rows<std::uint8_t>("images", std::size_t(-1), 2, buf.data(), buf.size()); }),
                   path, "out of range");
  check_names_file(error_of([&] { f.read_rows<std::uint8_t>("images", 0, 3, buf.data(), buf.size()); }), path,
                   "do not fit");
}

TEST_CASE("data: a full disk while writing a Galaxy10 file leaves the previous file intact, with a clean exit") {
  TempDir dir;
  const std::string path = dir.file("set.h5");
  write_galaxy10(path, pattern_set(3, 8, 8));
  const std::string before = test_support::file_bytes(path);
  // 300 images of 32 x 32 x 3 with noisy pixels: far more than the 64 KiB the child may write.
  ImageSet big = pattern_set(300, 32, 32);
  std::uint64_t x = 88172645463325252ULL;
  for (auto& p : big.pixels) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    p = std::uint8_t(x);
  }
  const auto out = test_support::in_child(65536, [&] { write_galaxy10(path, big); }, [] { H5close(); });
  INFO("child message: ", out.message);
  CHECK(out.exited);  // before: a segmentation fault in HDF5's exit handler
  CHECK(out.exit_code == 0);
  check_names_file(out.message, path, "File too large");
  CHECK(test_support::file_bytes(path) == before);
  CHECK(test_support::files_in(dir.path()) == std::vector<std::string>{"set.h5"});
  CHECK(load_galaxy10(path, {.crop = 0}).pixels == pattern_set(3, 8, 8).pixels);
}

TEST_CASE("data: write_galaxy10 checksums its image chunks (Fletcher32) and writes the HDF5 1.10 format") {
  TempDir dir;
  const std::string path = dir.file("sum.h5");
  write_galaxy10(path, pattern_set(4, 8, 8));
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t ds = H5Dopen2(f, "images", H5P_DEFAULT);
  const hid_t dcpl = H5Dget_create_plist(ds);
  bool fletcher = false;
  for (int k = 0; k < H5Pget_nfilters(dcpl); ++k) {
    unsigned flags = 0, config = 0;
    std::size_t n = 0;
    fletcher |= H5Pget_filter2(dcpl, unsigned(k), &flags, &n, nullptr, 0, nullptr, &config) == H5Z_FILTER_FLETCHER32;
  }
  CHECK(fletcher);
  const hid_t fcpl = H5Fget_create_plist(f);
  unsigned super = 0, freelist = 0, stab = 0, shhdr = 0;
  H5Pget_version(fcpl, &super, &freelist, &stab, &shhdr);
  CHECK(super >= 2);  // superblock v2+ carries a checksum
  H5Pclose(fcpl);
  H5Pclose(dcpl);
  H5Dclose(ds);
  H5Fclose(f);
}

TEST_CASE("data: an image side above 65536 is refused before any narrowing, even when the file stores it") {
  TempDir dir;
  const std::string path = dir.file("long.h5");
  write_raw(path, std::vector<std::uint8_t>(70000 * 8 * 3, 5), {1, 70000, 8, 3}, {2});
  check_names_file(error_of([&] { load_galaxy10(path, {.crop = 0}); }), path,
                   "'images' declares 70000 x 8 images (1, 70000, 8, 3), larger than 65536 a side");
}
