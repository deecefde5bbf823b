#pragma once
// PNG output through stb_image_write, written atomically (io/atomic_file.hpp).
//
// stb_image_write is a single-header library whose implementation must be compiled in one
// translation unit. A header-only library cannot choose that unit, so this header compiles a
// private static copy into every unit that includes it (STB_IMAGE_WRITE_STATIC): no duplicate
// symbols, and nothing for the user to define. Include stb_image_write.h through this header only.
#include <cstdint>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/io/atomic_file.hpp"

#ifndef HUBBLE_STB_IMAGE_WRITE_INCLUDED
#define HUBBLE_STB_IMAGE_WRITE_INCLUDED
#if defined(__GNUC__)  // GCC and Clang: stb's own warnings are not the embedding program's
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

namespace hubble::io {

// The PNG encoding of a width x height image with `channels` (1 grey, 2 grey+alpha, 3 RGB,
// 4 RGBA) interleaved uint8 values per pixel, rows top to bottom.
inline std::vector<unsigned char> encode_png(int width, int height, int channels, const std::uint8_t* pixels) {
  HUBBLE_CHECK(width > 0 && height > 0 && channels >= 1 && channels <= 4, "encode_png: bad image size ", width, " x ",
               height, " x ", channels);
  HUBBLE_CHECK(pixels != nullptr, "encode_png: no pixels");
  std::vector<unsigned char> bytes;
  auto sink = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<unsigned char>*>(context);
    const auto* p = static_cast<const unsigned char*>(data);
    out->insert(out->end(), p, p + size);
  };
  const int ok = stbi_write_png_to_func(sink, &bytes, width, height, channels, pixels, width * channels);
  HUBBLE_CHECK(ok != 0 && !bytes.empty(), "encode_png: stb_image_write failed on a ", width, " x ", height, " x ",
               channels, " image");
  return bytes;
}

// Writes the image to `path` as PNG; the file appears complete or not at all (io/atomic_file.hpp),
// and a failure (a full disk, a missing folder) is an Error naming the file and the cause.
inline void write_png(const std::string& path, int width, int height, int channels, const std::uint8_t* pixels) {
  const std::vector<unsigned char> bytes = encode_png(width, height, channels, pixels);
  write_file_atomically(path, bytes.data(), bytes.size());
}
inline void write_png(const std::string& path, int width, int height, int channels,
                      const std::vector<std::uint8_t>& pixels) {
  HUBBLE_CHECK(pixels.size() == std::size_t(width) * height * channels, path, ": ", pixels.size(),
               " pixel values for a ", width, " x ", height, " x ", channels, " PNG");
  write_png(path, width, height, channels, pixels.data());
}

}  // namespace hubble::io
