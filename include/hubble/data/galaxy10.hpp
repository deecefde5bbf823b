#pragma once
// Galaxy10 DECaLS on disk and in memory.
//
// The official layout (Leung & Bovy's Galaxy10_DECals.h5, and every file hubble writes):
//   images  uint8  N x H x W x 3   RGB, row-major NHWC (256 x 256 in the official release)
//   ans     any integer type, N    the class id 0..9 (see galaxy10_class_names)
// Other datasets (ra, dec, redshift, src_index, ...) are ignored.
//
// load_galaxy10 reads `images` a block of `chunk_rows` rows at a time through HDF5 hyperslabs and
// centre-crops each image as it arrives, so reading the full 2.7 GB release at crop 128 needs
// about the cropped set (17,736 x 128 x 128 x 3 = 872 MB) plus one block, never the whole file.
// The crop window of an H x W image is rows [(H - crop) / 2, (H - crop) / 2 + crop) and the same
// for columns: for 256 -> 128 that is pixels 64..191.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/data/galaxy10_classes.hpp"
#include "hubble/data/image_set.hpp"
#include "hubble/io/atomic_file.hpp"
#include "hubble/io/hdf5.hpp"

namespace hubble::data {

namespace detail {
// Copies the crop_h x crop_w centre window of one height x width x channels image.
inline void crop_centre(const std::uint8_t* src, int height, int width, int channels, int crop_h, int crop_w,
                        std::uint8_t* dst) {
  const int y0 = (height - crop_h) / 2, x0 = (width - crop_w) / 2;
  const std::size_t row_bytes = std::size_t(crop_w) * channels;
  for (int y = 0; y < crop_h; ++y)
    std::copy_n(src + (std::size_t(y0 + y) * width + x0) * channels, row_bytes, dst + std::size_t(y) * row_bytes);
}
}  // namespace detail

// The centre crop x crop window of every image (the window load_galaxy10 reads); crop <= 0 or
// equal to the image size returns a copy.
inline ImageSet centre_crop(const ImageSet& set, int crop) {
  if (crop <= 0 || (crop == set.height && crop == set.width)) return set;
  HUBBLE_CHECK(crop <= set.height && crop <= set.width, "centre_crop: the images are ", set.height, " x ", set.width,
               ", smaller than the requested ", crop, " x ", crop, " crop");
  ImageSet out;
  out.height = out.width = crop;
  out.channels = set.channels;
  out.labels = set.labels;
  out.pixels.resize(std::size_t(set.size()) * out.image_bytes());
  for (int i = 0; i < set.size(); ++i)
    detail::crop_centre(set.image(i), set.height, set.width, set.channels, crop, crop, out.image(i));
  return out;
}

struct LoadOptions {
  int crop = 128;              // centre crop side; <= 0 or equal to the image side keeps the full image
  std::size_t chunk_rows = 64; // images read per HDF5 hyperslab
  std::size_t limit = 0;       // read only the first `limit` images; 0 = all
};

// Largest image side hubble accepts from a file (the release has 256).
inline constexpr std::uint64_t galaxy10_max_side = 65536;

namespace detail {
// The given rows of a checked file, one hyperslab per row (a rank of a data-parallel run reads
// only its own images this way).
inline ImageSet load_rows(const h5::File& file, const std::string& where, const std::vector<std::int64_t>& all_labels,
                          std::size_t n, const std::vector<std::size_t>& rows, int full_h, int full_w, int crop_h,
                          int crop_w) {
  ImageSet set;
  set.height = crop_h; set.width = crop_w; set.channels = 3;
  set.labels.resize(rows.size());
  for (std::size_t k = 0; k < rows.size(); ++k) {
    HUBBLE_CHECK(rows[k] < n, where, "row ", rows[k], " asked for, but only ", n, " images are read");
    const std::int64_t l = all_labels[rows[k]];
    HUBBLE_CHECK(l >= 0 && l < galaxy10_num_classes, where, "label ", l, " of image ", rows[k], " is outside 0..9");
    set.labels[k] = int(l);
  }
  const std::size_t full_bytes = std::size_t(full_h) * std::size_t(full_w) * 3;
  set.pixels.resize(rows.size() * set.image_bytes());
  std::vector<std::uint8_t> buffer(full_bytes);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    file.read_rows<std::uint8_t>("images", rows[k], 1, buffer.data(), buffer.size());
    crop_centre(buffer.data(), full_h, full_w, 3, crop_h, crop_w, set.image(int(k)));
  }
  return set;
}

inline ImageSet load_galaxy10_checked(const std::string& path, const LoadOptions& options,
                                      const std::vector<std::size_t>* rows = nullptr) {
  const h5::File file = h5::File::open(path);  // missing / not HDF5 -> Error naming the file
  const std::string where = path + ": ";
  const char* layout = " (expected the Galaxy10 layout: 'images' uint8 N x H x W x 3 and 'ans' integer N)";
  const bool has_images = file.has("images"), has_ans = file.has("ans");
  if (!has_images && !has_ans)
    h5::detail::missing(where, "no 'images' dataset and no 'ans' dataset: not a Galaxy10 file", layout);
  if (!has_images) h5::detail::missing(where, "no 'images' dataset", layout);
  if (!has_ans) h5::detail::missing(where, "no 'ans' (labels) dataset", layout);

  // info() has checked the declared sizes against what the file stores; the ranges below make
  // every narrowing to int exact.
  const h5::DatasetInfo img = file.info("images");
  HUBBLE_CHECK(img.dims.size() == 4, where, "'images' has rank ", img.dims.size(), " ", img.dims_str(),
               ", expected 4 (N x H x W x 3)");
  HUBBLE_CHECK(img.element == h5::ElementClass::integer && img.element_size == 1 && !img.is_signed, where,
               "'images' must hold uint8 pixels, but its elements are ",
               img.element == h5::ElementClass::floating ? "floating point" : img.element == h5::ElementClass::integer ? "integers" : "not numbers",
               " of ", img.element_size, " byte(s)", img.is_signed ? " (signed)" : "");
  HUBBLE_CHECK(img.dims[3] == 3, where, "'images' has ", img.dims[3], " channels ", img.dims_str(), ", expected 3 (RGB)");
  const h5::DatasetInfo ans = file.info("ans");
  HUBBLE_CHECK(ans.dims.size() == 1, where, "'ans' has shape ", ans.dims_str(), ", expected one label per image");
  HUBBLE_CHECK(ans.element == h5::ElementClass::integer, where, "'ans' must hold integer class ids, not ",
               ans.element == h5::ElementClass::floating ? "floating point numbers" : "non-numeric data");
  HUBBLE_CHECK(img.dims[0] == ans.dims[0], where, "'images' has ", img.dims[0], " images but 'ans' has ", ans.dims[0],
               " labels");
  HUBBLE_CHECK(img.dims[0] > 0, where, "the file holds no images (0 rows in 'images')");
  HUBBLE_CHECK(img.dims[0] <= std::uint64_t(std::numeric_limits<int>::max()), where, "'images' declares ",
               img.dims[0], " images, more than hubble can index");
  HUBBLE_CHECK(img.dims[1] > 0 && img.dims[2] > 0, where, "'images' has empty images ", img.dims_str());
  HUBBLE_CHECK(img.dims[1] <= galaxy10_max_side && img.dims[2] <= galaxy10_max_side, where, "'images' declares ",
               img.dims[1], " x ", img.dims[2], " images ", img.dims_str(), ", larger than ", galaxy10_max_side,
               " a side (corrupt file?)");

  const int full_h = int(img.dims[1]), full_w = int(img.dims[2]), channels = 3;
  int crop_h = full_h, crop_w = full_w;
  if (options.crop > 0 && !(options.crop == full_h && options.crop == full_w)) {
    HUBBLE_CHECK(options.crop <= full_h && options.crop <= full_w, where, "the images are ", full_h, " x ", full_w,
                 ", smaller than the requested ", options.crop, " x ", options.crop, " crop");
    crop_h = crop_w = options.crop;
  }
  const std::size_t n = options.limit > 0 ? std::min<std::size_t>(options.limit, img.dims[0]) : std::size_t(img.dims[0]);

  // Labels first: a bad label fails before the (slow) pixel read.
  const std::vector<std::int64_t> all_labels = file.read<std::int64_t>("ans");
  if (rows) return load_rows(file, where, all_labels, n, *rows, full_h, full_w, crop_h, crop_w);
  ImageSet set;
  set.height = crop_h; set.width = crop_w; set.channels = channels;
  set.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t l = all_labels[i];
    HUBBLE_CHECK(l >= 0 && l < galaxy10_num_classes, where, "label ", l, " of image ", i, " is outside 0..9");
    set.labels[i] = int(l);
  }

  const std::size_t block = std::max<std::size_t>(1, std::min(options.chunk_rows, n));
  const std::size_t full_bytes = std::size_t(full_h) * std::size_t(full_w) * channels;  // < 2^34: no overflow
  const auto set_bytes = h5::detail::checked_mul(n, set.image_bytes());
  const auto buffer_bytes = h5::detail::checked_mul(block, full_bytes);
  HUBBLE_CHECK(set_bytes && buffer_bytes, where, "'images' ", img.dims_str(), " is too large to load");
  set.pixels.resize(std::size_t(*set_bytes));
  const bool cropping = crop_h != full_h || crop_w != full_w;
  std::vector<std::uint8_t> buffer(cropping ? std::size_t(*buffer_bytes) : 0);
  for (std::size_t first = 0; first < n; first += block) {
    const std::size_t count = std::min(block, n - first);
    if (!cropping) {  // straight into place
      file.read_rows<std::uint8_t>("images", first, count, set.image(int(first)), (n - first) * full_bytes);
      continue;
    }
    file.read_rows<std::uint8_t>("images", first, count, buffer.data(), buffer.size());
    for (std::size_t k = 0; k < count; ++k)
      crop_centre(buffer.data() + k * full_bytes, full_h, full_w, channels, crop_h, crop_w,
                  set.image(int(first + k)));
  }
  return set;
}
}  // namespace detail

// Reads a Galaxy10 file. Every malformed input is an Error whose message starts with the path:
// a missing entry is an h5::MissingEntry, a truncated or corrupt file an h5::CorruptFile.
inline ImageSet load_galaxy10(const std::string& path, const LoadOptions& options = {}) {
  try {
    return detail::load_galaxy10_checked(path, options);
  } catch (const std::bad_alloc&) {
    h5::detail::corrupt(path, ": not enough memory to load it (", options.limit ? "limit " : "",
                        options.limit ? std::to_string(options.limit) + ", " : "", "crop ", options.crop, ")");
  } catch (const std::length_error&) {
    h5::detail::corrupt(path, ": it declares sizes too large to load (corrupt file?)");
  }
}

// Only the given rows of a Galaxy10 file, in this order (image k of the set is row rows[k]), each
// through its own hyperslab, cropped as load_galaxy10 does: a rank of a data-parallel run reads its
// own images this way, never the whole set. options.limit bounds the rows that may be asked for.
inline ImageSet load_galaxy10_rows(const std::string& path, const std::vector<std::size_t>& rows,
                                   const LoadOptions& options = {}) {
  try {
    return detail::load_galaxy10_checked(path, options, &rows);
  } catch (const std::bad_alloc&) {
    h5::detail::corrupt(path, ": not enough memory to load ", rows.size(), " images");
  }
}

// The labels of the first `limit` images (0: all) of a Galaxy10 file, checked like load_galaxy10's,
// without reading a pixel: enough to split the set before each process reads its own rows.
inline std::vector<int> read_galaxy10_labels(const std::string& path, std::size_t limit = 0) {
  LoadOptions o;
  o.limit = limit;
  o.crop = 0;
  const std::vector<std::size_t> first = {0};
  detail::load_galaxy10_checked(path, o, &first);  // every check of the layout; reads one image
  const std::vector<std::int64_t> all = h5::File::open(path).read<std::int64_t>("ans");
  const std::size_t n = limit > 0 ? std::min(limit, all.size()) : all.size();
  std::vector<int> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    HUBBLE_CHECK(all[i] >= 0 && all[i] < galaxy10_num_classes, path, ": label ", all[i], " of image ", i, " is outside 0..9");
    labels[i] = int(all[i]);
  }
  return labels;
}

// Writes `set` in the official layout (images gzip-chunked one image per chunk, with HDF5's
// Fletcher32 checksum per chunk; ans uint8), plus optional string attributes on the root group.
// The file is streamed to a temporary file beside `path` and renamed over it only when complete
// and synced (io/atomic_file.hpp): a full disk or a kill leaves the previous file as it was, and
// the Error names `path` and the cause.
inline void write_galaxy10(const std::string& path, const ImageSet& set,
                           const std::map<std::string, std::string>& attributes = {}) {
  HUBBLE_CHECK(set.height > 0 && set.width > 0 && set.channels == 3, path, ": cannot write a ", set.height, " x ",
               set.width, " x ", set.channels, " image set (Galaxy10 images are H x W x 3)");
  HUBBLE_CHECK(set.pixels.size() == set.labels.size() * set.image_bytes(), path, ": image set is inconsistent: ",
               set.pixels.size(), " pixel bytes for ", set.labels.size(), " labels of ", set.image_bytes(), " bytes");
  HUBBLE_CHECK(!set.labels.empty(), path, ": refusing to write an empty image set");
  std::vector<std::uint8_t> ans(set.labels.size());
  for (std::size_t i = 0; i < ans.size(); ++i) {
    HUBBLE_CHECK(set.labels[i] >= 0 && set.labels[i] < galaxy10_num_classes, path, ": label ", set.labels[i],
                 " of image ", i, " is outside 0..9");
    ans[i] = std::uint8_t(set.labels[i]);
  }
  io::write_file_atomically_with(path, [&](const std::string& temp) {
    h5::File out = h5::File::create(temp, path);
    out.write<std::uint8_t>("images", set.pixels.data(),
                            {hsize_t(set.size()), hsize_t(set.height), hsize_t(set.width), hsize_t(set.channels)}, 1,
                            true);
    out.write<std::uint8_t>("ans", ans.data(), {hsize_t(ans.size())});
    for (const auto& [k, v] : attributes) out.set_attribute(k, v);
    out.close();
  });
}

}  // namespace hubble::data
