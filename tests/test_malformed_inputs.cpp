// Malformed inputs: a generator of broken Galaxy10 files and checkpoints (truncations, seeded
// byte flips in metadata and in data, wrong element types, wrong shapes and ranks, absurd
// declared sizes, bad values such as NaN or labels outside 0..9, missing entries). Each broken
// file is loaded in a forked child and must give either a hubble::Error whose message names the
// file, or exactly the unbroken file's output (a flip in unused bytes): never a crash, a hang or
// silently different numbers. A tally per kind is printed with MESSAGE.
//
// Also here: the atomic writes of text files and PNGs under a full disk (RLIMIT_FSIZE).
#include <doctest/doctest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "hubble/data/galaxy10.hpp"
#include "hubble/hubble.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/io/png.hpp"
#include "hubble/io/text_file.hpp"
#include "hubble/paper_net.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace hubble;

namespace {

using SmallNet = Sequential<Input<8, 8, 2>, Conv2D<3, 3>, BatchNorm, ReLU, MaxPool<2>, Flatten, Dropout<0.3>, Dense<4>,
                            Softmax>;

// ---- judging one broken file ------------------------------------------------------------------

// Loads a file and returns its whole output as bytes (throws on any refusal).
using Loader = std::function<std::string(const std::string&)>;

struct Tally {
  int tried = 0, named = 0, identical = 0, wrong = 0, crash = 0;
  std::vector<std::string> failures;  // what went wrong, for the report
};

void judge(const std::string& path, const Loader& load, const std::string& expected, const std::string& what,
           Tally& t) {
  ++t.tried;
  const auto out = test_support::in_child(
      0,
      [&] {
        if (load(path) != expected) throw std::runtime_error("loaded without an error, but the output differs");
      },
      [] { H5close(); }, 30);
  if (!out.exited) {
    ++t.crash;
    t.failures.push_back(what + ": killed by signal " + std::to_string(out.signal));
  } else if (out.exit_code == 0 && out.message.find(path) != std::string::npos) {
    ++t.named;
  } else if (out.exit_code == 1) {
    ++t.identical;
  } else {
    ++t.wrong;
    t.failures.push_back(what + ": " + (out.exit_code == 0 ? "error without the file name: " : "") + out.message);
  }
}

std::string report(const std::string& kind, const Tally& t) {
  std::ostringstream os;
  os << kind << ": tried " << t.tried << ", named error " << t.named << ", identical output " << t.identical
     << ", wrong " << t.wrong << ", crash " << t.crash;
  for (std::size_t i = 0; i < t.failures.size() && i < 5; ++i) os << "\n    " << t.failures[i];
  return os.str();
}

// ---- byte-level and HDF5-level damage ------------------------------------------------------------

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

struct Range {
  std::uint64_t begin, end;
};

// The byte ranges of the file that hold dataset values (contiguous data and chunks); the rest
// is HDF5 metadata (superblock, object headers, B-trees, heaps, attributes, compact data).
std::vector<Range> data_ranges(const std::string& path) {
  std::vector<Range> ranges;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  struct Ctx {
    std::vector<Range>* ranges;
  } ctx{&ranges};
  auto visit = [](hid_t g, const char* name, const H5L_info_t*, void* op) -> herr_t {
    auto* c = static_cast<Ctx*>(op);
    const hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return 0;
    const haddr_t a = H5Dget_offset(d);
    if (a != HADDR_UNDEF) {
      c->ranges->push_back({a, a + H5Dget_storage_size(d)});
    } else {
      hsize_t chunks = 0;
      const hid_t space = H5Dget_space(d);
      if (H5Dget_num_chunks(d, space, &chunks) >= 0)
        for (hsize_t k = 0; k < chunks; ++k) {
          haddr_t addr = 0;
          hsize_t size = 0;
          unsigned mask = 0;
          if (H5Dget_chunk_info(d, space, k, nullptr, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF)
            c->ranges->push_back({addr, addr + size});
        }
      H5Sclose(space);
    }
    H5Dclose(d);
    return 0;
  };
  H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit, &ctx);
  H5Fclose(f);
  return ranges;
}

// Seeded offsets: `n` inside the data ranges (in_data) or outside them.
std::vector<std::uint64_t> flip_offsets(const std::string& bytes, const std::vector<Range>& data, bool in_data, int n,
                                        std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::uint64_t> out;
  auto inside = [&](std::uint64_t o) {
    for (const Range& r : data)
      if (o >= r.begin && o < r.end) return true;
    return false;
  };
  for (int attempts = 0; int(out.size()) < n && attempts < 100000; ++attempts) {
    const std::uint64_t o = rng() % bytes.size();
    if (inside(o) == in_data) out.push_back(o);
  }
  return out;
}

// Opens a copy read-write and applies `edit` through the raw HDF5 API.
void edit_copy(const std::string& original, const std::string& path, const std::function<void(hid_t)>& edit) {
  fs::copy_file(original, path, fs::copy_options::overwrite_existing);
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(f >= 0);
  edit(f);
  REQUIRE(H5Fclose(f) >= 0);
}

// Replaces dataset `name` by one of `type` and `dims` holding `values` (raw bytes of `mem_type`),
// with a valid checksum attribute, so that only the type or shape is wrong.
void replace(hid_t f, const std::string& name, hid_t type, hid_t mem_type, const std::vector<hsize_t>& dims,
             const void* values, std::size_t bytes, hsize_t chunk_rows = 0) {
  if (H5Lexists(f, name.c_str(), H5P_DEFAULT) > 0) REQUIRE(H5Ldelete(f, name.c_str(), H5P_DEFAULT) >= 0);
  const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  if (chunk_rows) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = chunk_rows;
    for (auto& c : chunk) c = std::min<hsize_t>(std::max<hsize_t>(c, 1), 1 << 20);
    H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
  }
  const hid_t d = H5Dcreate2(f, name.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
  REQUIRE(d >= 0);
  if (values) REQUIRE(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
  const std::uint64_t sum = values ? checkpoint_digest(values, bytes) : 0;
  const hid_t as = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(d, "checksum", H5T_STD_U64LE, as, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_UINT64, &sum);
  H5Aclose(a);
  H5Sclose(as);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Sclose(space);
}

std::vector<std::string> all_datasets(const std::string& path) {
  std::vector<std::string> names;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  auto visit = [](hid_t g, const char* name, const H5L_info_t*, void* op) -> herr_t {
    const hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d >= 0) {
      H5Dclose(d);
      static_cast<std::vector<std::string>*>(op)->emplace_back(name);
    }
    return 0;
  };
  H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit, &names);
  H5Fclose(f);
  return names;
}

std::vector<std::string> root_attributes(const std::string& path) {
  std::vector<std::string> names;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  auto visit = [](hid_t, const char* name, const H5A_info_t*, void* op) -> herr_t {
    static_cast<std::vector<std::string>*>(op)->emplace_back(name);
    return 0;
  };
  H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, nullptr, visit, &names);
  H5Fclose(f);
  return names;
}

// ---- the suite over one source file -------------------------------------------------------------

// Kinds of damage that need to know the format: each returns (description, edit) pairs.
using Edit = std::function<void(hid_t)>;
using Edits = std::vector<std::pair<std::string, Edit>>;

struct Source {
  std::string name, path;
  Loader load;
  std::map<std::string, Edits> format_edits;  // kind -> edits
  int meta_flips = 60, data_flips = 40, truncations = 24;
};

void run_suite(const Source& s, const test_support::TempDir& dir) {
  const std::string expected = s.load(s.path);  // the unbroken file loads
  REQUIRE(!expected.empty());
  const std::string bytes = test_support::file_bytes(s.path);
  const std::string broken = dir.file(s.name + "_broken.h5");
  std::map<std::string, Tally> tallies;

  {  // truncations at many offsets, from the first byte to the last
    Tally& t = tallies["truncation"];
    std::vector<std::uint64_t> cuts;
    for (int k = 0; k < s.truncations; ++k) cuts.push_back(bytes.size() * std::uint64_t(k) / std::uint64_t(s.truncations));
    for (std::uint64_t tail : {1, 8, 100}) cuts.push_back(bytes.size() - tail);
    for (std::uint64_t cut : cuts) {
      write_bytes(broken, bytes.substr(0, cut));
      judge(broken, s.load, expected, "cut at " + std::to_string(cut), t);
    }
  }
  const std::vector<Range> data = data_ranges(s.path);
  for (bool in_data : {false, true}) {  // seeded single-byte flips
    Tally& t = tallies[in_data ? "flip in data" : "flip in metadata"];
    const auto offsets = flip_offsets(bytes, data, in_data, in_data ? s.data_flips : s.meta_flips, in_data ? 2 : 1);
    Rng rng(in_data ? 4 : 3);
    for (std::uint64_t o : offsets) {
      std::string b = bytes;
      const auto mask = std::uint8_t(1 + rng() % 255);
      b[o] = char(std::uint8_t(b[o]) ^ mask);
      write_bytes(broken, b);
      judge(broken, s.load, expected, "byte " + std::to_string(o) + " ^ " + std::to_string(mask), t);
    }
  }
  {  // every dataset and every root attribute missing in turn
    Tally& t = tallies["missing entry"];
    for (const std::string& name : all_datasets(s.path)) {
      edit_copy(s.path, broken, [&](hid_t f) { REQUIRE(H5Ldelete(f, name.c_str(), H5P_DEFAULT) >= 0); });
      judge(broken, s.load, expected, "without " + name, t);
    }
    for (const std::string& name : root_attributes(s.path)) {
      edit_copy(s.path, broken, [&](hid_t f) { REQUIRE(H5Adelete(f, name.c_str()) >= 0); });
      judge(broken, s.load, expected, "without attribute " + name, t);
    }
  }
  for (const auto& [kind, edits] : s.format_edits) {
    Tally& t = tallies[kind];
    for (const auto& [what, edit] : edits) {
      edit_copy(s.path, broken, edit);
      judge(broken, s.load, expected, what, t);
    }
  }
  int total = 0;
  for (const auto& entry : tallies) {  // no structured binding: CHECK_MESSAGE's lambda captures it (Clang < 16)
    const auto& kind = entry.first;
    const Tally& t = entry.second;
    MESSAGE(s.name, " / ", report(kind, t));
    CHECK_MESSAGE(t.wrong == 0, s.name, " / ", kind);
    CHECK_MESSAGE(t.crash == 0, s.name, " / ", kind);
    total += t.tried;
  }
  CHECK(total > 50);
}

// ---- Galaxy10 sources ---------------------------------------------------------------------------

std::string galaxy_output(const std::string& path) {
  const data::ImageSet set = data::load_galaxy10(path, {.crop = 0});
  std::string out = std::to_string(set.size()) + "x" + std::to_string(set.height) + "x" + std::to_string(set.width) + ":";
  for (int l : set.labels) out += char('0' + l);
  out.append(reinterpret_cast<const char*>(set.pixels.data()), set.pixels.size());
  return out;
}

Source galaxy_source(const std::string& name, const std::string& path, int n, int h, int w) {
  Source s{name, path, galaxy_output, {}};
  const std::vector<std::uint8_t> px(std::size_t(n) * h * w * 3, 100);
  const std::vector<float> fpx(px.begin(), px.end());
  const std::vector<std::int16_t> spx(px.begin(), px.end());
  const hsize_t N = hsize_t(n), H = hsize_t(h), W = hsize_t(w);
  s.format_edits["wrong element type"] = {
      {"images float32", [=](hid_t f) { replace(f, "images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {N, H, W, 3}, fpx.data(), 0); }},
      {"images int16", [=](hid_t f) { replace(f, "images", H5T_STD_I16LE, H5T_NATIVE_INT16, {N, H, W, 3}, spx.data(), 0); }},
      {"images int8", [=](hid_t f) { replace(f, "images", H5T_STD_I8LE, H5T_NATIVE_UINT8, {N, H, W, 3}, px.data(), 0); }},
      {"ans float64", [=](hid_t f) {
         const std::vector<double> a(n, 1.0);
         replace(f, "ans", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {N}, a.data(), 0);
       }},
  };
  s.format_edits["wrong shape or rank"] = {
      {"images rank 3", [=](hid_t f) { replace(f, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N, H, W * 3}, px.data(), 0); }},
      {"images rank 5", [=](hid_t f) { replace(f, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N, H, W, 3, 1}, px.data(), 0); }},
      {"images 1 channel", [=](hid_t f) { replace(f, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N, H, W * 3, 1}, px.data(), 0); }},
      {"ans 2-D", [=](hid_t f) {
         const std::vector<std::uint8_t> a(2 * n, 1);
         replace(f, "ans", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N, 2}, a.data(), 0);
       }},
      {"one label too few", [=](hid_t f) {
         const std::vector<std::uint8_t> a(n - 1, 1);
         replace(f, "ans", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N - 1}, a.data(), 0);
       }},
  };
  s.format_edits["absurd declared size"] = {
      {"images 5e9 tall", [=](hid_t f) { replace(f, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N, 5000000000ULL, W, 3}, nullptr, 0, 1); }},
      {"images 2^40 wide", [=](hid_t f) { replace(f, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N, H, 1ULL << 40, 3}, nullptr, 0, 1); }},
      {"ans 2^50 labels", [=](hid_t f) { replace(f, "ans", H5T_STD_U8LE, H5T_NATIVE_UINT8, {1ULL << 50}, nullptr, 0, 1 << 16); }},
      {"images 2^40 images", [=](hid_t f) { replace(f, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {1ULL << 40, H, W, 3}, nullptr, 0, 1); }},
  };
  s.format_edits["bad values"] = {
      {"label 10", [=](hid_t f) {
         std::vector<std::int32_t> a(n, 1);
         a[n / 2] = 10;
         replace(f, "ans", H5T_STD_I32LE, H5T_NATIVE_INT32, {N}, a.data(), 0);
       }},
      {"label -1", [=](hid_t f) {
         std::vector<std::int32_t> a(n, 1);
         a.back() = -1;
         replace(f, "ans", H5T_STD_I32LE, H5T_NATIVE_INT32, {N}, a.data(), 0);
       }},
      {"label 255", [=](hid_t f) {
         std::vector<std::uint8_t> a(n, 1);
         a[0] = 255;
         replace(f, "ans", H5T_STD_U8LE, H5T_NATIVE_UINT8, {N}, a.data(), 0);
       }},
  };
  return s;
}

// ---- checkpoint sources -------------------------------------------------------------------------

template <class V>
void append(std::string& out, const V* v, std::size_t n) {
  out.append(reinterpret_cast<const char*>(v), n * sizeof(V));
}

// Everything load_checkpoint, read_checkpoint_header and read_checkpoint_data return, as bytes.
template <class Net>
std::string checkpoint_output(const std::string& path, Net& net, OptimizerState<float>* opt) {
  const CheckpointHeader h = read_checkpoint_header(path);
  const CheckpointData d = load_checkpoint(path, net, opt);
  const CheckpointData extras = read_checkpoint_data(path);
  std::string out = h.architecture + "|" + h.scalar + "|" + h.optimizer + "|" + std::to_string(h.epoch) + "|" +
                    std::to_string(d.epoch) + "|" + std::to_string(extras.epoch) + "|";
  for (const auto& p : net.parameters()) append(out, p.value, p.size);
  for (const auto& b : detail::buffers_of(net)) append(out, b.value, b.size);
  for (Rng* r : net.random_streams()) append(out, r->state().data(), 4);
  if (opt) {
    out += std::to_string(opt->steps) + "|";
    for (const auto& slot : opt->slots) append(out, slot.data(), slot.size());
  }
  for (const CheckpointData* x : {&d, &extras}) {
    for (const auto& [k, v] : x->rngs) { out += k; append(out, v.data(), 4); }
    for (const auto& [k, v] : x->metadata) out += k + "=" + v + ";";
    for (const auto& [k, v] : x->values) { out += k; append(out, v.data(), v.size()); }
  }
  return out;
}

template <class Net>
void add_checkpoint_edits(Source& s, Net& net) {
  const auto params = net.parameters();
  const std::string w0 = "weights/" + params[0].name;
  const hsize_t n0 = hsize_t(params[0].size);
  std::vector<float> w(params[0].value, params[0].value + params[0].size);
  const std::vector<double> wd(w.begin(), w.end());
  s.format_edits["wrong element type"] = {
      {"weights float64", [=](hid_t f) { replace(f, w0, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {n0}, wd.data(), wd.size() * 8); }},
      {"epoch float64", [=](hid_t f) {
         const double e = 3;
         replace(f, "epoch", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {1}, &e, 8);
       }},
      {"rng int64", [=](hid_t f) {
         const std::int64_t r[4] = {1, 2, 3, 4};
         replace(f, "rng/network/0", H5T_STD_I64LE, H5T_NATIVE_INT64, {4}, r, 32);
       }},
      {"metadata as numbers", [=](hid_t f) {
         const double x = 1;
         replace(f, "metadata/recipe", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {1}, &x, 8);
       }},
  };
  s.format_edits["wrong shape or rank"] = {
      {"weights one value short", [=](hid_t f) { replace(f, w0, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {n0 - 1}, w.data(), (n0 - 1) * 4); }},
      {"epoch of 2", [=](hid_t f) {
         const std::int64_t e[2] = {1, 2};
         replace(f, "epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, {2}, e, 16);
       }},
      {"rng of 3", [=](hid_t f) {
         const std::uint64_t r[3] = {1, 2, 3};
         replace(f, "rng/network/0", H5T_STD_U64LE, H5T_NATIVE_UINT64, {3}, r, 24);
       }},
  };
  s.format_edits["absurd declared size"] = {
      {"weights 2^40 values", [=](hid_t f) { replace(f, w0, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {1ULL << 40}, nullptr, 0, 1 << 16); }},
      {"training 2e14 values", [=](hid_t f) { replace(f, "training/history", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {hsize_t(2e14)}, nullptr, 0, 1 << 16); }},
      {"metadata string of 1 GiB", [=](hid_t f) {
         H5Ldelete(f, "metadata/recipe", H5P_DEFAULT);
         const hid_t t = H5Tcopy(H5T_C_S1);
         H5Tset_size(t, std::size_t(1) << 30);
         const hid_t sp = H5Screate(H5S_SCALAR);
         const hid_t d = H5Dcreate2(f, "metadata/recipe", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
         REQUIRE(d >= 0);
         H5Dclose(d);
         H5Sclose(sp);
         H5Tclose(t);
       }},
  };
  s.format_edits["bad values"] = {
      {"NaN weight", [=](hid_t f) {
         std::vector<float> v = w;
         v[n0 / 2] = std::numeric_limits<float>::quiet_NaN();
         replace(f, w0, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {n0}, v.data(), v.size() * 4);
       }},
      {"infinite weight", [=](hid_t f) {
         std::vector<float> v = w;
         v[0] = -std::numeric_limits<float>::infinity();
         replace(f, w0, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {n0}, v.data(), v.size() * 4);
       }},
      {"epoch -1", [=](hid_t f) {
         const std::int64_t e = -1;
         replace(f, "epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, {1}, &e, 8);
       }},
      {"epoch 2^40", [=](hid_t f) {
         const std::int64_t e = 1LL << 40;
         replace(f, "epoch", H5T_STD_I64LE, H5T_NATIVE_INT64, {1}, &e, 8);
       }},
      {"all-zero random stream", [=](hid_t f) {
         const std::uint64_t r[4] = {0, 0, 0, 0};
         replace(f, "rng/network/0", H5T_STD_U64LE, H5T_NATIVE_UINT64, {4}, r, 32);
       }},
  };
}

void train_a_little(SmallNet& net, Adam<float>& adam) {
  Tensor<float> x(4, 8, 8, 2);
  Rng r(7);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(r.uniform());
  const std::vector<int> y{0, 1, 2, 3};
  for (int s = 0; s < 2; ++s) net.train_step(x, y, adam);
}

CheckpointData extras() {
  CheckpointData d;
  d.epoch = 4;
  d.rngs["shuffle"] = Rng(5).state();
  d.metadata["recipe"] = "paper";
  d.values["history"] = {1.5, 1.25, 1.0, 0.75};
  d.values["best"] = {0.875};
  return d;
}

}  // namespace

TEST_CASE("malformed inputs: broken Galaxy10 files give a named error or the unbroken output") {
  const test_support::TempDir dir("malformed_galaxy");
  data::ImageSet synthetic;
  synthetic.height = synthetic.width = 16;
  for (int i = 0; i < 12; ++i) synthetic.labels.push_back(i % 10);
  Rng r(11);
  for (std::size_t k = 0; k < 12u * 16 * 16 * 3; ++k) synthetic.pixels.push_back(std::uint8_t(r() >> 56));
  const std::string tiny = dir.file("synthetic.h5");
  data::write_galaxy10(tiny, synthetic);
  run_suite(galaxy_source("galaxy10 synthetic 12x16x16", tiny, 12, 16, 16), dir);

  const std::string real = std::string(HUBBLE_SHARED_DATA_DIR) + "/galaxy10_real_train.h5";
  if (!fs::exists(real)) {
    MESSAGE("real-data part skipped: ", real, " is absent");
    return;
  }
  const std::string small = dir.file("real16.h5");
  data::write_galaxy10(small, data::load_galaxy10(real, {.crop = 64, .limit = 16}));
  Source s = galaxy_source("galaxy10 real 16x64x64", small, 16, 64, 64);
  run_suite(s, dir);
}

TEST_CASE("malformed inputs: broken checkpoints give a named error or the unbroken output") {
  const test_support::TempDir dir("malformed_checkpoint");
  {
    SmallNet net(1);
    Adam<float> adam;
    train_a_little(net, adam);
    const std::string path = dir.file("small.h5");
    save_checkpoint(path, net, &adam, extras());
    SmallNet target(2);
    Adam<float> target_adam;
    Source s{"checkpoint small net + Adam", path,
             [&](const std::string& p) { return checkpoint_output(p, target, &target_adam); }, {}};
    add_checkpoint_edits(s, net);
    run_suite(s, dir);
  }
  {
    PaperNet net(3);
    const std::string path = dir.file("paper.h5");
    save_checkpoint(path, net, nullptr, extras());
    PaperNet target(4);
    Source s{"checkpoint PaperNet (weights)", path,
             [&](const std::string& p) { return checkpoint_output(p, target, nullptr); }, {}};
    s.meta_flips = 40;
    s.data_flips = 30;
    s.truncations = 16;
    add_checkpoint_edits(s, net);
    run_suite(s, dir);
  }
}

TEST_CASE("atomic writes: a full disk while writing a text file or a PNG leaves the old file, naming the cause") {
  const test_support::TempDir dir("malformed_atomic");
  const std::string text = dir.file("metrics.jsonl"), png = dir.file("curves.png");
  io::write_text_atomically(text, "{\"epoch\": 1}\n");
  std::vector<std::uint8_t> px(64 * 64 * 3);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t(i * 7 + i / 64);
  io::write_png(png, 64, 64, 3, px);
  const std::string text_before = test_support::file_bytes(text), png_before = test_support::file_bytes(png);
  const std::string long_text(100000, 'x');
  Rng r(1);
  std::vector<std::uint8_t> noisy(256 * 256 * 3);
  for (auto& p : noisy) p = std::uint8_t(r() >> 56);
  const auto t = test_support::in_child(4096, [&] { io::write_text_atomically(text, long_text); }, [] {});
  const auto p = test_support::in_child(4096, [&] { io::write_png(png, 256, 256, 3, noisy); }, [] {});
  for (const auto* out : {&t, &p}) {
    INFO("child message: ", out->message);
    CHECK(out->exited);
    CHECK(out->exit_code == 0);
    CHECK(out->message.find("File too large") != std::string::npos);
  }
  CHECK(t.message.find(text) != std::string::npos);
  CHECK(p.message.find(png) != std::string::npos);
  CHECK(test_support::file_bytes(text) == text_before);
  CHECK(test_support::file_bytes(png) == png_before);
  CHECK(test_support::files_in(dir.path()) == std::vector<std::string>{"curves.png", "metrics.jsonl"});
  // And a folder that is not there is named too.
  const std::string nowhere = dir.file("no/such/folder/x.txt");
  const std::string msg = test_support::error_of([&] { io::write_text_atomically(nowhere, "x"); });
  CHECK(msg.find(nowhere) != std::string::npos);
  CHECK(msg.find("No such file or directory") != std::string::npos);
}
