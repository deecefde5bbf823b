#pragma once
// Checkpoints: a network's weights plus everything a training run needs to continue exactly
// (optimiser state, epoch, random streams, history), in one HDF5 file.
//
//   save_checkpoint("runs/x/last.h5", net, &adam, data);     // atomic: the old file or the new one
//   CheckpointData d = load_checkpoint("runs/x/last.h5", net, &adam);
//
// The schema (format_version 2) and the checksum are documented in docs/checkpoints.md. In short
// (T = the network's scalar type, every dataset little-endian):
//   attributes on /   format "hubble-checkpoint", format_version 2, architecture, scalar ("float"/"double")
//   weights/<param>   T with the parameter's shape: Conv2D kernel [kh,kw,in,out], Dense kernel [in,out],
//                     biases and the rest [n] (a 1-D [n] array of the right size is read too)
//   buffers/<name>    T[n]
//   optimizer/name (string), optimizer/steps int64[1], optimizer/slots_per_param int64[1],
//   optimizer/slots/<param>/<s> T[n]
//   epoch int64[1], rng/network/<i> uint64[4], rng/trainer/<name> uint64[4]
//   metadata/<key> string, training/<key> float64[n]
//   every dataset has a uint64 attribute "checksum": BLAKE2b (8-byte digest, read little-endian)
//   of its little-endian bytes (a string: its characters).
//
// Saving builds the file in memory and writes it with io::AtomicFile, so a full disk or a
// killed process leaves the previous file byte for byte, and the error names the file and the
// cause. Loading checks, before it changes anything: format and version, architecture, scalar
// type, the exact type, shape and checksum of every dataset, finite weights, buffers and
// optimiser slots, and the range of every integer, and every array's shape against the network.
// Version-1 files (no checksums) still load, with everything but the checksums checked.
// Weights-only files (docs/checkpoints.md: written by hand, e.g. from h5py): the four attributes
// and weights/ (+ buffers/) are enough to load for inference or fine-tuning (no optimiser, epoch or
// random streams; a root attribute checksums = "none" declares that no dataset has a checksum);
// resuming training (load with an optimiser) still needs the full state.
// Strings may be fixed- or variable-length (h5py's default). Errors name the file; a missing entry says
// "lacks", a damaged file "cannot be read (truncated or corrupt)".
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/parameter_shape.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/io/atomic_file.hpp"
#include "hubble/io/hdf5.hpp"
#include "hubble/optim/optimizer_state.hpp"

namespace hubble {

inline constexpr const char* checkpoint_format = "hubble-checkpoint";
inline constexpr std::int64_t checkpoint_format_version = 2;
inline constexpr std::int64_t checkpoint_max_epoch = 2147483647;              // 2^31 - 1
inline constexpr std::int64_t checkpoint_max_steps = std::int64_t(1) << 53;   // exact in a double

// What a checkpoint holds besides the network and the optimiser.
struct CheckpointData {
  long long epoch = 0;                                              // completed epochs
  std::map<std::string, std::array<std::uint64_t, 4>> rngs;         // rng/trainer/<name>
  std::map<std::string, std::string> metadata;                      // metadata/<key>
  std::map<std::string, std::vector<double>> values;                // training/<key>

  // Convenience for single numbers stored in `values`.
  double value(const std::string& key, double fallback) const {
    const auto it = values.find(key);
    return it == values.end() || it->second.empty() ? fallback : it->second.front();
  }
  std::string meta(const std::string& key, const std::string& fallback = "") const {
    const auto it = metadata.find(key);
    return it == metadata.end() ? fallback : it->second;
  }
};

// The attributes of a checkpoint, readable without knowing its network type.
struct CheckpointHeader {
  std::string path, architecture, scalar, optimizer;  // optimizer: "" when none was saved
  std::int64_t format_version = 0;
  long long epoch = 0;
  bool checksums = false;  // format 2: every dataset carries a checksum that loading verifies
  bool has_epoch = false;  // false in a weights-only file (epoch then reads 0)
};

template <class T>
constexpr const char* scalar_name() {
  if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, double>) return "double";
  else static_assert(sizeof(T) == 0, "checkpoint: the scalar type must be float or double");
}

// BLAKE2b (RFC 7693) with an 8-byte digest and no key, read as a little-endian uint64: what
// Python's int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") gives.
inline std::uint64_t checkpoint_digest(const void* data, std::size_t size) {
  static constexpr std::uint64_t iv[8] = {0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
                                          0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
                                          0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
  static constexpr std::uint8_t sigma[12][16] = {
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
      {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
      {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
      {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
      {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};
  std::uint64_t h[8];
  for (int i = 0; i < 8; ++i) h[i] = iv[i];
  h[0] ^= 0x01010000ULL ^ 8;  // depth 1, fanout 1, no key, 8-byte digest
  auto compress = [&](const unsigned char* block, std::uint64_t counter, bool last) {
    std::uint64_t m[16], v[16];
    for (int i = 0; i < 16; ++i) {
      m[i] = 0;
      for (int b = 7; b >= 0; --b) m[i] = (m[i] << 8) | block[8 * i + b];
    }
    for (int i = 0; i < 8; ++i) { v[i] = h[i]; v[i + 8] = iv[i]; }
    v[12] ^= counter;
    if (last) v[14] = ~v[14];
    auto g = [&](int a, int b, int c, int d, std::uint64_t x, std::uint64_t y) {
      v[a] = v[a] + v[b] + x; v[d] = std::rotr(v[d] ^ v[a], 32);
      v[c] = v[c] + v[d];     v[b] = std::rotr(v[b] ^ v[c], 24);
      v[a] = v[a] + v[b] + y; v[d] = std::rotr(v[d] ^ v[a], 16);
      v[c] = v[c] + v[d];     v[b] = std::rotr(v[b] ^ v[c], 63);
    };
    for (const auto& s : sigma) {
      g(0, 4, 8, 12, m[s[0]], m[s[1]]);  g(1, 5, 9, 13, m[s[2]], m[s[3]]);
      g(2, 6, 10, 14, m[s[4]], m[s[5]]); g(3, 7, 11, 15, m[s[6]], m[s[7]]);
      g(0, 5, 10, 15, m[s[8]], m[s[9]]); g(1, 6, 11, 12, m[s[10]], m[s[11]]);
      g(2, 7, 8, 13, m[s[12]], m[s[13]]); g(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; ++i) h[i] ^= v[i] ^ v[i + 8];
  };
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t done = 0;
  while (size > 128) {  // every full block but the last
    done += 128;
    compress(p, done, false);
    p += 128;
    size -= 128;
  }
  unsigned char last[128] = {};
  if (size) std::memcpy(last, p, size);
  compress(last, done + size, true);
  return h[0];  // the digest's 8 bytes are h[0] little-endian
}

namespace detail {

// The digest of n values as little-endian bytes (the file's byte order).
template <class V>
std::uint64_t digest_of(const V* values, std::size_t n) {
  if constexpr (std::endian::native == std::endian::little || sizeof(V) == 1) {
    return checkpoint_digest(values, n * sizeof(V));
  } else {
    std::vector<unsigned char> bytes(n * sizeof(V));
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t b = 0; b < sizeof(V); ++b)
        bytes[i * sizeof(V) + b] = reinterpret_cast<const unsigned char*>(values + i)[sizeof(V) - 1 - b];
    return checkpoint_digest(bytes.data(), bytes.size());
  }
}

// Keys of CheckpointData become HDF5 paths: "a" or "a/b", never empty parts.
inline void check_key(const std::string& path, const std::string& key) {
  HUBBLE_CHECK(!key.empty() && key.front() != '/' && key.back() != '/' && key.find("//") == std::string::npos &&
                   key.find('.') != 0,
               path, ": '", key, "' cannot name a checkpoint entry (use 'name' or 'group/name')");
}

inline std::string unreadable(const std::string& path, const std::string& why, const char* what = "checkpoint") {
  return std::string(what) + " " + path + " cannot be read (truncated or corrupt): " + why;
}

// Runs read(); a damaged file becomes an error saying so, naming the file (`what` says what
// kind of file it is); running out of memory (sizes HDF5 itself decodes) still names the file.
template <class Read>
auto guarded_read(const std::string& path, Read&& read, const char* what = "checkpoint") {
  try {
    return read();
  } catch (const h5::CorruptFile& e) {
    throw h5::CorruptFile(unreadable(path, e.what(), what));
  } catch (const std::bad_alloc&) {
    throw h5::CorruptFile(unreadable(path, "it asks for more memory than there is (corrupt sizes?)", what));
  } catch (const std::length_error&) {
    throw h5::CorruptFile(unreadable(path, "it declares impossible sizes", what));
  }
}

// The element type a dataset of V must have in a format-2 checkpoint.
template <class V>
bool stored_as(const h5::DatasetInfo& i) {
  if (i.element_size != sizeof(V)) return false;
  if constexpr (std::is_floating_point_v<V>) return i.element == h5::ElementClass::floating;
  else return i.element == h5::ElementClass::integer && i.is_signed == std::is_signed_v<V>;
}
template <class V>
const char* type_name() {
  if constexpr (std::is_same_v<V, float>) return "float32";
  else if constexpr (std::is_same_v<V, double>) return "float64";
  else if constexpr (std::is_same_v<V, std::int64_t>) return "int64";
  else if constexpr (std::is_same_v<V, std::int8_t>) return "int8";
  else return "uint64";
}

inline void verify(const h5::File& f, const std::string& name, std::uint64_t digest) {
  if (!f.has_attribute(name, "checksum")) h5::detail::corrupt(f.path(), ": dataset '", name, "' has no checksum");
  const std::uint64_t stored = f.u64_attribute(name, "checksum");
  if (stored != digest)
    h5::detail::corrupt(f.path(), ": dataset '", name, "' fails its checksum (stored ", stored, ", computed ", digest,
                        "): the file was damaged after it was written");
}

// Reads one whole checkpoint dataset of V values; with `expected` set, it must hold exactly that
// many. In a format-2 file its element type must be V and its checksum must match.
template <class V>
std::vector<V> read_values(const h5::File& f, bool checksums, const std::string& name, const std::string& what,
                           std::optional<std::size_t> expected = std::nullopt) {
  if (!f.has(name)) h5::detail::missing(f.path(), ": checkpoint lacks dataset '", name, "' (", what, ")");
  const h5::DatasetInfo info = f.info(name);
  HUBBLE_CHECK(info.element == h5::ElementClass::integer || info.element == h5::ElementClass::floating, f.path(),
               ": checkpoint dataset '", name, "' does not hold numbers");
  if (checksums && !stored_as<V>(info))
    h5::detail::corrupt(f.path(), ": dataset '", name, "' holds ", info.element_size, "-byte ",
                        info.element == h5::ElementClass::floating ? "floats" : "integers", ", expected ",
                        type_name<V>());
  HUBBLE_CHECK(!expected || info.count() == *expected, f.path(), ": checkpoint dataset '", name, "' holds ",
               info.count(), " values, expected ", expected ? *expected : 0, " (", what, ")");
  std::vector<V> v = f.read<V>(name);
  if (checksums) verify(f, name, digest_of(v.data(), v.size()));
  return v;
}

inline std::string read_text(const h5::File& f, bool checksums, const std::string& name) {
  std::string s = f.read_string(name);
  if (checksums) verify(f, name, checkpoint_digest(s.data(), s.size()));
  return s;
}

// Refuses NaN and infinities: a diverged run's weights would only give NaN probabilities.
template <class T>
void check_finite(const std::string& path, const std::string& name, const std::vector<T>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      ::hubble::detail::fail(path, ": checkpoint array '", name, "' holds ", v[i], " at index ", i,
                             " (weights and optimiser state must be finite; a diverged run?)");
}

template <class V>
void check_range(const std::string& path, const std::string& name, V value, V low, V high) {
  if (value < low || value > high)
    h5::detail::corrupt(path, ": '", name, "' is ", value, ", outside ", low, "..", high);
}

inline std::array<std::uint64_t, 4> read_stream(const h5::File& f, bool checksums, const std::string& name,
                                                const std::string& what) {
  const auto v = read_values<std::uint64_t>(f, checksums, name, what, 4);
  if ((v[0] | v[1] | v[2] | v[3]) == 0) h5::detail::corrupt(f.path(), ": random stream '", name, "' is all zero");
  return {v[0], v[1], v[2], v[3]};
}

// Network::buffers() (non-trainable state such as BatchNorm's moving statistics), or none for
// networks that predate it.
template <class Net>
auto buffers_of(Net& net) {
  if constexpr (requires { net.buffers(); }) return net.buffers();
  else return std::vector<ParamRef<typename Net::scalar>>{};
}

inline constexpr std::size_t max_extras = 10000;  // entries per group of extras

// The trainer streams, metadata and numbers of an open checkpoint.
inline void read_extras(const h5::File& f, bool checksums, CheckpointData& data) {
  for (const std::string& name : f.datasets("rng/trainer", max_extras))
    data.rngs[name] = read_stream(f, checksums, "rng/trainer/" + name, "trainer stream");
  for (const std::string& key : f.datasets("metadata", max_extras))
    data.metadata[key] = read_text(f, checksums, "metadata/" + key);
  for (const std::string& key : f.datasets("training", max_extras))
    data.values[key] = read_values<double>(f, checksums, "training/" + key, "training numbers");
}

// Builds the file in memory (HDF5 never touches the disk), then writes its bytes atomically.
template <class Fill>
void write_atomically(const std::string& path, Fill&& fill) {
  std::vector<unsigned char> bytes;
  {
    h5::File f = h5::File::create_in_memory(path);
    fill(f);
    f.close();
    bytes = f.image();
  }
  io::write_file_atomically(path, bytes.data(), bytes.size());
}

// A dataset and its checksum; `written` counts the datasets for the root's dataset_count.
template <class V>
void put(h5::File& f, std::int64_t& written, const std::string& name, const V* values, std::size_t n,
         const std::vector<std::size_t>& shape = {}) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  if (dims.empty()) dims = {hsize_t(n)};
  f.write<V>(name, values, dims);
  f.set_attribute(name, "checksum", digest_of(values, n));
  ++written;
}
inline void put_text(h5::File& f, std::int64_t& written, const std::string& name, const std::string& text) {
  f.write_string(name, text);
  f.set_attribute(name, "checksum", checkpoint_digest(text.data(), text.size()));
  ++written;
}

// Format 2 records how many datasets it holds, so a removed entry (e.g. one of training/) is
// noticed rather than silently missing from what load returns.
// An array's shape must be the network's (Conv2D kernels [kh,kw,in,out], Dense [in,out], the rest
// [n]); a 1-D array of the right size is accepted too (files written before shapes were stored).
inline void check_shape(const h5::File& f, const std::string& name, const std::vector<std::size_t>& expected) {
  if (!f.has(name)) return;  // read_values reports the missing entry
  const h5::DatasetInfo info = f.info(name);
  std::vector<std::size_t> found(info.dims.begin(), info.dims.end());
  std::size_t count = 1;
  for (auto d : expected) count *= d;
  if (found == expected || found == std::vector<std::size_t>{count}) return;
  ::hubble::detail::fail(f.path(), ": checkpoint array '", name, "' has shape ", shape_text(found), ", expected ",
                         shape_text(expected), " (hubble's layout: Conv2D kernels [kh,kw,in,out], Dense kernels [in,out] "
                         "with rows in (h,w,c) order; docs/checkpoints.md)");
}

inline void check_dataset_count(const h5::File& f, bool checksums) {
  if (!checksums) return;
  if (!f.has_attribute("dataset_count")) h5::detail::missing(f.path(), ": checkpoint lacks attribute 'dataset_count'");
  const std::int64_t declared = f.int_attribute("dataset_count");
  const std::size_t found = f.datasets("/").size();
  if (declared < 0 || std::uint64_t(declared) != found)
    h5::detail::corrupt(f.path(), ": checkpoint declares ", declared, " datasets but holds ", found);
}

}  // namespace detail

// Reads only the header (attributes, optimiser name, epoch).
inline CheckpointHeader read_checkpoint_header(const std::string& path) {
  HUBBLE_CHECK(std::filesystem::exists(path), path, ": no such file (expected a hubble checkpoint)");
  return detail::guarded_read(path, [&] {
    const h5::File f = h5::File::open(path);
    CheckpointHeader h;
    h.path = path;
    const bool has_format = f.has_attribute("format");
    const std::string format = has_format ? f.attribute("format") : std::string();
    HUBBLE_CHECK(format == checkpoint_format, path, ": not a hubble checkpoint (its 'format' attribute is ",
                 has_format ? "'" + format + "'" : std::string("missing"), ", expected '", checkpoint_format, "')");
    if (!f.has_attribute("format_version")) h5::detail::missing(path, ": checkpoint lacks attribute 'format_version'");
    h.format_version = f.int_attribute("format_version");
    HUBBLE_CHECK(h.format_version == 1 || h.format_version == 2, path, ": checkpoint format version ",
                 h.format_version, " is not supported (this hubble reads versions 1 and 2)");
    h.checksums = h.format_version >= 2;
    // A file written by hand (h5py, ...) may declare that it carries no checksums (docs/checkpoints.md).
    if (h.format_version >= 2 && f.has_attribute("checksums")) {
      const std::string declared = f.attribute("checksums");
      HUBBLE_CHECK(declared == "none", path, ": checkpoint attribute 'checksums' is '", declared,
                   "'; the only value it may have is 'none' (a file without checksums)");
      h.checksums = false;
    }
    if (!f.has_attribute("architecture")) h5::detail::missing(path, ": checkpoint lacks attribute 'architecture'");
    if (!f.has_attribute("scalar")) h5::detail::missing(path, ": checkpoint lacks attribute 'scalar'");
    h.architecture = f.attribute("architecture");
    h.scalar = f.attribute("scalar");
    if (f.has("optimizer/name")) h.optimizer = detail::read_text(f, h.checksums, "optimizer/name");
    h.has_epoch = f.has("epoch");  // absent in a weights-only file
    if (h.has_epoch) {
      h.epoch = detail::read_values<std::int64_t>(f, h.checksums, "epoch", "completed epochs", 1)[0];
      detail::check_range<std::int64_t>(path, "epoch", h.epoch, 0, checkpoint_max_epoch);
    }
    return h;
  });
}

// Everything but the weights and the optimiser (epoch, trainer streams, metadata, numbers), e.g.
// to recover a run's settings before building its network.
inline CheckpointData read_checkpoint_data(const std::string& path) {
  const CheckpointHeader h = read_checkpoint_header(path);
  CheckpointData data;
  data.epoch = h.epoch;
  detail::guarded_read(path, [&] {
    const h5::File f = h5::File::open(path);
    detail::check_dataset_count(f, h.checksums);
    detail::read_extras(f, h.checksums, data);
    return 0;
  });
  return data;
}

// Saves `net` (and `opt` when not null) to `path` atomically: on any failure (a full disk, a
// file-size limit, a bad key) the previous file is left as it was and the Error names the file.
template <class Net>
void save_checkpoint(const std::string& path, Net& net, const OptimizerState<typename Net::scalar>* opt,
                     const CheckpointData& data = {}) {
  using T = typename Net::scalar;
  const auto params = net.parameters();
  HUBBLE_CHECK(data.epoch >= 0 && data.epoch <= checkpoint_max_epoch, path, ": epoch ", data.epoch,
               " is outside 0..", checkpoint_max_epoch);
  for (const auto& [name, state] : data.rngs) detail::check_key(path, name);
  for (const auto& [key, text] : data.metadata) detail::check_key(path, key);
  for (const auto& [key, v] : data.values) detail::check_key(path, key);
  detail::write_atomically(path, [&](h5::File& f) {
    std::int64_t n = 0;  // datasets written
    f.set_attribute("format", std::string(checkpoint_format));
    f.set_attribute("format_version", checkpoint_format_version);
    f.set_attribute("architecture", Net::architecture());
    f.set_attribute("scalar", std::string(scalar_name<T>()));
    const auto shapes = parameter_shapes(net);
    for (std::size_t i = 0; i < params.size(); ++i)
      detail::put<T>(f, n, "weights/" + params[i].name, params[i].value, params[i].size, shapes[i]);
    for (const auto& b : detail::buffers_of(net)) detail::put<T>(f, n, "buffers/" + b.name, b.value, b.size);
    if (opt) {
      detail::put_text(f, n, "optimizer/name", opt->name());
      const std::int64_t steps = opt->steps, per = opt->slots_per_param();
      detail::put(f, n, "optimizer/steps", &steps, 1);
      detail::put(f, n, "optimizer/slots_per_param", &per, 1);
      if (!opt->slots.empty()) {
        HUBBLE_CHECK(opt->slots.size() == params.size() * std::size_t(opt->slots_per_param()), path, ": optimiser ",
                     opt->name(), " holds ", opt->slots.size(), " arrays for ", params.size(), " parameters");
        for (std::size_t p = 0; p < params.size(); ++p)
          for (int s = 0; s < opt->slots_per_param(); ++s) {
            const auto& slot = opt->slots[p * std::size_t(opt->slots_per_param()) + std::size_t(s)];
            detail::put(f, n, "optimizer/slots/" + params[p].name + "/" + std::to_string(s), slot.data(), slot.size());
          }
      }
    }
    const std::int64_t epoch = data.epoch;
    detail::put(f, n, "epoch", &epoch, 1);
    const std::vector<Rng*> streams = net.random_streams();
    for (std::size_t i = 0; i < streams.size(); ++i)
      detail::put<std::uint64_t>(f, n, "rng/network/" + std::to_string(i), streams[i]->state().data(), 4);
    for (const auto& [name, state] : data.rngs) detail::put<std::uint64_t>(f, n, "rng/trainer/" + name, state.data(), 4);
    for (const auto& [key, text] : data.metadata) detail::put_text(f, n, "metadata/" + key, text);
    for (const auto& [key, v] : data.values) detail::put<double>(f, n, "training/" + key, v.data(), v.size());
    f.set_attribute("dataset_count", n);
  });
}

// Loads `path` into `net` (and into `opt` when not null; its name must match the saved
// optimiser's). Returns the rest of what was saved. Nothing changes unless everything checks out.
template <class Net>
CheckpointData load_checkpoint(const std::string& path, Net& net, OptimizerState<typename Net::scalar>* opt = nullptr) {
  using T = typename Net::scalar;
  const CheckpointHeader h = read_checkpoint_header(path);
  HUBBLE_CHECK(h.architecture == Net::architecture(), path, ": checkpoint is of another architecture\n  checkpoint: ",
               h.architecture, "\n  network:    ", Net::architecture());
  HUBBLE_CHECK(h.scalar == scalar_name<T>(), path, ": checkpoint holds ", h.scalar, " weights, the network uses ",
               scalar_name<T>());
  if (opt) {
    if (!h.has_epoch) h5::detail::missing(path, ": checkpoint lacks dataset 'epoch' (a weights-only file loads for inference or "
                                          "fine-tuning, not to resume training)");
    HUBBLE_CHECK(!h.optimizer.empty(), path, ": checkpoint holds no optimiser state (needed to resume training)");
    HUBBLE_CHECK(h.optimizer == opt->name(), path, ": checkpoint was trained with optimiser '", h.optimizer,
                 "', not '", opt->name(), "'");
  }

  auto params = net.parameters();
  const auto buffers = detail::buffers_of(net);
  const std::vector<Rng*> streams = net.random_streams();
  CheckpointData data;
  std::vector<std::vector<T>> weights, buffer_values;
  long long steps = 0;
  std::vector<std::vector<T>> slots;
  std::vector<std::array<std::uint64_t, 4>> network_rngs;
  const bool sums = h.checksums;
  detail::guarded_read(path, [&] {
    const h5::File f = h5::File::open(path);
    detail::check_dataset_count(f, sums);
    const auto shapes = parameter_shapes(net);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      detail::check_shape(f, "weights/" + p.name, shapes[i]);
      weights.push_back(detail::read_values<T>(f, sums, "weights/" + p.name, p.name, p.size));
      detail::check_finite(path, "weights/" + p.name, weights.back());
    }
    for (const auto& b : buffers) {
      detail::check_shape(f, "buffers/" + b.name, {b.size});
      buffer_values.push_back(detail::read_values<T>(f, sums, "buffers/" + b.name, b.name, b.size));
      detail::check_finite(path, "buffers/" + b.name, buffer_values.back());
    }
    if (opt) {
      steps = detail::read_values<std::int64_t>(f, sums, "optimizer/steps", "optimiser steps", 1)[0];
      detail::check_range<std::int64_t>(path, "optimizer/steps", steps, 0, checkpoint_max_steps);
      const auto per = detail::read_values<std::int64_t>(f, sums, "optimizer/slots_per_param", "optimiser slots", 1)[0];
      HUBBLE_CHECK(per == opt->slots_per_param(), path, ": optimiser '", h.optimizer, "' saved ", per,
                   " slots per parameter, expected ", opt->slots_per_param());
      if (f.has("optimizer/slots"))
        for (const auto& p : params)
          for (int s = 0; s < opt->slots_per_param(); ++s) {
            const std::string name = "optimizer/slots/" + p.name + "/" + std::to_string(s);
            slots.push_back(detail::read_values<T>(f, sums, name, "optimiser state of " + p.name, p.size));
            detail::check_finite(path, name, slots.back());
          }
      HUBBLE_CHECK(steps == 0 || !slots.empty(), path, ": optimiser took ", steps, " steps but its state is missing");
    }
    data.epoch = h.epoch;
    // Dropout streams: needed for an exact resume; a weights-only file keeps the network's own.
    const bool has_streams = opt || f.has("rng/network/0");
    for (std::size_t i = 0; i < streams.size() && has_streams; ++i)
      network_rngs.push_back(detail::read_stream(f, sums, "rng/network/" + std::to_string(i), "dropout stream"));
    detail::read_extras(f, sums, data);
    return 0;
  });

  // Everything read and checked: now change the network and the optimiser.
  for (std::size_t p = 0; p < params.size(); ++p) std::copy(weights[p].begin(), weights[p].end(), params[p].value);
  for (std::size_t b = 0; b < buffers.size(); ++b)
    std::copy(buffer_values[b].begin(), buffer_values[b].end(), buffers[b].value);
  for (std::size_t i = 0; i < network_rngs.size(); ++i) streams[i]->set_state(network_rngs[i]);
  if (opt) {
    opt->steps = steps;
    opt->slots = std::move(slots);
  }
  return data;
}

}  // namespace hubble
