#pragma once
// Checkpoints: a network's weights plus everything a training run needs to continue exactly
// (optimiser state, epoch, random streams, history), in one HDF5 file.
//
//   save_checkpoint("runs/x/last.h5", net, &adam, data);     // atomic: temp file + rename
//   CheckpointData d = load_checkpoint("runs/x/last.h5", net, &adam);
//
// Schema, format_version 1 (T = the network's scalar type):
//   attributes on /   format          "hubble-checkpoint"
//                     format_version  1 (integer)
//                     architecture    Network::architecture(), e.g. "Input<128,128,3> Conv2D<32,5,2,valid> ..."
//                     scalar          "float" or "double"
//   weights/<param>                   T[n]     every trainable array, e.g. weights/conv2d_1/kernel
//                                              (Conv2D kernels are [K,K,C,F] row-major, Dense [in,out])
//   buffers/<name>                    T[n]     non-trainable state, e.g. buffers/batch_norm_1/moving_mean
//                                              (Network::buffers(); absent for networks without any)
//   optimizer/name                    string   "adam", "sgd", "rmsprop"      (absent: no optimiser saved)
//   optimizer/steps                   int64[1] updates taken so far
//   optimizer/slots_per_param         int64[1]
//   optimizer/slots/<param>/<s>       T[n]     slot s of that parameter (absent before the first step)
//   epoch                             int64[1] completed epochs
//   rng/network/<i>                   uint64[4] state of the i-th stream of Network::random_streams()
//   rng/trainer/<name>                uint64[4] streams of the training loop
//   metadata/<key>                    string   free-form text (recipe, seed, class names, ...)
//   training/<key>                    float64[n] free-form numbers (best accuracy, per-epoch history)
//
// Loading checks the format, the version, the architecture (naming both when they differ),
// the scalar type and the size of every dataset before it changes anything, so a failed load
// leaves the network and optimiser untouched. A file that is truncated or corrupt is an Error
// naming the file.
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#if __has_include(<unistd.h>)
#include <fcntl.h>
#include <unistd.h>
#define HUBBLE_HAS_FSYNC 1
#endif

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/io/hdf5.hpp"
#include "hubble/optim/optimizer_state.hpp"

namespace hubble {

inline constexpr const char* checkpoint_format = "hubble-checkpoint";
inline constexpr std::int64_t checkpoint_format_version = 1;

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
};

template <class T>
constexpr const char* scalar_name() {
  if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, double>) return "double";
  else static_assert(sizeof(T) == 0, "checkpoint: the scalar type must be float or double");
}

namespace detail {

inline void fsync_file(const std::string& path) {
#ifdef HUBBLE_HAS_FSYNC
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
#else
  (void)path;
#endif
}

// Writes `path` by calling write(file) on a temporary file beside it, flushing it to disk and
// renaming it over `path`: readers (and a run killed at any moment) see the old file or the new
// one, never a partial one.
template <class Writer>
void write_atomically(const std::string& path, Writer&& write) {
  const std::filesystem::path target(path);
  const std::string tmp = path + ".tmp" +
#ifdef HUBBLE_HAS_FSYNC
                          std::to_string(::getpid());
#else
                          std::string("");
#endif
  try {
    h5::File f = h5::File::create(tmp);
    write(f);
    f.flush();
    f.close();
    fsync_file(tmp);
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    HUBBLE_CHECK(!ec, path, ": cannot move the finished file into place (", ec.message(), ")");
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
    fsync_file(dir.string());  // makes the rename itself durable
  } catch (...) {
    std::error_code ignore;
    std::filesystem::remove(tmp, ignore);
    throw;
  }
}

// Keys of CheckpointData become HDF5 paths: "a" or "a/b", never empty parts.
inline void check_key(const std::string& path, const std::string& key) {
  HUBBLE_CHECK(!key.empty() && key.front() != '/' && key.back() != '/' && key.find("//") == std::string::npos &&
                   key.find('.') != 0,
               path, ": '", key, "' cannot name a checkpoint entry (use 'name' or 'group/name')");
}

inline std::string unreadable(const std::string& path, const std::string& why) {
  return "checkpoint " + path + " cannot be read (truncated or corrupt?): " + why;
}

// Reads a whole dataset and checks that it holds exactly `n` numbers.
template <class V>
std::vector<V> read_sized(const h5::File& f, const std::string& name, std::size_t n, const std::string& what) {
  HUBBLE_CHECK(f.has(name), f.path(), ": checkpoint lacks dataset '", name, "' (", what, ")");
  const h5::DatasetInfo info = f.info(name);
  HUBBLE_CHECK(info.element == h5::ElementClass::integer || info.element == h5::ElementClass::floating, f.path(),
               ": checkpoint dataset '", name, "' does not hold numbers");
  HUBBLE_CHECK(info.count() == n, f.path(), ": checkpoint dataset '", name, "' holds ", info.count(),
               " values, expected ", n, " (", what, ")");
  return f.read<V>(name);
}

// Network::buffers() (non-trainable state such as BatchNorm's moving statistics), or none for
// networks that predate it.
template <class Net>
auto buffers_of(Net& net) {
  if constexpr (requires { net.buffers(); }) return net.buffers();
  else return std::vector<ParamRef<typename Net::scalar>>{};
}

// The trainer streams, metadata and numbers of an open checkpoint.
inline void read_extras(const h5::File& f, CheckpointData& data) {
  for (const std::string& name : f.datasets("rng/trainer")) {
    const auto v = read_sized<std::uint64_t>(f, "rng/trainer/" + name, 4, "trainer stream");
    data.rngs[name] = {v[0], v[1], v[2], v[3]};
  }
  for (const std::string& key : f.datasets("metadata")) data.metadata[key] = f.read_string("metadata/" + key);
  for (const std::string& key : f.datasets("training")) data.values[key] = f.read<double>("training/" + key);
}

}  // namespace detail

// Reads only the header (attributes, optimiser name, epoch).
inline CheckpointHeader read_checkpoint_header(const std::string& path) {
  HUBBLE_CHECK(std::filesystem::exists(path), path, ": no such file (expected a hubble checkpoint)");
  h5::File f = [&] {
    try {
      return h5::File::open(path);
    } catch (const Error& e) {
      throw Error(detail::unreadable(path, e.what()));
    }
  }();
  CheckpointHeader h;
  h.path = path;
  HUBBLE_CHECK(f.has_attribute("format") && f.attribute("format") == checkpoint_format, path,
               ": not a hubble checkpoint (its 'format' attribute is ",
               f.has_attribute("format") ? "'" + f.attribute("format") + "'" : std::string("missing"),
               ", expected '", checkpoint_format, "')");
  h.format_version = f.int_attribute("format_version");
  HUBBLE_CHECK(h.format_version == checkpoint_format_version, path, ": checkpoint format version ", h.format_version,
               " is not supported (this hubble reads version ", checkpoint_format_version, ")");
  h.architecture = f.attribute("architecture");
  h.scalar = f.attribute("scalar");
  try {
    if (f.has("optimizer/name")) h.optimizer = f.read_string("optimizer/name");
    const std::vector<std::int64_t> epoch = detail::read_sized<std::int64_t>(f, "epoch", 1, "completed epochs");
    h.epoch = epoch[0];
  } catch (const Error& e) {
    throw Error(detail::unreadable(path, e.what()));
  }
  return h;
}

// Everything but the weights and the optimiser (epoch, trainer streams, metadata, numbers), e.g.
// to recover a run's settings before building its network.
inline CheckpointData read_checkpoint_data(const std::string& path) {
  const CheckpointHeader h = read_checkpoint_header(path);
  CheckpointData data;
  data.epoch = h.epoch;
  try {
    h5::File f = h5::File::open(path);
    detail::read_extras(f, data);
  } catch (const Error& e) {
    throw Error(detail::unreadable(path, e.what()));
  }
  return data;
}

// Saves `net` (and `opt` when not null) to `path` atomically.
template <class Net>
void save_checkpoint(const std::string& path, Net& net, const OptimizerState<typename Net::scalar>* opt,
                     const CheckpointData& data = {}) {
  using T = typename Net::scalar;
  const auto params = net.parameters();
  detail::write_atomically(path, [&](h5::File& f) {
    f.set_attribute("format", std::string(checkpoint_format));
    f.set_attribute("format_version", checkpoint_format_version);
    f.set_attribute("architecture", Net::architecture());
    f.set_attribute("scalar", std::string(scalar_name<T>()));
    for (const auto& p : params) f.write<T>("weights/" + p.name, p.value, {hsize_t(p.size)});
    for (const auto& b : detail::buffers_of(net)) f.write<T>("buffers/" + b.name, b.value, {hsize_t(b.size)});
    if (opt) {
      f.write_string("optimizer/name", opt->name());
      const std::vector<std::int64_t> steps{opt->steps}, per{opt->slots_per_param()};
      f.write("optimizer/steps", steps);
      f.write("optimizer/slots_per_param", per);
      if (!opt->slots.empty()) {
        HUBBLE_CHECK(opt->slots.size() == params.size() * std::size_t(opt->slots_per_param()), path, ": optimiser ",
                     opt->name(), " holds ", opt->slots.size(), " arrays for ", params.size(), " parameters");
        for (std::size_t p = 0; p < params.size(); ++p)
          for (int s = 0; s < opt->slots_per_param(); ++s)
            f.write("optimizer/slots/" + params[p].name + "/" + std::to_string(s),
                    opt->slots[p * std::size_t(opt->slots_per_param()) + std::size_t(s)]);
      }
    }
    f.write("epoch", std::vector<std::int64_t>{data.epoch});
    const std::vector<Rng*> streams = net.random_streams();
    for (std::size_t i = 0; i < streams.size(); ++i)
      f.write<std::uint64_t>("rng/network/" + std::to_string(i), streams[i]->state().data(), {4});
    for (const auto& [name, state] : data.rngs) {
      detail::check_key(path, name);
      f.write<std::uint64_t>("rng/trainer/" + name, state.data(), {4});
    }
    for (const auto& [key, text] : data.metadata) {
      detail::check_key(path, key);
      f.write_string("metadata/" + key, text);
    }
    for (const auto& [key, v] : data.values) {
      detail::check_key(path, key);
      f.write<double>("training/" + key, v.data(), {hsize_t(v.size())});
    }
  });
}

// Loads `path` into `net` (and into `opt` when not null; its name must match the saved
// optimiser's). Returns the rest of what was saved.
template <class Net>
CheckpointData load_checkpoint(const std::string& path, Net& net, OptimizerState<typename Net::scalar>* opt = nullptr) {
  using T = typename Net::scalar;
  const CheckpointHeader h = read_checkpoint_header(path);
  HUBBLE_CHECK(h.architecture == Net::architecture(), path, ": checkpoint is of another architecture\n  checkpoint: ",
               h.architecture, "\n  network:    ", Net::architecture());
  HUBBLE_CHECK(h.scalar == scalar_name<T>(), path, ": checkpoint holds ", h.scalar, " weights, the network uses ",
               scalar_name<T>());
  if (opt) {
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
  try {
    h5::File f = h5::File::open(path);
    for (const auto& p : params) weights.push_back(detail::read_sized<T>(f, "weights/" + p.name, p.size, p.name));
    for (const auto& b : buffers)
      buffer_values.push_back(detail::read_sized<T>(f, "buffers/" + b.name, b.size, b.name));
    if (opt) {
      steps = detail::read_sized<std::int64_t>(f, "optimizer/steps", 1, "optimiser steps")[0];
      const auto per = detail::read_sized<std::int64_t>(f, "optimizer/slots_per_param", 1, "optimiser slots")[0];
      HUBBLE_CHECK(per == opt->slots_per_param(), path, ": optimiser '", h.optimizer, "' saved ", per,
                   " slots per parameter, expected ", opt->slots_per_param());
      if (f.has("optimizer/slots"))
        for (const auto& p : params)
          for (int s = 0; s < opt->slots_per_param(); ++s)
            slots.push_back(detail::read_sized<T>(f, "optimizer/slots/" + p.name + "/" + std::to_string(s), p.size,
                                                  "optimiser state of " + p.name));
      HUBBLE_CHECK(steps == 0 || !slots.empty(), path, ": optimiser took ", steps, " steps but its state is missing");
    }
    data.epoch = h.epoch;
    for (std::size_t i = 0; i < streams.size(); ++i) {
      const auto v = detail::read_sized<std::uint64_t>(f, "rng/network/" + std::to_string(i), 4, "dropout stream");
      network_rngs.push_back({v[0], v[1], v[2], v[3]});
    }
    detail::read_extras(f, data);
  } catch (const Error& e) {
    throw Error(detail::unreadable(path, e.what()));
  }

  // Everything read and checked: now change the network and the optimiser.
  for (std::size_t p = 0; p < params.size(); ++p) std::copy(weights[p].begin(), weights[p].end(), params[p].value);
  for (std::size_t b = 0; b < buffers.size(); ++b)
    std::copy(buffer_values[b].begin(), buffer_values[b].end(), buffers[b].value);
  for (std::size_t i = 0; i < streams.size(); ++i) streams[i]->set_state(network_rngs[i]);
  if (opt) {
    opt->steps = steps;
    opt->slots = std::move(slots);
  }
  return data;
}

}  // namespace hubble
