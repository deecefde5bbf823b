#pragma once
// A thin RAII layer over the HDF5 C API: what hubble needs for datasets, fixtures and
// checkpoints, with errors that name the file and the dataset.
//   h5::File f = h5::File::open("x.h5");            // read-only; clear error if missing / not HDF5
//   h5::DatasetInfo i = f.info("images");           // dims + element type, checked against the file
//   std::vector<float> v = f.read<float>("w");       // whole dataset, converted to T by HDF5
//   f.read_rows<std::uint8_t>("images", 10, 4, buf, buf_values); // rows [10, 14) of the first dimension
//   h5::File o = h5::File::create("y.h5");  o.write("w", v.data(), {3, 4});  o.close();
//
// Reading distrusts the file: every size it declares (rank, dims, their product, string and
// attribute lengths, the number of entries in a group) is checked, without overflow, against
// what the caller expects and what the file can hold (its stored bytes, at most 1100x that for
// compressed data, never more than the file size) before anything is allocated. Errors say
// which of two things went wrong: MissingEntry (the file is fine but lacks the entry) or
// CorruptFile (the file cannot be what it claims: truncated, overwritten, nonsensical sizes).
//
// Writing goes through a small HDF5 file driver of hubble's own (GuardedDriver below) that
// records the first failed system call (ENOSPC, EFBIG, EIO) and tells HDF5 every write
// succeeded, so HDF5 never enters its error paths on a failing disk: HDF5 1.10.8 leaves a file
// whose flush failed half-closed and crashes in its exit handler. close() then reports the
// recorded failure as an Error naming the file and the cause. File::create_in_memory() builds a
// file in memory (e.g. a checkpoint) whose bytes image() returns, for io::AtomicFile to write.
// Files hubble writes use the HDF5 1.10 format (H5F_LIBVER_V110): superblock, object headers and
// chunk indexes then carry checksums that HDF5 verifies when reading.
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "hubble/core/error.hpp"

namespace hubble::h5 {

// The file lacks an entry (dataset, group, attribute) that the caller needs.
class MissingEntry : public Error {
 public:
  using Error::Error;
};
// The file is truncated or corrupt: HDF5 cannot read it, or it declares impossible sizes.
class CorruptFile : public Error {
 public:
  using Error::Error;
};

// Compressed data decodes to at most this many times its stored size (deflate's limit is 1032).
inline constexpr std::uint64_t max_compression_ratio = 1100;
// Longest string (dataset or attribute) hubble reads.
inline constexpr std::uint64_t max_string_bytes = std::uint64_t(64) << 20;

namespace detail {
// Silences HDF5's own error-stack printing once; hubble reports errors itself.
inline void quiet() {
  static const bool done = [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); return true; }();
  (void)done;
}
template <class T> hid_t native_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_NATIVE_UINT8;
  else if constexpr (std::is_same_v<T, std::int8_t>) return H5T_NATIVE_INT8;
  else if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_NATIVE_UINT64;
  else static_assert(sizeof(T) == 0, "h5: unsupported element type");
}
template <class... Parts>
[[noreturn]] void corrupt(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw CorruptFile(os.str());
}
template <class... Parts>
[[noreturn]] void missing(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw MissingEntry(os.str());
}

// a * b, or nullopt when it does not fit in 64 bits.
inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
#if defined(__GNUC__)  // GCC and Clang
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
#else
  if (b != 0 && a > UINT64_MAX / b) return std::nullopt;
  return a * b;
#endif
}

// ---- GuardedDriver: a POSIX or in-memory HDF5 file driver that never reports a write failure
// to HDF5 (see the header comment); it records the first one for File::close() to throw.
struct Sink {
  int fd = -1;                              // the file, or -1 for memory
  std::vector<unsigned char> memory;        // the file's bytes when fd < 0
  int error = 0;                            // first errno seen (0: none)
  const char* failed_call = "";
  void record(int err, const char* call) {
    if (error == 0) { error = err ? err : EIO; failed_call = call; }
  }
};
struct DriverInfo {
  Sink* sink;
};
struct GuardedFile {
  H5FD_t pub;  // first: HDF5 sees a GuardedFile* as an H5FD_t*
  Sink* sink;
  haddr_t eoa = 0, eof = 0;
};

inline H5FD_t* guarded_open(const char* name, unsigned flags, hid_t fapl, haddr_t) {
  const auto* info = static_cast<const DriverInfo*>(H5Pget_driver_info(fapl));
  if (!info || !info->sink || !(flags & H5F_ACC_RDWR)) return nullptr;  // hubble writes new files only
  Sink* sink = info->sink;
  if (sink->fd < 0 && sink->memory.empty() && name && *name && std::string(name) != ":memory:") {
    const int fd = ::open(name, O_RDWR | O_CREAT | O_CLOEXEC | ((flags & H5F_ACC_TRUNC) ? O_TRUNC : 0), 0666);
    if (fd < 0) return nullptr;
    sink->fd = fd;
  }
  auto* f = new (std::nothrow) GuardedFile{};
  if (!f) return nullptr;
  f->sink = sink;
  if (sink->fd >= 0) {
    const off_t end = ::lseek(sink->fd, 0, SEEK_END);
    f->eof = end > 0 ? haddr_t(end) : 0;
  } else {
    f->eof = sink->memory.size();
  }
  return &f->pub;
}
inline herr_t guarded_close(H5FD_t* file) {
  auto* f = reinterpret_cast<GuardedFile*>(file);
  if (f->sink->fd >= 0 && ::close(std::exchange(f->sink->fd, -1)) != 0) f->sink->record(errno, "close");
  delete f;
  return 0;
}
inline haddr_t guarded_get_eoa(const H5FD_t* file, H5FD_mem_t) { return reinterpret_cast<const GuardedFile*>(file)->eoa; }
inline herr_t guarded_set_eoa(H5FD_t* file, H5FD_mem_t, haddr_t addr) {
  reinterpret_cast<GuardedFile*>(file)->eoa = addr;
  return 0;
}
inline haddr_t guarded_get_eof(const H5FD_t* file, H5FD_mem_t) { return reinterpret_cast<const GuardedFile*>(file)->eof; }
inline herr_t guarded_read(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, void* buffer) {
  auto* f = reinterpret_cast<GuardedFile*>(file);
  auto* out = static_cast<unsigned char*>(buffer);
  std::memset(out, 0, size);  // HDF5 expects zeros past the end of the file
  if (f->sink->fd < 0) {
    const auto& m = f->sink->memory;
    if (addr < m.size()) std::memcpy(out, m.data() + addr, std::min<std::size_t>(size, m.size() - std::size_t(addr)));
    return 0;
  }
  while (size > 0) {
    const ssize_t r = ::pread(f->sink->fd, out, size, off_t(addr));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { f->sink->record(errno, "read"); return 0; }
    if (r == 0) break;
    out += r; addr += haddr_t(r); size -= std::size_t(r);
  }
  return 0;
}
inline herr_t guarded_write(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, const void* buffer) {
  auto* f = reinterpret_cast<GuardedFile*>(file);
  f->eof = std::max<haddr_t>(f->eof, addr + size);
  Sink* s = f->sink;
  if (s->error) return 0;  // already failed: the file is discarded, keep HDF5 on its normal path
  if (s->fd < 0) {
    try {
      if (s->memory.size() < addr + size) s->memory.resize(std::size_t(addr + size));
    } catch (const std::bad_alloc&) {
      s->record(ENOMEM, "write");
      return 0;
    }
    std::memcpy(s->memory.data() + addr, buffer, size);
    return 0;
  }
  const auto* p = static_cast<const unsigned char*>(buffer);
  while (size > 0) {
    const ssize_t w = ::pwrite(s->fd, p, size, off_t(addr));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { s->record(w < 0 ? errno : EIO, "write"); return 0; }
    p += w; addr += haddr_t(w); size -= std::size_t(w);
  }
  return 0;
}
inline herr_t guarded_truncate(H5FD_t* file, hid_t, hbool_t) {
  auto* f = reinterpret_cast<GuardedFile*>(file);
  if (f->eoa == f->eof) return 0;
  Sink* s = f->sink;
  if (s->fd < 0) {
    s->memory.resize(std::size_t(f->eoa));
  } else if (!s->error && ::ftruncate(s->fd, off_t(f->eoa)) != 0) {
    s->record(errno, "truncate");
  }
  f->eof = f->eoa;
  return 0;
}
inline int guarded_cmp(const H5FD_t* a, const H5FD_t* b) {
  const Sink* x = reinterpret_cast<const GuardedFile*>(a)->sink;
  const Sink* y = reinterpret_cast<const GuardedFile*>(b)->sink;
  return x < y ? -1 : x > y ? 1 : 0;
}
inline herr_t guarded_query(const H5FD_t*, unsigned long* flags) {
  *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
           H5FD_FEAT_AGGREGATE_SMALLDATA;
  return 0;
}

inline hid_t guarded_driver() {
  static const hid_t id = [] {
    static H5FD_class_t cls{};
#ifdef H5FD_CLASS_VERSION
    cls.version = H5FD_CLASS_VERSION;
    cls.value = H5FD_class_value_t(513);
#endif
    cls.name = "hubble_guarded";
    cls.maxaddr = haddr_t(std::numeric_limits<off_t>::max());
    cls.fc_degree = H5F_CLOSE_STRONG;
    cls.fapl_size = sizeof(DriverInfo);
    cls.open = guarded_open;
    cls.close = guarded_close;
    cls.cmp = guarded_cmp;
    cls.query = guarded_query;
    cls.get_eoa = guarded_get_eoa;
    cls.set_eoa = guarded_set_eoa;
    cls.get_eof = guarded_get_eof;
    cls.read = guarded_read;
    cls.write = guarded_write;
    cls.truncate = guarded_truncate;
    for (auto& m : cls.fl_map) m = H5FD_MEM_SUPER;  // one free list for all kinds of data
    return H5FDregister(&cls);
  }();
  return id;
}
}  // namespace detail

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), close_(closer) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept { reset(); id_ = std::exchange(o.id_, H5I_INVALID_HID); close_ = o.close_; return *this; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; false when HDF5 reports a failure.
  bool close() { const bool ok = id_ < 0 || !close_ || close_(id_) >= 0; id_ = H5I_INVALID_HID; return ok; }
  void reset() { (void)close(); }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

enum class ElementClass { integer, floating, string, other };

struct DatasetInfo {
  std::vector<hsize_t> dims;
  ElementClass element = ElementClass::other;
  std::size_t element_size = 0;   // bytes
  bool is_signed = false;
  bool variable_length = false;   // variable-length strings
  std::uint64_t stored_bytes = 0; // bytes the file holds for it (H5Dget_storage_size)
  bool compressed = false;
  // Elements: info() has checked that this product, and count() * element_size, fit in 64 bits.
  std::size_t count() const { std::size_t n = 1; for (auto d : dims) n *= std::size_t(d); return n; }
  std::string dims_str() const {
    std::string s = "(";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + ")";
  }
};

class File {
 public:
  static File open(const std::string& path) {
    detail::quiet();
    std::error_code ec;
    HUBBLE_CHECK(std::filesystem::exists(path, ec), path, ": no such file");
    HUBBLE_CHECK(!std::filesystem::is_directory(path, ec), path, ": is a directory, not an HDF5 file");
    HUBBLE_CHECK(std::filesystem::is_regular_file(path, ec), path, ": is not a regular file");
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    HUBBLE_CHECK(!ec, path, ": cannot read the file size (", ec.message(), ")");
    if (H5Fis_hdf5(path.c_str()) <= 0) detail::corrupt(path, ": not an HDF5 file (or truncated)");
    hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) detail::corrupt(path, ": cannot open as HDF5 (truncated or corrupt file?)");
    File f(path, Handle(id, H5Fclose), nullptr);
    f.file_size_ = std::uint64_t(size);
    return f;
  }
  // Creates (truncates) a file for writing; close() reports any write failure. Errors name
  // `name_in_messages` when given (e.g. the target of a temporary file).
  static File create(const std::string& path, const std::string& name_in_messages = "") {
    return create_with_sink(name_in_messages.empty() ? path : name_in_messages, path);
  }
  // A new file in memory; image() returns its bytes once closed. `name` is for messages.
  static File create_in_memory(const std::string& name) { return create_with_sink(name, ":memory:"); }

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const {
    if (name.empty() || name == "/") return true;
    // Each level in turn: HDF5 1.10 fails (rather than answers no) when a parent is missing.
    for (std::size_t slash = name.find('/', 1);; slash = name.find('/', slash + 1)) {
      const std::string prefix = name.substr(0, slash);
      const htri_t link = H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT);
      if (link < 0) detail::corrupt(path_, ": cannot look up '", prefix, "' (corrupt or truncated file?)");
      if (link == 0) return false;
      if (slash == std::string::npos) break;
    }
    const htri_t object = H5Oexists_by_name(file_.get(), name.c_str(), H5P_DEFAULT);
    if (object < 0) detail::corrupt(path_, ": '", name, "' is listed but cannot be opened (corrupt or truncated file?)");
    return object > 0;
  }

  DatasetInfo info(const std::string& name) const {
    Handle ds = open_dataset(name);
    return info_of(ds, name);
  }

  // The whole dataset, converted by HDF5 to T.
  template <class T>
  std::vector<T> read(const std::string& name) const {
    Handle ds = open_dataset(name);
    const DatasetInfo i = info_of(ds, name);
    HUBBLE_CHECK(i.element == ElementClass::integer || i.element == ElementClass::floating, path_, ": dataset '", name,
                 "' does not hold numbers");
    std::vector<T> out(i.count());
    if (!out.empty() && H5Dread(ds.get(), detail::native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
      detail::corrupt(path_, ": cannot read dataset '", name, "' (corrupt or truncated file?)");
    return out;
  }

  // Rows [first, first + count) of the first dimension into out, which holds out_values values.
  template <class T>
  void read_rows(const std::string& name, std::size_t first, std::size_t count, T* out, std::size_t out_values) const {
    Handle ds = open_dataset(name);
    // No storage check here: nothing is allocated, the caller's buffer bounds the read, and
    // H5Dget_storage_size walks the whole chunk index (17,736 chunks in the release) per call.
    const DatasetInfo i = info_of(ds, name, false);
    HUBBLE_CHECK(i.element == ElementClass::integer || i.element == ElementClass::floating, path_, ": dataset '", name,
                 "' does not hold numbers");
    HUBBLE_CHECK(!i.dims.empty() && count <= i.dims[0] && first <= i.dims[0] - count, path_, ": rows ", first, "..",
                 first, "+", count, " of '", name, "' are out of range ", i.dims_str());
    const std::size_t row = i.dims[0] == 0 ? 0 : i.count() / std::size_t(i.dims[0]);
    const auto needed = detail::checked_mul(row, count);
    HUBBLE_CHECK(needed && *needed <= out_values, path_, ": rows ", first, "..", first, "+", count, " of '", name,
                 "' ", i.dims_str(), " do not fit in a buffer of ", out_values, " values");
    if (count == 0) return;
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    std::vector<hsize_t> start(i.dims.size(), 0), cnt = i.dims;
    start[0] = first;
    cnt[0] = count;
    if (!space.valid() || H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr) < 0)
      detail::corrupt(path_, ": cannot select rows of '", name, "' (corrupt or truncated file?)");
    Handle mem(H5Screate_simple(int(cnt.size()), cnt.data(), nullptr), H5Sclose);
    HUBBLE_CHECK(mem.valid(), path_, ": cannot describe rows of '", name, "' in memory");
    if (H5Dread(ds.get(), detail::native_type<T>(), mem.get(), space.get(), H5P_DEFAULT, out) < 0)
      detail::corrupt(path_, ": cannot read rows ", first, "..", first + count, " of '", name,
                      "' (corrupt or truncated file?)");
  }

  // Writes a dataset (creating intermediate groups, e.g. "weights/conv2d_1/kernel").
  // chunk_rows > 0 stores it in chunks of that many rows of the first dimension, gzip-compressed
  // and (checksum = true) with HDF5's Fletcher32 checksum per chunk. Large chunked data is
  // written a block of chunks at a time, and a failed disk stops the writing early.
  template <class T>
  void write(const std::string& name, const T* data, const std::vector<hsize_t>& dims, hsize_t chunk_rows = 0,
             bool checksum = false) {
    Handle space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
    Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    bool ok = space.valid() && lcpl.valid() && dcpl.valid() && H5Pset_create_intermediate_group(lcpl.get(), 1) >= 0 &&
              H5Pset_obj_track_times(dcpl.get(), false) >= 0;  // no timestamps: same data, same bytes
    const bool chunked = chunk_rows > 0 && !dims.empty();
    hsize_t rows_per_chunk = 0;
    if (ok && chunked) {
      std::vector<hsize_t> chunk = dims;
      for (auto& c : chunk) c = std::max<hsize_t>(c, 1);
      rows_per_chunk = chunk[0] = std::min(chunk_rows, chunk[0]);
      ok = H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()) >= 0 && H5Pset_deflate(dcpl.get(), 4) >= 0 &&
           (!checksum || H5Pset_fletcher32(dcpl.get()) >= 0);
    }
    HUBBLE_CHECK(ok, path_, ": cannot describe dataset '", name, "' ", DatasetInfo{dims}.dims_str());
    make_parent_groups(name);
    Handle ds(H5Dcreate2(file_.get(), name.c_str(), detail::native_type<T>(), space.get(), lcpl.get(), dcpl.get(),
                         H5P_DEFAULT), H5Dclose);
    check_sink();
    HUBBLE_CHECK(ds.valid(), path_, ": cannot create dataset '", name, "'");
    std::size_t total = 1;
    for (auto d : dims) total *= std::size_t(d);
    if (total == 0) return finish(ds, name);
    if (!chunked || dims[0] <= 64 * rows_per_chunk) {
      HUBBLE_CHECK(H5Dwrite(ds.get(), detail::native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, path_,
                   ": cannot write dataset '", name, "'");
      check_sink();
      return finish(ds, name);
    }
    const std::size_t row = total / std::size_t(dims[0]);
    const hsize_t block = 64 * rows_per_chunk;
    for (hsize_t first = 0; first < dims[0]; first += block) {
      std::vector<hsize_t> start(dims.size(), 0), cnt = dims;
      start[0] = first;
      cnt[0] = std::min(block, dims[0] - first);
      Handle file_space(H5Dget_space(ds.get()), H5Sclose);
      Handle mem(H5Screate_simple(int(cnt.size()), cnt.data(), nullptr), H5Sclose);
      HUBBLE_CHECK(file_space.valid() && mem.valid() &&
                       H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(),
                                           nullptr) >= 0 &&
                       H5Dwrite(ds.get(), detail::native_type<T>(), mem.get(), file_space.get(), H5P_DEFAULT,
                                data + std::size_t(first) * row) >= 0,
                   path_, ": cannot write rows ", first, "..", first + cnt[0], " of dataset '", name, "'");
      check_sink();
    }
    finish(ds, name);
  }
  template <class T>
  void write(const std::string& name, const std::vector<T>& v) { write(name, v.data(), {hsize_t(v.size())}); }

  // Paths, relative to `group`, of every dataset below it (at any depth), sorted; empty when
  // the group does not exist. E.g. datasets("weights") -> {"conv2d_1/bias", "conv2d_1/kernel", ...}.
  // A group listing more than max_entries links is refused as corrupt.
  std::vector<std::string> datasets(const std::string& group, std::size_t max_entries = 100000) const {
    struct Visit {
      std::vector<std::string> names;
      std::size_t links = 0, max_entries;
      std::string unreadable;
      bool too_many = false;
    } visit{{}, 0, max_entries, {}, false};
    if (!has(group)) return {};
    auto collect = [](hid_t g, const char* name, const H5L_info_t* link, void* op) -> herr_t {
      auto* v = static_cast<Visit*>(op);
      if (++v->links > v->max_entries) { v->too_many = true; return 1; }
      if (link && link->type != H5L_TYPE_HARD) return 0;  // soft/external links are not followed
      const hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
      if (d >= 0) {
        H5Dclose(d);
        v->names.emplace_back(name);
        return 0;
      }
      const hid_t sub = H5Gopen2(g, name, H5P_DEFAULT);
      if (sub >= 0) { H5Gclose(sub); return 0; }
      v->unreadable = name;  // neither a dataset nor a group: a damaged object
      return -1;
    };
    const herr_t rc = H5Lvisit_by_name(file_.get(), group.c_str(), H5_INDEX_NAME, H5_ITER_INC, collect, &visit,
                                       H5P_DEFAULT);
    if (visit.too_many) detail::corrupt(path_, ": group '", group, "' lists more than ", max_entries, " entries");
    if (!visit.unreadable.empty())
      detail::corrupt(path_, ": '", group, "/", visit.unreadable, "' cannot be opened (corrupt or truncated file?)");
    if (rc < 0) detail::corrupt(path_, ": cannot list group '", group, "' (corrupt or truncated file?)");
    std::sort(visit.names.begin(), visit.names.end());
    return visit.names;
  }

  // A dataset holding one fixed-length string (e.g. a checkpoint's "optimizer/name").
  void write_string(const std::string& name, const std::string& value) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    HUBBLE_CHECK(type.valid() && space.valid() && lcpl.valid() && dcpl.valid() &&
                     H5Tset_size(type.get(), value.empty() ? 1 : value.size()) >= 0 &&
                     H5Pset_create_intermediate_group(lcpl.get(), 1) >= 0 &&
                     H5Pset_obj_track_times(dcpl.get(), false) >= 0,
                 path_, ": cannot describe string dataset '", name, "'");
    make_parent_groups(name);
    Handle ds(H5Dcreate2(file_.get(), name.c_str(), type.get(), space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
              H5Dclose);
    check_sink();
    HUBBLE_CHECK(ds.valid(), path_, ": cannot create dataset '", name, "'");
    HUBBLE_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, value.empty() ? "" : value.c_str()) >= 0,
                 path_, ": cannot write dataset '", name, "'");
    check_sink();
    finish(ds, name);
  }
  // One string, fixed-length (as hubble writes) or variable-length (h5py's default for str).
  std::string read_string(const std::string& name) const {
    Handle ds = open_dataset(name);
    const DatasetInfo i = info_of(ds, name);
    HUBBLE_CHECK(i.element == ElementClass::string, path_, ": dataset '", name, "' is not a string");
    HUBBLE_CHECK(i.count() == 1, path_, ": dataset '", name, "' holds ", i.count(), " strings, expected one");
    if (i.variable_length)
      return read_variable_string(name, [&](hid_t mem, char** out) { return H5Dread(ds.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, out); },
                                  H5Dget_type(ds.get()));
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    std::string s(i.element_size, '\0');
    if (!type.valid() || H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data()) < 0)
      detail::corrupt(path_, ": cannot read dataset '", name, "' (corrupt or truncated file?)");
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }

  // Attributes of the root group ("" or "/") or of a dataset (object = its path).
  void set_attribute(const std::string& key, std::int64_t value) { set_scalar_attribute("/", key, H5T_STD_I64LE, H5T_NATIVE_INT64, &value); }
  void set_attribute(const std::string& key, const std::string& value) { set_string_attribute("/", key, value); }
  void set_attribute(const std::string& object, const std::string& key, std::uint64_t value) {
    set_scalar_attribute(object, key, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
  }
  bool has_attribute(const std::string& key) const { return has_attribute("/", key); }
  bool has_attribute(const std::string& object, const std::string& key) const {
    const htri_t e = H5Aexists_by_name(file_.get(), object.c_str(), key.c_str(), H5P_DEFAULT);
    if (e < 0) detail::corrupt(path_, ": cannot look up attribute '", key, "' of '", object, "' (corrupt or truncated file?)");
    return e > 0;
  }
  std::int64_t int_attribute(const std::string& key) const {
    Handle attr = open_attribute("/", key);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    HUBBLE_CHECK(type.valid() && H5Tget_class(type.get()) == H5T_INTEGER, path_, ": attribute '", key,
                 "' is not an integer");
    std::int64_t v = 0;
    if (H5Aread(attr.get(), H5T_NATIVE_INT64, &v) < 0) detail::corrupt(path_, ": cannot read attribute '", key, "'");
    return v;
  }
  // A uint64 attribute of `object` (e.g. a checkpoint dataset's checksum); it must be stored as
  // an unsigned 64-bit integer.
  std::uint64_t u64_attribute(const std::string& object, const std::string& key) const {
    Handle attr = open_attribute(object, key);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    HUBBLE_CHECK(type.valid() && H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 8 &&
                     H5Tget_sign(type.get()) == H5T_SGN_NONE,
                 path_, ": attribute '", key, "' of '", object, "' is not an unsigned 64-bit integer");
    std::uint64_t v = 0;
    if (H5Aread(attr.get(), H5T_NATIVE_UINT64, &v) < 0)
      detail::corrupt(path_, ": cannot read attribute '", key, "' of '", object, "'");
    return v;
  }
  std::string attribute(const std::string& key) const {
    Handle attr = open_attribute("/", key);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    HUBBLE_CHECK(type.valid() && H5Tget_class(type.get()) == H5T_STRING, path_, ": attribute '", key,
                 "' is not a string");
    if (H5Tis_variable_str(type.get()) > 0) {
      Handle space(H5Aget_space(attr.get()), H5Sclose);
      HUBBLE_CHECK(space.valid() && H5Sget_simple_extent_npoints(space.get()) == 1, path_, ": attribute '", key,
                   "' holds more than one string");
      return read_variable_string(key, [&](hid_t mem, char** out) { return H5Aread(attr.get(), mem, out); }, H5Aget_type(attr.get()));
    }
    const std::size_t size = H5Tget_size(type.get());
    if (size == 0 || size > max_string_bytes || size > file_size_)
      detail::corrupt(path_, ": attribute '", key, "' declares a string of ", size, " bytes in a file of ", file_size_);
    std::string s(size, '\0');
    if (H5Aread(attr.get(), type.get(), s.data()) < 0) detail::corrupt(path_, ": cannot read attribute '", key, "'");
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }

  // Makes HDF5 hand everything written so far to the file (or memory).
  void flush() {
    HUBBLE_CHECK(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) >= 0, path_, ": cannot flush the file");
    check_sink();
  }
  // Closes the file; for a written file, any failure on the way (a full disk, a size limit) is an
  // Error naming the file and the cause. Idempotent.
  void close() {
    const bool was_open = file_.valid();
    const bool closed = file_.close();
    if (!was_open || !sink_) return;
    check_sink();
    HUBBLE_CHECK(closed, path_, ": cannot close the file");
  }
  // The bytes of a file made by create_in_memory(), after close().
  const std::vector<unsigned char>& image() const {
    HUBBLE_CHECK(sink_ && sink_->fd < 0 && !file_.valid(), path_, ": image() needs a closed in-memory file");
    return sink_->memory;
  }
  // Bytes of the file on disk (files opened for reading).
  std::uint64_t file_size() const { return file_size_; }

 private:
  File(std::string path, Handle h, std::unique_ptr<detail::Sink> sink)
      : path_(std::move(path)), sink_(std::move(sink)), file_(std::move(h)) {}

  static File create_with_sink(const std::string& path, const std::string& target) {
    detail::quiet();
    auto sink = std::make_unique<detail::Sink>();
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose), fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    const detail::DriverInfo info{sink.get()};
    HUBBLE_CHECK(fapl.valid() && fcpl.valid() && H5Pset_obj_track_times(fcpl.get(), false) >= 0 &&  // root group
                     H5Pset_driver(fapl.get(), detail::guarded_driver(), &info) >= 0 &&
                     H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0 &&
                     H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) >= 0,
                 path, ": cannot set up HDF5 for writing");
    errno = 0;
    const hid_t id = H5Fcreate(target.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
    if (id < 0) {
      const int err = errno;
      if (sink->fd >= 0) ::close(sink->fd);
      ::hubble::detail::fail(path, ": cannot create HDF5 file (", err ? std::strerror(err) : "HDF5 refused",
                             "; is the folder writable?)");
    }
    return File(path, Handle(id, H5Fclose), std::move(sink));
  }

  // Creates the groups above `name` that do not exist yet, top down and without timestamps: the
  // version-2 object headers of HDF5 1.10 files would otherwise stamp each group with the time,
  // and the same data must give the same bytes.
  void make_parent_groups(const std::string& name) {
    Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
    HUBBLE_CHECK(gcpl.valid() && H5Pset_obj_track_times(gcpl.get(), false) >= 0, path_,
                 ": cannot describe the groups of '", name, "'");
    for (std::size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) {
      const std::string group = name.substr(0, slash);
      if (group.empty() || H5Lexists(file_.get(), group.c_str(), H5P_DEFAULT) > 0) continue;
      Handle g(H5Gcreate2(file_.get(), group.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
      check_sink();
      HUBBLE_CHECK(g.valid(), path_, ": cannot create group '", group, "'");
    }
  }

  // Closes a written dataset (which flushes its cached chunks through the filters), checking it.
  void finish(Handle& ds, const std::string& name) {
    const bool closed = ds.close();
    check_sink();
    HUBBLE_CHECK(closed, path_, ": cannot finish dataset '", name, "'");
  }

  // Throws the first failure the driver recorded.
  void check_sink() const {
    if (sink_ && sink_->error)
      ::hubble::detail::fail(path_, ": cannot ", sink_->failed_call, " the file (", std::strerror(sink_->error), ")");
  }

  // Reads one variable-length string through read(memory type, char**) and frees HDF5's copy.
  template <class Read>
  std::string read_variable_string(const std::string& what, Read&& read, hid_t file_type_id) const {
    Handle file_type(file_type_id, H5Tclose);
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    HUBBLE_CHECK(file_type.valid() && mem.valid() && H5Tset_size(mem.get(), H5T_VARIABLE) >= 0 &&
                     H5Tset_cset(mem.get(), H5Tget_cset(file_type.get())) >= 0,
                 path_, ": cannot describe the string '", what, "'");
    char* p = nullptr;
    if (read(mem.get(), &p) < 0) detail::corrupt(path_, ": cannot read the string '", what, "' (corrupt or truncated file?)");
    const std::size_t n = p ? std::strlen(p) : 0;
    std::string out = n <= max_string_bytes ? std::string(p ? p : "", n) : std::string();
    if (p) H5free_memory(p);
    if (n > max_string_bytes) detail::corrupt(path_, ": the string '", what, "' is longer than ", max_string_bytes, " bytes");
    return out;
  }
  Handle open_dataset(const std::string& name) const {
    if (!has(name)) detail::missing(path_, ": dataset '", name, "' is missing");
    Handle ds(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    HUBBLE_CHECK(ds.valid(), path_, ": '", name, "' is not a dataset");
    return ds;
  }
  Handle open_attribute(const std::string& object, const std::string& key) const {
    if (!has_attribute(object, key)) detail::missing(path_, ": attribute '", key, "' is missing");
    Handle attr(H5Aopen_by_name(file_.get(), object.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    if (!attr.valid()) detail::corrupt(path_, ": cannot open attribute '", key, "' (corrupt or truncated file?)");
    Handle space(H5Aget_space(attr.get()), H5Sclose);
    const hssize_t n = space.valid() ? H5Sget_simple_extent_npoints(space.get()) : -1;
    HUBBLE_CHECK(n == 1, path_, ": attribute '", key, "' holds ", n, " values, expected one");
    return attr;
  }

  // Shape, type and storage of an open dataset, with every declared size checked.
  DatasetInfo info_of(const Handle& ds, const std::string& name, bool check_storage = true) const {
    const std::string where = path_ + ": dataset '" + name + "'";
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    if (!space.valid()) detail::corrupt(where, " has an unreadable shape (corrupt or truncated file?)");
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0 || rank > H5S_MAX_RANK) detail::corrupt(where, " has an unreadable shape (rank ", rank, ")");
    DatasetInfo info;
    info.dims.resize(std::size_t(rank));
    if (rank > 0 && H5Sget_simple_extent_dims(space.get(), info.dims.data(), nullptr) != rank)
      detail::corrupt(where, " has an unreadable shape (corrupt or truncated file?)");
    if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) info.dims = {0};
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    if (!type.valid()) detail::corrupt(where, " has an unreadable element type (corrupt or truncated file?)");
    const H5T_class_t cls = H5Tget_class(type.get());
    info.element = cls == H5T_INTEGER ? ElementClass::integer : cls == H5T_FLOAT ? ElementClass::floating
                 : cls == H5T_STRING  ? ElementClass::string  : ElementClass::other;
    info.element_size = H5Tget_size(type.get());
    if (info.element_size == 0) detail::corrupt(where, " has an unreadable element type (size 0)");
    info.is_signed = cls == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_2;
    info.variable_length = cls == H5T_STRING && H5Tis_variable_str(type.get()) > 0;

    std::uint64_t count = 1;
    for (hsize_t d : info.dims) {
      const auto c = detail::checked_mul(count, d);
      if (!c) detail::corrupt(where, " declares an impossible shape ", info.dims_str(), " (corrupt file?)");
      count = *c;
    }
    const auto bytes = detail::checked_mul(count, info.element_size);
    if (!bytes || *bytes > std::uint64_t(std::numeric_limits<std::ptrdiff_t>::max()))
      detail::corrupt(where, " declares an impossible size ", info.dims_str(), " x ", info.element_size,
                      " bytes (corrupt file?)");

    Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
    const int filters = dcpl.valid() ? H5Pget_nfilters(dcpl.get()) : -1;
    if (filters < 0) detail::corrupt(where, " has an unreadable storage layout (corrupt or truncated file?)");
    int compressors = 0;
    for (int k = 0; k < filters; ++k) {
      unsigned flags = 0;
      std::size_t nvalues = 0;
      unsigned filter_config = 0;
      const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), unsigned(k), &flags, &nvalues, nullptr, 0, nullptr,
                                             &filter_config);
      if (id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32) ++compressors;
    }
    if (compressors > 1) detail::corrupt(where, " stacks ", compressors, " compression filters (unsupported)");
    info.compressed = compressors > 0;
    if (!check_storage) return info;
    info.stored_bytes = H5Dget_storage_size(ds.get());
    if (file_size_ > 0 && info.stored_bytes > file_size_)
      detail::corrupt(where, " claims ", info.stored_bytes, " stored bytes in a file of ", file_size_,
                      " (corrupt file?)");
    if (!info.variable_length && *bytes > 0) {
      // Fixed-size data decodes from what the file stores: as much, or 1100x at most when compressed.
      const auto limit = info.compressed ? detail::checked_mul(info.stored_bytes, max_compression_ratio)
                                         : std::optional<std::uint64_t>(info.stored_bytes);
      if (limit && *bytes > *limit)
        detail::corrupt(where, " declares ", info.dims_str(), " x ", info.element_size, " bytes = ", *bytes,
                        " bytes but the file stores only ", info.stored_bytes,
                        info.compressed ? " compressed" : "", " bytes for it (truncated or corrupt file?)");
    }
    if (info.element == ElementClass::string && info.element_size > max_string_bytes)
      detail::corrupt(where, " declares strings of ", info.element_size, " bytes (corrupt file?)");
    return info;
  }

  void set_scalar_attribute(const std::string& object, const std::string& key, hid_t file_type, hid_t mem_type,
                            const void* value) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    HUBBLE_CHECK(space.valid(), path_, ": cannot describe attribute '", key, "'");
    if (H5Aexists_by_name(file_.get(), object.c_str(), key.c_str(), H5P_DEFAULT) > 0)
      HUBBLE_CHECK(H5Adelete_by_name(file_.get(), object.c_str(), key.c_str(), H5P_DEFAULT) >= 0, path_,
                   ": cannot replace attribute '", key, "'");
    Handle attr(H5Acreate_by_name(file_.get(), object.c_str(), key.c_str(), file_type, space.get(), H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    HUBBLE_CHECK(attr.valid() && H5Awrite(attr.get(), mem_type, value) >= 0 && attr.close(), path_,
                 ": cannot write attribute '", key, "' of '", object, "'");
    check_sink();
  }
  void set_string_attribute(const std::string& object, const std::string& key, const std::string& value) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    HUBBLE_CHECK(type.valid() && H5Tset_size(type.get(), value.empty() ? 1 : value.size()) >= 0, path_,
                 ": cannot describe attribute '", key, "'");
    set_scalar_attribute(object, key, type.get(), type.get(), value.empty() ? "" : value.c_str());
  }

  std::string path_;
  std::unique_ptr<detail::Sink> sink_;  // written files: where the driver writes (outlives file_)
  Handle file_;
  std::uint64_t file_size_ = 0;
};

}  // namespace hubble::h5
