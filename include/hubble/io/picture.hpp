#pragma once
// Reading pictures (PNG, JPEG, BMP, GIF, TGA, PSD, PIC, PNM) to classify, through stb_image,
// with the checks a program fed arbitrary paths needs:
//
//   io::Picture p = io::read_picture("galaxy.jpg");            // hubble::Error naming the file on failure
//   io::Picture q = io::decode_picture(bytes, "upload #3");    // the same from bytes in memory
//
// read_picture refuses what is not a regular file before opening it (a FIFO would block the
// read forever, a folder or a device is not a picture; symbolic links are followed, and a loop
// is reported), reads at most max_picture_file_bytes, and decode_picture refuses a header that
// declares more than max_picture_pixels before stb_image allocates anything for it.
//
// Debian 12 ships stb_image 2.27, and fuzzing (tests/fuzz, docs/hardening.md) found several of its
// bugs that a picture can trigger; they are kept out here rather than patched in stb:
//  * Radiance HDR: a truncated RLE scanline never finishes decoding (CVE-2021-42715, fixed in
//    2.28). HDR is compiled out (STBI_NO_HDR): a galaxy cut-out is never HDR.
//  * JPEG: a Huffman table whose code counts add up past 256 makes stbi__build_huffman write
//    past its size[257] array, already while reading the header. jpeg_huffman_tables_fit()
//    reads every place stb_image could take for such a table and refuses the file first.
//  * PNG: an empty IDAT chunk before the first one with data makes stbi__getn call
//    memcpy(NULL, ..., 0), undefined behaviour (UBSan stops there), even when the file ends
//    before the chunk's CRC. An empty IDAT carries nothing, so decode_picture hands stb_image a
//    copy without such chunks: the same picture, decoded (or refused as truncated).
//  * PNM: stbi__pnm_getinteger reads the header's numbers into an int with no overflow check, so
//    "P6" and thirty digits overflow it (UBSan stops there). pnm_header_numbers_fit() refuses a
//    number of more than 9 digits first; no picture hubble reads is that large.
//  * Memory: stb_image sizes some buffers from the data rather than from the picture's header.
//    A 117-byte PNG whose IDAT chunk declares 1.5 GB made it allocate 2 GiB before finding the
//    data missing, and a deflate stream may inflate to 4 GiB whatever the header says. While
//    decode_picture runs, every stb_image allocation goes through stb_allocate(), which refuses
//    more than the declared picture can need (stb_allocation_limit); stb_image then gives up, and
//    decode_picture reports it.
//
// stb_image is a single-header library; like io/png.hpp this header compiles a private static
// copy (STB_IMAGE_STATIC) into every unit that includes it, so the user defines nothing.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "hubble/core/error.hpp"

namespace hubble::io::detail {
// The allocator stb_image is compiled with (STBI_MALLOC and STBI_REALLOC below). Outside
// decode_picture the limit is off: survey::jpeg_recompress decodes the JPEGs it made itself.
inline thread_local std::size_t stb_allocation_limit = std::numeric_limits<std::size_t>::max();
inline thread_local std::size_t stb_refused_bytes = 0;  // the largest request refused, 0 if none
inline void* stb_allocate(void* old, std::size_t bytes) {
  if (bytes > stb_allocation_limit) {  // as if out of memory: stb_image keeps `old` and frees it
    stb_refused_bytes = std::max(stb_refused_bytes, bytes);
    return nullptr;
  }
  return std::realloc(old, bytes);  // realloc(nullptr, n) is malloc(n)
}
}  // namespace hubble::io::detail

#ifndef HUBBLE_STB_IMAGE_INCLUDED
#define HUBBLE_STB_IMAGE_INCLUDED
#if defined(__GNUC__)  // GCC and Clang: stb's own warnings are not the embedding program's
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wconversion"
#endif
#if defined(__clang__)
// stb_image's JPEG decoder shifts its bit buffer by up to 34 places on corrupt entropy-coded data
// (a fuzz finding, jpeg_bit_buffer_shift.jpg): undefined behaviour, which on x86 masks the count
// and so puts wrong bits in a picture that is corrupt anyway; it cannot be kept out from here
// short of decoding the JPEG. UBSan's shift checks are off in stb's functions only (ASan still
// checks every access they make, and hubble's own code keeps every check).
#pragma clang attribute push(__attribute__((no_sanitize("shift"))), apply_to = function)
#endif
#define STB_IMAGE_STATIC
#define STBI_NO_HDR
#define STB_IMAGE_IMPLEMENTATION
#define STBI_MALLOC(bytes) ::hubble::io::detail::stb_allocate(nullptr, bytes)
#define STBI_REALLOC(old, bytes) ::hubble::io::detail::stb_allocate(old, bytes)
#define STBI_FREE(p) std::free(p)
#include <stb_image.h>
#undef STB_IMAGE_IMPLEMENTATION
#undef STBI_MALLOC
#undef STBI_REALLOC
#undef STBI_FREE
#if defined(__clang__)
#pragma clang attribute pop
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

namespace hubble::io {

// Limits that keep a hostile file from asking for unbounded memory: 256 MiB of file, 2^26
// pixels (8192 x 8192) of picture. Real galaxy cut-outs are a few hundred pixels a side.
inline constexpr std::uintmax_t max_picture_file_bytes = std::uintmax_t(256) << 20;
inline constexpr std::uint64_t max_picture_pixels = std::uint64_t(1) << 26;

// A decoded picture: width x height pixels of `channels` interleaved bytes (1 grey, 2 grey +
// alpha, 3 RGB, 4 RGBA), rows top to bottom, as the file stores them.
struct Picture {
  int width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;  // width * height * channels
};

namespace detail {
// False when a JPEG holds a Huffman table (DHT segment) that declares more than 256 codes, which
// stb_image 2.27 would write past an array. stb_image reads a marker wherever 0xFF, any 0xFF fill
// bytes and the marker byte follow each other (between segments it even scans past padding to
// find one), so rather than follow its parse, every such 0xFF ... 0xC4 in the file is read as a
// DHT the way stbi__process_marker reads it: bytes past the end as 0, and a table whose class or
// slot stb_image refuses ends the segment before any code count is used. A good JPEG passes (its
// tables fit); a file where a stray 0xFF 0xC4 inside other data happens to look like a table of
// more than 256 codes is refused too, with the same clear error.
inline bool jpeg_huffman_tables_fit(std::span<const std::uint8_t> b) {
  const auto at = [&](std::size_t i) -> unsigned { return i < b.size() ? b[i] : 0u; };
  std::size_t soi = 1;  // stb_image takes a file for a JPEG when 0xFF, fill bytes and 0xD8 open it
  while (at(0) == 0xFF && at(soi) == 0xFF) ++soi;
  if (at(0) != 0xFF || at(soi) != 0xD8) return true;  // not a JPEG
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (b[i] != 0xFF) continue;
    std::size_t m = i + 1;
    while (m < b.size() && b[m] == 0xFF) ++m;  // fill bytes
    if (m >= b.size() || b[m] != 0xC4) continue;
    long left = long(at(m + 1) << 8 | at(m + 2)) - 2;
    std::size_t q = m + 3;
    while (left > 0) {
      const unsigned klass = at(q) >> 4, slot = at(q) & 15;
      if (klass > 1 || slot > 3) break;  // "bad DHT header": stb_image stops before the counts
      unsigned codes = 0;
      for (std::size_t k = 1; k <= 16; ++k) codes += at(q + k);
      if (codes > 256) return false;
      q += 17 + codes;
      left -= 17 + long(codes);
    }
  }
  return true;
}

// False when a binary PNM (P5 or P6, the kinds stb_image reads) has a width, height or maximum
// value of more than 9 digits: stb_image 2.27 accumulates each in an int with no overflow check
// (undefined behaviour past 2,147,483,647). The header is walked as stbi__pnm_info walks it:
// whitespace and '#' comments to the end of a line, then a run of digits, three times.
inline bool pnm_header_numbers_fit(std::span<const std::uint8_t> b) {
  if (b.size() < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6')) return true;  // not a PNM stb reads
  const auto space = [](std::uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::size_t i = 2;
  for (int field = 0; field < 3; ++field) {
    for (;;) {
      while (i < b.size() && space(b[i])) ++i;
      if (i >= b.size() || b[i] != '#') break;
      while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
    }
    for (int digits = 0; i < b.size() && b[i] >= '0' && b[i] <= '9'; ++i)
      if (++digits > 9) return false;
  }
  return true;
}

// For a PNG with IDAT chunks of length 0 (see the header comment), a copy of it without them;
// otherwise nothing. Nothing else changes: stb_image does not check the CRCs, and no chunk refers
// to another by position.
inline std::optional<std::vector<std::uint8_t>> png_without_empty_idat(std::span<const std::uint8_t> b) {
  static constexpr std::uint8_t signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  if (b.size() < 8 || !std::equal(signature, signature + 8, b.begin())) return std::nullopt;
  // Chunks as stb_image walks them: 4-byte big-endian length, 4-byte type, data, 4-byte CRC.
  std::vector<std::size_t> empty_idat;  // where each starts
  for (std::size_t at = 8; b.size() - at >= 8;) {
    const std::size_t length =
        std::size_t(b[at]) << 24 | std::size_t(b[at + 1]) << 16 | std::size_t(b[at + 2]) << 8 | std::size_t(b[at + 3]);
    // An empty IDAT counts even when the file ends before its CRC: stb_image reads a chunk's data
    // before its CRC, so it would reach the memcpy all the same (a fuzz finding, 43 bytes).
    if (length == 0 && std::equal(b.begin() + long(at) + 4, b.begin() + long(at) + 8, "IDAT")) empty_idat.push_back(at);
    if (b.size() - at < 12 || length > b.size() - at - 12) break;  // truncated: stb_image stops here too
    at += 12 + length;
  }
  if (empty_idat.empty()) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(b.size() - 12 * empty_idat.size());
  std::size_t from = 0;
  for (const std::size_t at : empty_idat) {
    out.insert(out.end(), b.begin() + long(from), b.begin() + long(at));
    from = std::min(at + 12, b.size());  // a chunk cut short goes to the end
  }
  out.insert(out.end(), b.begin() + long(from), b.end());
  return out;
}

// The most bytes one stb_image allocation may take for a w x h picture: 16-bit samples of 4
// channels plus a filter byte a row (PNG's inflated data, the largest buffer), on a grid padded
// to JPEG's 16 x 16 blocks, twice over (stb_image grows a buffer by doubling it, and an
// interlaced PNG inflates to a little more than its first guess), and 1 MiB for decoder state.
inline std::size_t stb_allocation_limit_for(int w, int h) {
  const std::size_t padded_w = (std::size_t(w) + 15) / 16 * 16, padded_h = (std::size_t(h) + 15) / 16 * 16;
  return 2 * padded_h * (1 + 8 * padded_w) + (std::size_t(1) << 20);
}

// Sets stb_allocation_limit for one call into stb_image, and puts it back however that ends.
class StbAllocationLimit {
 public:
  explicit StbAllocationLimit(std::size_t limit) : previous_(stb_allocation_limit) {
    stb_allocation_limit = limit;
    stb_refused_bytes = 0;
  }
  ~StbAllocationLimit() { stb_allocation_limit = previous_; }
  StbAllocationLimit(const StbAllocationLimit&) = delete;
  StbAllocationLimit& operator=(const StbAllocationLimit&) = delete;

 private:
  std::size_t previous_;
};
}  // namespace detail

// Decodes a picture held in memory; `name` (a path, or any label) starts every error message.
inline Picture decode_picture(std::span<const std::uint8_t> bytes, const std::string& name) {
  HUBBLE_CHECK(!bytes.empty(), name, ": empty file, not a picture");
  HUBBLE_CHECK(detail::jpeg_huffman_tables_fit(bytes), name,
               ": corrupt JPEG (a Huffman table declares more than 256 codes)");
  HUBBLE_CHECK(detail::pnm_header_numbers_fit(bytes), name,
               ": corrupt PNM header (a width, height or maximum value of more than 9 digits)");
  HUBBLE_CHECK(bytes.size() <= std::size_t(std::numeric_limits<int>::max()), name, ": ", bytes.size(),
               " bytes is too large for a picture");
  if (const auto cleaned = detail::png_without_empty_idat(bytes)) return decode_picture(*cleaned, name);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = int(bytes.size());
  int w = 0, h = 0, c = 0;
  {
    const detail::StbAllocationLimit header_only(std::size_t(1) << 20);  // reading a header needs little
    HUBBLE_CHECK(stbi_info_from_memory(data, length, &w, &h, &c) == 1, name, ": not a picture hubble can read (",
                 stbi_failure_reason(), "; PNG, JPEG, BMP, GIF, TGA, PSD, PIC and PNM are)");
  }
  HUBBLE_CHECK(w > 0 && h > 0 && c >= 1 && c <= 4, name, ": the picture declares a ", w, " x ", h, " x ", c, " image");
  HUBBLE_CHECK(std::uint64_t(w) * std::uint64_t(h) <= max_picture_pixels, name, ": the picture declares ", w, " x ", h,
               " pixels, more than the ", max_picture_pixels, " hubble reads");
  int dw = 0, dh = 0, dc = 0;
  const detail::StbAllocationLimit limit(detail::stb_allocation_limit_for(w, h));
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, length, &dw, &dh, &dc, 0),
                                                   stbi_image_free);
  HUBBLE_CHECK(pixels != nullptr || detail::stb_refused_bytes == 0, name, ": corrupt picture: decoding it asked for ",
               detail::stb_refused_bytes, " bytes at once, more than the ", detail::stb_allocation_limit, " a ", w,
               " x ", h, " picture can need");
  const char* why = pixels ? nullptr : stbi_failure_reason();
  HUBBLE_CHECK(pixels != nullptr, name, ": cannot decode the picture (",
               why && *why ? why : "stb_image gives no reason: truncated or corrupt data", ")");
  HUBBLE_CHECK(dw == w && dh == h && dc == c, name, ": the picture decoded to ", dw, " x ", dh, " x ", dc,
               " but its header said ", w, " x ", h, " x ", c);
  Picture p;
  p.width = w;
  p.height = h;
  p.channels = c;
  p.pixels.assign(pixels.get(), pixels.get() + std::size_t(w) * std::size_t(h) * std::size_t(c));
  return p;
}

// Reads and decodes the picture at `path`.
inline Picture read_picture(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status link = fs::symlink_status(path, ec);
  HUBBLE_CHECK(!ec && fs::exists(link), path, ": no such file");
  const fs::file_status st = fs::status(path, ec);
  HUBBLE_CHECK(st.type() != fs::file_type::not_found, path, ": a symbolic link to a file that does not exist");
  if (ec) {  // e.g. ELOOP for a symbolic link loop, EACCES for a folder we cannot search
    ::hubble::detail::fail(path, ": cannot follow the path (", ec.message(), ")");
  }
  HUBBLE_CHECK(!fs::is_directory(st), path, ": is a folder, not a picture");
  HUBBLE_CHECK(fs::is_regular_file(st), path, ": is not a regular file (",
               fs::is_fifo(st)                                      ? "a FIFO"
               : fs::is_socket(st)                                  ? "a socket"
               : fs::is_block_file(st) || fs::is_character_file(st) ? "a device"
                                                                    : "a special file",
               "), not a picture");
  const std::uintmax_t size = fs::file_size(path, ec);
  HUBBLE_CHECK(!ec, path, ": cannot read its size (", ec.message(), ")");
  HUBBLE_CHECK(size <= max_picture_file_bytes, path, ": ", size, " bytes, more than the ", max_picture_file_bytes,
               " a picture may have");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  HUBBLE_CHECK(f != nullptr, path, ": cannot open (", std::error_code(errno, std::generic_category()).message(), ")");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  const std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f.get());
  HUBBLE_CHECK(got == bytes.size(), path, ": read ", got, " of its ", bytes.size(),
               " bytes (was it changed while read?)");
  return decode_picture(bytes, path);
}

}  // namespace hubble::io
