// io/picture.hpp: pictures to classify are read with a named error for everything that is not
// one, and stb_image 2.27's known bugs (found by tests/fuzz) are kept out.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "hubble/io/picture.hpp"
#include "hubble/io/png.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using hubble::io::decode_picture;
using hubble::io::read_picture;
using test_support::error_of;

namespace {

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
// A 32x24 gradient saved as a progressive JPEG (604 bytes) by Debian's python3-pil:
//   y, x = numpy.mgrid[0:24, 0:32]; a = numpy.stack([x * 8, y * 10, (x + y) * 4], -1).astype("uint8")
//   PIL.Image.fromarray(a).save("progressive.jpg", progressive=True, quality=75)
// stb_image_write makes baseline JPEGs only, whose Huffman tables all come before the first scan.
const std::string progressive_jpeg = std::string(HUBBLE_SOURCE_DIR) + "/tests/fixtures/progressive.jpg";

// A PNG file built chunk by chunk: signature, IHDR (8-bit samples, colour type 0 grey, 2 RGB),
// one IDAT holding `zlib`, IEND; each chunk with its CRC.
std::vector<std::uint8_t> png_file(std::uint32_t w, std::uint32_t h, std::uint8_t colour_type, bool interlaced,
                                   const std::vector<std::uint8_t>& zlib) {
  std::vector<std::uint8_t> out{137, 80, 78, 71, 13, 10, 26, 10};
  const auto put32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(std::uint8_t(v >> (24 - 8 * i)));
  };
  const auto chunk = [&](const char* type, const std::vector<std::uint8_t>& data) {
    put32(std::uint32_t(data.size()));
    const std::size_t crc_from = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    std::uint32_t crc = 0xFFFFFFFFu;  // CRC-32 of type and data, as the PNG specification defines it
    for (std::size_t i = crc_from; i < out.size(); ++i) {
      crc ^= out[i];
      for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    put32(crc ^ 0xFFFFFFFFu);
  };
  std::vector<std::uint8_t> ihdr;
  for (const std::uint32_t v : {w, h})
    for (int i = 0; i < 4; ++i) ihdr.push_back(std::uint8_t(v >> (24 - 8 * i)));
  ihdr.insert(ihdr.end(), {8, colour_type, 0, 0, std::uint8_t(interlaced ? 1 : 0)});
  chunk("IHDR", ihdr);
  chunk("IDAT", zlib);
  chunk("IEND", {});
  return out;
}
std::vector<std::uint8_t> zlib_compress(std::vector<std::uint8_t> raw) {
  int length = 0;
  unsigned char* z = stbi_zlib_compress(raw.data(), int(raw.size()), &length, 8);
  REQUIRE(z != nullptr);
  std::vector<std::uint8_t> out(z, z + length);
  std::free(z);
  return out;
}

}  // namespace

TEST_CASE("picture: PNG and progressive JPEG decode to their size and channels") {
  test_support::TempDir dir("picture");
  std::vector<std::uint8_t> rgb(5 * 4 * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = std::uint8_t(i * 7);
  hubble::io::write_png(dir.file("a.png"), 5, 4, 3, rgb.data());
  const auto png = read_picture(dir.file("a.png"));
  CHECK(png.width == 5);
  CHECK(png.height == 4);
  CHECK(png.channels == 3);
  CHECK(png.pixels == rgb);
  // A progressive JPEG defines most of its Huffman tables between scans: the table check must
  // follow the entropy-coded data to find them, and must not refuse a good file.
  const auto jpg = read_picture(progressive_jpeg);
  CHECK(jpg.width == 32);
  CHECK(jpg.height == 24);
  CHECK(jpg.channels == 3);
}

TEST_CASE("picture: what is not a regular picture file is a named error, never a hang") {
  test_support::TempDir dir("picture");
  CHECK(error_of([&] { read_picture(dir.file("none.png")); }) == dir.file("none.png") + ": no such file");
  CHECK(error_of([&] { read_picture(dir.path().string()); }).find("is a folder, not a picture") != std::string::npos);
  const std::string fifo = dir.file("fifo.png");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(error_of([&] { read_picture(fifo); }) == fifo + ": is not a regular file (a FIFO), not a picture");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));  // refused, not blocked in open()
  fs::create_symlink(dir.file("loop_b"), dir.file("loop_a"));
  fs::create_symlink(dir.file("loop_a"), dir.file("loop_b"));
  CHECK(error_of([&] { read_picture(dir.file("loop_a")); }).find(dir.file("loop_a") + ": cannot follow the path") == 0);
  fs::create_symlink(dir.file("gone.png"), dir.file("dangling.png"));
  CHECK(error_of([&] {
          read_picture(dir.file("dangling.png"));
        }).find("a symbolic link to a file that does not exist") != std::string::npos);
  CHECK(error_of([&] { read_picture("/dev/null"); }) == "/dev/null: is not a regular file (a device), not a picture");
  write_bytes(dir.file("empty.png"), {});
  CHECK(error_of([&] { read_picture(dir.file("empty.png")); }) ==
        dir.file("empty.png") + ": empty file, not a picture");
  write_bytes(dir.file("text.png"), {'h', 'e', 'l', 'l', 'o'});
  CHECK(error_of([&] { read_picture(dir.file("text.png")); }).find("not a picture hubble can read") !=
        std::string::npos);
}

TEST_CASE("picture: a header declaring a huge picture is refused before stb_image allocates") {
  test_support::TempDir dir("picture");
  std::vector<std::uint8_t> rgb(2 * 2 * 3, 100);
  hubble::io::write_png(dir.file("small.png"), 2, 2, 3, rgb.data());
  std::vector<std::uint8_t> b = read_bytes(dir.file("small.png"));
  // IHDR's width and height (bytes 16..23) say 10000 x 10000, 10^8 pixels: within what stb_image would
  // allocate (2^30 bytes), above hubble's 2^26-pixel limit.
  for (int k = 0; k < 2; ++k) {
    const std::uint32_t side = 10000;
    for (int i = 0; i < 4; ++i) b[std::size_t(16 + 4 * k + i)] = std::uint8_t(side >> (24 - 8 * i));
  }
  CHECK(error_of([&] { decode_picture(b, "huge.png"); }).find("huge.png: the picture declares 10000 x 10000 pixels") ==
        0);
}

TEST_CASE(
    "picture: stb_image 2.27's JPEG Huffman overflow, HDR hang and empty-IDAT memcpy are kept out (fuzz regressions)") {
  // The 9-byte fuzz finding: a DHT whose counts add up to 305 codes (stbi__build_huffman has 257 slots).
  const std::vector<std::uint8_t> dht_305{0xFF, 0xD8, 0xFF, 0xC4, 0x01, 0xA2, 0x01, 0x32, 0xFF};
  CHECK(error_of([&] { decode_picture(dht_305, "x.jpg"); }) ==
        "x.jpg: corrupt JPEG (a Huffman table declares more than 256 codes)");
  // The same damage in a table defined between the scans of a progressive JPEG.
  std::vector<std::uint8_t> b = read_bytes(progressive_jpeg);
  REQUIRE(b.size() > 300);
  std::size_t sos = 0, dht = 0;
  for (std::size_t i = 0; i + 1 < b.size(); ++i) {
    if (!sos && b[i] == 0xFF && b[i + 1] == 0xDA) sos = i;
    if (sos && b[i] == 0xFF && b[i + 1] == 0xC4) dht = i;  // the last DHT, after the first scan
  }
  REQUIRE(sos > 0);
  REQUIRE(dht > sos);
  CHECK_NOTHROW(decode_picture(b, "good.jpg"));
  for (std::size_t i = 0; i < 16; ++i) b[dht + 5 + i] = 0x20;  // 16 counts of 32: 512 codes
  CHECK(error_of([&] { decode_picture(b, "bad.jpg"); }) ==
        "bad.jpg: corrupt JPEG (a Huffman table declares more than 256 codes)");
  // A table after padding bytes between segments, which stb_image scans past (found by the fuzzer
  // after the first form of the guard stopped its walk at such bytes).
  const std::string padded =
      std::string(HUBBLE_SOURCE_DIR) + "/tests/fuzz/regressions/picture/jpeg_dht_after_padding.jpg";
  CHECK(error_of([&] { read_picture(padded); }) ==
        padded + ": corrupt JPEG (a Huffman table declares more than 256 codes)");
  // A JPEG that opens with 0xFF 0xFF 0xD8 (fill bytes before SOI, which stb_image accepts).
  const std::string filled =
      std::string(HUBBLE_SOURCE_DIR) + "/tests/fuzz/regressions/picture/jpeg_soi_after_fill_bytes.jpg";
  CHECK(error_of([&] { read_picture(filled); }) ==
        filled + ": corrupt JPEG (a Huffman table declares more than 256 codes)");
  // A PNG whose first IDAT chunk is empty: stb_image would memcpy to a null buffer (UBSan stops
  // there); the empty chunk is dropped and the picture decodes, every pixel as written.
  const std::string empty_idat =
      std::string(HUBBLE_SOURCE_DIR) + "/tests/fuzz/regressions/picture/png_empty_idat_first.png";
  const auto png = read_picture(empty_idat);
  REQUIRE(png.pixels.size() == 4 * 3 * 3);
  for (int y = 0; y < 3; ++y)  // written as (60 x + 20 y + 5 c) mod 256, x < 4, c < 3
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c)
        CHECK(png.pixels[std::size_t((y * 4 + x) * 3 + c)] == (60 * x + 20 * y + 5 * c) % 256);
  // The same chunk as the file's last bytes, cut short before its CRC (a later fuzz finding): stb_image
  // reads the empty data before the CRC, so it is dropped too, and the file is refused as truncated.
  const std::string cut_short =
      std::string(HUBBLE_SOURCE_DIR) + "/tests/fuzz/regressions/picture/png_empty_idat_cut_short.png";
  const std::string why = error_of([&] { read_picture(cut_short); });
  CHECK(why.rfind(cut_short + ": ", 0) == 0);
  MESSAGE("the cut-short PNG: " << why);
  // Radiance HDR is compiled out: a truncated RLE scanline used to decode forever (CVE-2021-42715).
  const std::string hdr = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 16\n\x02\x02\x00\x10\x85";
  const std::vector<std::uint8_t> hdr_bytes(hdr.begin(), hdr.end());
  CHECK(error_of([&] { decode_picture(hdr_bytes, "x.hdr"); }).find("x.hdr: not a picture hubble can read") == 0);
}

TEST_CASE("picture: a PNM header number too large for stb_image's int is refused (fuzz regression)") {
  // The fuzz finding (33 bytes): "P6" and 31 digits. stb_image 2.27 reads the width into an int
  // with no overflow check (UBSan stops at 666666666 * 10).
  const std::string found = std::string(HUBBLE_SOURCE_DIR) + "/tests/fuzz/regressions/picture/pnm_width_overflow.ppm";
  CHECK(error_of([&] { read_picture(found); }) ==
        found + ": corrupt PNM header (a width, height or maximum value of more than 9 digits)");
  const auto bytes = [](const std::string& s) { return std::vector<std::uint8_t>(s.begin(), s.end()); };
  // The height and the maximum value too, after whitespace and comments, in a grey (P5) file.
  for (const std::string header : {"P5 4\n# a comment\n1234567890 255\n", "P5\t4 3\r\n#\r99999999999\n"}) {
    CAPTURE(header);
    CHECK(error_of([&] { decode_picture(bytes(header), "x.pgm"); }).find("x.pgm: corrupt PNM header") == 0);
  }
  // Nine digits pass the check and reach stb_image, which decodes a good PNM as written.
  CHECK(error_of([&] { decode_picture(bytes("P5 999999999 1 255\n"), "x.pgm"); }).find("corrupt PNM") ==
        std::string::npos);
  std::string ppm = "P6\n# 2 x 1\n2 1\n255\n";
  for (const int v : {10, 20, 30, 40, 50, 60}) ppm.push_back(char(v));
  const auto good = decode_picture(bytes(ppm), "good.ppm");
  CHECK(good.width == 2);
  CHECK(good.height == 1);
  CHECK(good.channels == 3);
  CHECK(good.pixels == std::vector<std::uint8_t>{10, 20, 30, 40, 50, 60});
}

TEST_CASE("picture: stb_image may not allocate more than the declared picture can need (fuzz regression)") {
  // The fuzz finding (117 bytes): a 4 x 3 PNG whose third IDAT chunk declares 1,560,281,088 bytes
  // that the file does not hold. stb_image 2.27 grew its data buffer to 2 GiB before reading them.
  const std::string past_end = std::string(HUBBLE_SOURCE_DIR) + "/tests/fuzz/regressions/picture/png_idat_past_end.png";
  CHECK(error_of([&] {
          read_picture(past_end);
        }).find(past_end + ": corrupt picture: decoding it asked for 2147483648 bytes at once") == 0);
  // A deflate bomb: a 1 x 1 RGB PNG whose data inflates to 4 MiB. stb_image doubles its output
  // buffer for as long as data comes (up to 4 GiB), whatever the header said.
  const auto bomb = png_file(1, 1, 2, false, zlib_compress(std::vector<std::uint8_t>(std::size_t(4) << 20, 0)));
  REQUIRE(bomb.size() < 64 * 1024);  // stb_image_write deflates the 4 MiB to about 40 KB
  CHECK(error_of([&] { decode_picture(bomb, "bomb.png"); }).find("bomb.png: corrupt picture: decoding it asked for ") ==
        0);
  // The limit leaves room for what a good picture needs: an Adam7-interlaced PNG inflates to more
  // than stb_image's first guess (a filter byte for every row of every pass), which it doubles.
  const std::uint32_t w = 64, h = 48;
  const auto value = [](std::uint32_t x, std::uint32_t y, std::uint32_t c) {
    return std::uint8_t(x * 3 + y * 5 + c * 70);
  };
  std::vector<std::uint8_t> raw;
  const std::uint32_t pass_x0[] = {0, 4, 0, 2, 0, 1, 0}, pass_y0[] = {0, 0, 4, 0, 2, 0, 1};
  const std::uint32_t pass_dx[] = {8, 8, 4, 4, 2, 2, 1}, pass_dy[] = {8, 8, 8, 4, 4, 2, 2};
  for (int p = 0; p < 7; ++p)
    for (std::uint32_t y = pass_y0[p]; y < h; y += pass_dy[p]) {
      raw.push_back(0);  // filter: none
      for (std::uint32_t x = pass_x0[p]; x < w; x += pass_dx[p])
        for (std::uint32_t c = 0; c < 3; ++c) raw.push_back(value(x, y, c));
    }
  REQUIRE(raw.size() > std::size_t(h) * (1 + 3 * w));  // more than stb_image's first guess
  const auto adam7 = decode_picture(png_file(w, h, 2, true, zlib_compress(raw)), "adam7.png");
  REQUIRE(adam7.pixels.size() == std::size_t(w) * h * 3);
  bool every_pixel = true;
  for (std::uint32_t y = 0; y < h; ++y)
    for (std::uint32_t x = 0; x < w; ++x)
      for (std::uint32_t c = 0; c < 3; ++c) every_pixel &= adam7.pixels[(y * w + x) * 3 + c] == value(x, y, c);
  CHECK(every_pixel);
}
