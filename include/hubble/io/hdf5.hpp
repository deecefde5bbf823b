#pragma once
// A thin RAII layer over the HDF5 C API: what hubble needs for datasets, fixtures and
// checkpoints, with errors that name the file and the dataset.
//   h5::File f = h5::File::open("x.h5");            // read-only; clear error if missing / not HDF5
//   h5::DatasetInfo i = f.info("images");           // dims + element type
//   std::vector<float> v = f.read<float>("w");       // whole dataset, converted to T by HDF5
//   f.read_rows<std::uint8_t>("images", 10, 4, buf); // rows [10, 14) of the first dimension
//   h5::File o = h5::File::create("y.h5");  o.write("w", v.data(), {3, 4});  o.set_attribute("k", "text");
#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "hubble/core/error.hpp"

namespace hubble::h5 {

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
  else if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_NATIVE_UINT64;
  else static_assert(sizeof(T) == 0, "h5: unsupported element type");
}
}  // namespace detail

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept { reset(); id_ = std::exchange(o.id_, H5I_INVALID_HID); close_ = o.close_; return *this; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() { if (id_ >= 0 && close_) close_(id_); id_ = H5I_INVALID_HID; }

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
    HUBBLE_CHECK(std::filesystem::exists(path), path, ": no such file");
    HUBBLE_CHECK(!std::filesystem::is_directory(path), path, ": is a directory, not an HDF5 file");
    HUBBLE_CHECK(H5Fis_hdf5(path.c_str()) > 0, path, ": not an HDF5 file (or truncated)");
    hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    HUBBLE_CHECK(id >= 0, path, ": cannot open as HDF5");
    return File(path, Handle(id, H5Fclose));
  }
  // Creates (truncates) a file for writing.
  static File create(const std::string& path) {
    detail::quiet();
    hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    HUBBLE_CHECK(id >= 0, path, ": cannot create HDF5 file (is the folder writable?)");
    return File(path, Handle(id, H5Fclose));
  }

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const {
    return H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) > 0 && H5Oexists_by_name(file_.get(), name.c_str(), H5P_DEFAULT) > 0;
  }

  DatasetInfo info(const std::string& name) const {
    Handle ds = open_dataset(name);
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    DatasetInfo info;
    const int rank = H5Sget_simple_extent_ndims(space.get());
    HUBBLE_CHECK(rank >= 0, path_, ": dataset '", name, "' has an unreadable shape");
    info.dims.resize(std::size_t(rank));
    if (rank > 0) H5Sget_simple_extent_dims(space.get(), info.dims.data(), nullptr);
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    info.element = cls == H5T_INTEGER ? ElementClass::integer : cls == H5T_FLOAT ? ElementClass::floating
                 : cls == H5T_STRING  ? ElementClass::string  : ElementClass::other;
    info.element_size = H5Tget_size(type.get());
    info.is_signed = cls == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_2;
    return info;
  }

  // The whole dataset, converted by HDF5 to T.
  template <class T>
  std::vector<T> read(const std::string& name) const {
    const DatasetInfo i = info(name);
    std::vector<T> out(i.count());
    Handle ds = open_dataset(name);
    if (!out.empty())
      HUBBLE_CHECK(H5Dread(ds.get(), detail::native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0,
                   path_, ": cannot read dataset '", name, "' (corrupt or truncated file?)");
    return out;
  }

  // Rows [first, first + count) of the first dimension into out (count * row_size values).
  template <class T>
  void read_rows(const std::string& name, std::size_t first, std::size_t count, T* out) const {
    Handle ds = open_dataset(name);
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank)), start(static_cast<std::size_t>(rank), 0), cnt;
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    HUBBLE_CHECK(rank >= 1 && first + count <= dims[0], path_, ": rows ", first, "..", first + count, " of '", name,
                 "' are out of range");
    cnt = dims;
    start[0] = first;
    cnt[0] = count;
    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
    Handle mem(H5Screate_simple(rank, cnt.data(), nullptr), H5Sclose);
    HUBBLE_CHECK(H5Dread(ds.get(), detail::native_type<T>(), mem.get(), space.get(), H5P_DEFAULT, out) >= 0, path_,
                 ": cannot read rows ", first, "..", first + count, " of '", name, "' (corrupt or truncated file?)");
  }

  // Writes a dataset (creating intermediate groups, e.g. "weights/conv2d_1/kernel").
  // chunk_rows > 0 stores it in chunks of that many rows of the first dimension, gzip-compressed.
  template <class T>
  void write(const std::string& name, const T* data, const std::vector<hsize_t>& dims, hsize_t chunk_rows = 0) {
    Handle space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
    Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_obj_track_times(dcpl.get(), false);  // no timestamps: the same data gives a byte-identical file
    if (chunk_rows > 0 && !dims.empty()) {
      std::vector<hsize_t> chunk = dims;
      chunk[0] = std::min(chunk_rows, dims[0] > 0 ? dims[0] : hsize_t(1));
      H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data());
      H5Pset_deflate(dcpl.get(), 4);
    }
    Handle ds(H5Dcreate2(file_.get(), name.c_str(), detail::native_type<T>(), space.get(), lcpl.get(), dcpl.get(),
                         H5P_DEFAULT), H5Dclose);
    HUBBLE_CHECK(ds.valid(), path_, ": cannot create dataset '", name, "'");
    HUBBLE_CHECK(H5Dwrite(ds.get(), detail::native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, path_,
                 ": cannot write dataset '", name, "' (disk full?)");
  }
  template <class T>
  void write(const std::string& name, const std::vector<T>& v) { write(name, v.data(), {hsize_t(v.size())}); }

  // Paths, relative to `group`, of every dataset below it (at any depth), sorted; empty when
  // the group does not exist. E.g. datasets("weights") -> {"conv2d_1/bias", "conv2d_1/kernel", ...}.
  std::vector<std::string> datasets(const std::string& group) const {
    std::vector<std::string> out;
    if (!has(group)) return out;
    auto collect = [](hid_t g, const char* name, const H5L_info_t*, void* op) -> herr_t {
      const hid_t d = H5Dopen2(g, name, H5P_DEFAULT);  // groups fail to open as datasets
      if (d >= 0) {
        H5Dclose(d);
        static_cast<std::vector<std::string>*>(op)->emplace_back(name);
      }
      return 0;
    };
    HUBBLE_CHECK(H5Lvisit_by_name(file_.get(), group.c_str(), H5_INDEX_NAME, H5_ITER_INC, collect, &out,
                                  H5P_DEFAULT) >= 0,
                 path_, ": cannot list group '", group, "' (corrupt or truncated file?)");
    std::sort(out.begin(), out.end());
    return out;
  }

  // A dataset holding one fixed-length string (e.g. a checkpoint's "optimizer/name").
  void write_string(const std::string& name, const std::string& value) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), value.empty() ? 1 : value.size());
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    Handle ds(H5Dcreate2(file_.get(), name.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Dclose);
    HUBBLE_CHECK(ds.valid(), path_, ": cannot create dataset '", name, "'");
    HUBBLE_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, value.empty() ? "" : value.c_str()) >= 0,
                 path_, ": cannot write dataset '", name, "' (disk full?)");
  }
  std::string read_string(const std::string& name) const {
    Handle ds = open_dataset(name);
    Handle type(H5Dget_type(ds.get()), H5Tclose);
    HUBBLE_CHECK(H5Tget_class(type.get()) == H5T_STRING && H5Tis_variable_str(type.get()) <= 0, path_, ": dataset '",
                 name, "' is not a fixed-length string");
    Handle space(H5Dget_space(ds.get()), H5Sclose);
    const hssize_t n = H5Sget_simple_extent_npoints(space.get());
    HUBBLE_CHECK(n == 1, path_, ": dataset '", name, "' holds ", n, " strings, expected one");
    std::string s(H5Tget_size(type.get()), '\0');
    HUBBLE_CHECK(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data()) >= 0, path_,
                 ": cannot read dataset '", name, "' (corrupt or truncated file?)");
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }

  // Integer attributes on the root group (e.g. a checkpoint's "format_version").
  void set_attribute(const std::string& key, std::int64_t value) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    if (H5Aexists(file_.get(), key.c_str()) > 0) H5Adelete(file_.get(), key.c_str());
    Handle attr(H5Acreate2(file_.get(), key.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    HUBBLE_CHECK(attr.valid() && H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) >= 0, path_,
                 ": cannot write attribute '", key, "'");
  }
  std::int64_t int_attribute(const std::string& key) const {
    HUBBLE_CHECK(has_attribute(key), path_, ": attribute '", key, "' is missing");
    Handle attr(H5Aopen(file_.get(), key.c_str(), H5P_DEFAULT), H5Aclose);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    HUBBLE_CHECK(H5Tget_class(type.get()) == H5T_INTEGER, path_, ": attribute '", key, "' is not an integer");
    std::int64_t v = 0;
    HUBBLE_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &v) >= 0, path_, ": cannot read attribute '", key, "'");
    return v;
  }

  // String attributes on the root group.
  void set_attribute(const std::string& key, const std::string& value) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.get(), value.empty() ? 1 : value.size());
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    if (H5Aexists(file_.get(), key.c_str()) > 0) H5Adelete(file_.get(), key.c_str());
    Handle attr(H5Acreate2(file_.get(), key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    HUBBLE_CHECK(attr.valid() && H5Awrite(attr.get(), type.get(), value.empty() ? "" : value.c_str()) >= 0, path_,
                 ": cannot write attribute '", key, "'");
  }
  bool has_attribute(const std::string& key) const { return H5Aexists(file_.get(), key.c_str()) > 0; }
  std::string attribute(const std::string& key) const {
    HUBBLE_CHECK(has_attribute(key), path_, ": attribute '", key, "' is missing");
    Handle attr(H5Aopen(file_.get(), key.c_str(), H5P_DEFAULT), H5Aclose);
    Handle type(H5Aget_type(attr.get()), H5Tclose);
    HUBBLE_CHECK(H5Tget_class(type.get()) == H5T_STRING, path_, ": attribute '", key, "' is not a string");
    HUBBLE_CHECK(H5Tis_variable_str(type.get()) <= 0, path_, ": attribute '", key, "' is a variable-length string (unsupported)");
    std::string s(H5Tget_size(type.get()), '\0');
    HUBBLE_CHECK(H5Aread(attr.get(), type.get(), s.data()) >= 0, path_, ": cannot read attribute '", key, "'");
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
  }

  // Makes sure everything written so far is on disk.
  void flush() { H5Fflush(file_.get(), H5F_SCOPE_GLOBAL); }
  void close() { file_.reset(); }

 private:
  File(std::string path, Handle h) : path_(std::move(path)), file_(std::move(h)) {}
  Handle open_dataset(const std::string& name) const {
    HUBBLE_CHECK(has(name), path_, ": dataset '", name, "' is missing");
    Handle ds(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    HUBBLE_CHECK(ds.valid(), path_, ": '", name, "' is not a dataset");
    return ds;
  }
  std::string path_;
  Handle file_;
};

}  // namespace hubble::h5
