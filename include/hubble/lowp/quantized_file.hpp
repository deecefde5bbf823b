#pragma once
// Quantised model files: a QuantizedPlan (int8 conv stages, an int8 or fp32 first Dense, the rest
// of the head in fp32) in one HDF5 file, written atomically and read back with every value
// checked, like a checkpoint (io/checkpoint.hpp).
//
//   lowp::save_quantized("paper.int8.h5", q, {{"class_names", "..."}});
//   lowp::QuantizedPlan q = lowp::load_quantized("paper.int8.h5");
//
// Schema, format "hubble-int8" version 2 (every dataset little-endian, with the checkpoint's
// BLAKE2b "checksum" attribute; docs/checkpoints.md):
//   attributes on /     format, format_version, architecture (the fp32 network's), dataset_count
//   input/scale float32[1], input/zero_point int64[1]         the input's u8 code
//   head/bridge string ("flatten" | "global_avg_pool"), head/softmax int64[1]
//   conv/<i>/name string
//   conv/<i>/geometry int64[12]  h w c k stride pad_top pad_left oh ow f relu pool
//   conv/<i>/weights int8[k*k*c, f]  (codes in -127..127), conv/<i>/scales float32[f] (> 0)
//   conv/<i>/bias float32[f], conv/<i>/output_scale float32[1], conv/<i>/output_zero_point int64[1]
//   dense/<j>/name string, dense/<j>/shape int64[3] (in, out, relu), dense/<j>/bias float32[out], and
//     either dense/<j>/kernel float32[in, out]               (fp32)
//     or     dense/<j>/weights int8[in, out], dense/<j>/scales float32[out]
//                                                            (int8: only j = 0 after a flatten bridge;
//                                                             its input code is the last conv's output_*)
//   metadata/<key> string
// Version 1 is version 2 without int8 Dense layers (its last conv stage's output code was stored
// but unused); this hubble reads both, and a version-1 file runs as it did, with an fp32 head.
// Loading refuses, naming the file and the entry: another format or version, a missing or damaged
// dataset, stages whose shapes do not chain, codes or zero points out of range, scales that are
// not finite and positive, non-finite weights.
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hubble/io/checkpoint.hpp"
#include "hubble/lowp/quantized_plan.hpp"

namespace hubble::lowp {

inline constexpr const char* quantized_format = "hubble-int8";
inline constexpr std::int64_t quantized_format_version = 2;

inline void save_quantized(const std::string& path, const QuantizedPlan& q,
                           const std::map<std::string, std::string>& metadata = {}) {
  const InferencePlan& plan = q.plan();
  for (const auto& [key, text] : metadata) hubble::detail::check_key(path, key);
  hubble::detail::write_atomically(path, [&](h5::File& f) {
    std::int64_t n = 0;
    using hubble::detail::put;
    using hubble::detail::put_text;
    f.set_attribute("format", std::string(quantized_format));
    f.set_attribute("format_version", quantized_format_version);
    f.set_attribute("architecture", plan.architecture);
    const float in_scale = q.input_quant().scale;
    const std::int64_t in_zero = q.input_quant().zero_point, softmax = plan.softmax;
    put(f, n, "input/scale", &in_scale, 1);
    put(f, n, "input/zero_point", &in_zero, 1);
    put_text(f, n, "head/bridge", plan.bridge == Bridge::flatten ? "flatten" : "global_avg_pool");
    put(f, n, "head/softmax", &softmax, 1);
    for (std::size_t i = 0; i < plan.convs.size(); ++i) {
      const PlanConv& s = plan.convs[i];
      const QuantizedStage& st = q.stages()[i];
      const std::string p = "conv/" + std::to_string(i) + "/";
      const std::int64_t geometry[12] = {s.g.h,        s.g.w,  s.g.c,  s.g.k, s.g.stride, s.g.pad_top,
                                         s.g.pad_left, s.g.oh, s.g.ow, s.g.f, s.relu,     s.pool};
      const float out_scale = st.out.scale;
      const std::int64_t out_zero = st.out.zero_point;
      put_text(f, n, p + "name", s.name);
      put(f, n, p + "geometry", geometry, 12);
      put(f, n, p + "weights", st.weights.q.data(), st.weights.q.size(),
          {std::size_t(st.weights.rows), std::size_t(st.weights.f)});
      put(f, n, p + "scales", st.weights.scale.data(), st.weights.scale.size());
      put(f, n, p + "bias", st.bias.data(), st.bias.size());
      put(f, n, p + "output_scale", &out_scale, 1);
      put(f, n, p + "output_zero_point", &out_zero, 1);
    }
    for (std::size_t j = 0; j < plan.dense.size(); ++j) {
      const PlanDense& d = plan.dense[j];
      const std::string p = "dense/" + std::to_string(j) + "/";
      const std::int64_t shape[3] = {d.in, d.out, d.relu};
      put_text(f, n, p + "name", d.name);
      put(f, n, p + "shape", shape, 3);
      if (j == 0 && q.dense()) {
        const kernels::lowp::PerChannelS8& w = q.dense()->weights;
        put(f, n, p + "weights", w.q.data(), w.q.size(), {std::size_t(d.in), std::size_t(d.out)});
        put(f, n, p + "scales", w.scale.data(), w.scale.size());
      } else {
        put(f, n, p + "kernel", d.w.data(), d.w.size(), {std::size_t(d.in), std::size_t(d.out)});
      }
      put(f, n, p + "bias", d.b.data(), d.b.size());
    }
    for (const auto& [key, text] : metadata) put_text(f, n, "metadata/" + key, text);
    f.set_attribute("dataset_count", n);
  });
}

struct QuantizedFile {
  std::string path;
  std::map<std::string, std::string> metadata;
};

inline QuantizedPlan load_quantized(const std::string& path, QuantizedFile* info = nullptr,
                                    kernels::lowp::Int8Path int8_path = kernels::lowp::int8_path()) {
  HUBBLE_CHECK(std::filesystem::exists(path), path, ": no such file (expected a hubble int8 model)");
  return hubble::detail::guarded_read(
      path,
      [&] {
        const h5::File f = h5::File::open(path);
        const bool has_format = f.has_attribute("format");
        const std::string format = has_format ? f.attribute("format") : std::string();
        HUBBLE_CHECK(format == quantized_format, path, ": not a hubble int8 model (its 'format' attribute is ",
                     has_format ? "'" + format + "'" : std::string("missing"), ", expected '", quantized_format, "')");
        if (!f.has_attribute("format_version"))
          h5::detail::missing(path, ": int8 model lacks attribute 'format_version'");
        const std::int64_t version = f.int_attribute("format_version");
        HUBBLE_CHECK(version == 1 || version == quantized_format_version, path, ": int8 model format version ", version,
                     " is not supported (this hubble reads versions 1 to ", quantized_format_version, ")");
        const auto i64 = [&](const std::string& name, std::size_t count) {
          return hubble::detail::read_values<std::int64_t>(f, true, name, "int8 model", count);
        };
        const auto f32 = [&](const std::string& name, std::size_t count) {
          std::vector<float> v = hubble::detail::read_values<float>(f, true, name, "int8 model", count);
          hubble::detail::check_finite(path, name, v);
          return v;
        };
        const auto text = [&](const std::string& name) {
          if (!f.has(name)) h5::detail::missing(path, ": int8 model lacks dataset '", name, "'");
          return hubble::detail::read_text(f, true, name);
        };
        // s8 codes [rows][f] in -127..127 and their positive per-column scales.
        const auto s8_weights = [&](const std::string& p, int rows, int f_) {
          kernels::lowp::PerChannelS8 w;
          w.rows = rows;
          w.f = f_;
          w.q = hubble::detail::read_values<std::int8_t>(f, true, p + "weights", "int8 weights",
                                                         std::size_t(rows) * std::size_t(f_));
          for (std::int8_t v : w.q) hubble::detail::check_range<int>(path, p + "weights", v, -127, 127);
          w.scale = f32(p + "scales", std::size_t(f_));
          for (float v : w.scale)
            if (!(v > 0)) h5::detail::corrupt(path, ": '", p, "scales' holds ", v, ", not a positive scale");
          return w;
        };
        const auto u8_quant = [&](const std::string& scale, const std::string& zero) {
          const float s = f32(scale, 1)[0];
          const std::int64_t z = i64(zero, 1)[0];
          if (!(s > 0)) h5::detail::corrupt(path, ": '", scale, "' is ", s, ", not a positive scale");
          hubble::detail::check_range<std::int64_t>(path, zero, z, 0, 255);
          return kernels::lowp::U8Quant{s, int(z)};
        };
        std::int64_t datasets = 0;
        InferencePlan plan;
        plan.architecture = f.attribute("architecture");
        const kernels::lowp::U8Quant input = u8_quant("input/scale", "input/zero_point");
        datasets += 2;
        const std::string bridge = text("head/bridge");
        HUBBLE_CHECK(bridge == "flatten" || bridge == "global_avg_pool", path, ": head/bridge is '", bridge,
                     "', expected flatten or global_avg_pool");
        plan.bridge = bridge == "flatten" ? Bridge::flatten : Bridge::global_avg_pool;
        const std::int64_t softmax = i64("head/softmax", 1)[0];
        hubble::detail::check_range<std::int64_t>(path, "head/softmax", softmax, 0, 1);
        plan.softmax = softmax == 1;
        datasets += 2;
        std::vector<QuantizedStage> stages;
        std::optional<QuantizedDense> dense;
        int h = 0, w = 0, c = 0;  // the chain: each stage's input is the previous stage's output
        for (int i = 0; f.has("conv/" + std::to_string(i) + "/geometry"); ++i) {
          const std::string p = "conv/" + std::to_string(i) + "/";
          const std::vector<std::int64_t> g = i64(p + "geometry", 12);
          for (int k = 0; k < 10; ++k)
            hubble::detail::check_range<std::int64_t>(path, p + "geometry", g[std::size_t(k)], k == 5 || k == 6 ? 0 : 1,
                                                      1 << 16);
          hubble::detail::check_range<std::int64_t>(path, p + "geometry (relu)", g[10], 0, 1);
          hubble::detail::check_range<std::int64_t>(path, p + "geometry (pool)", g[11], 0, 64);
          PlanConv s;
          s.name = text(p + "name");
          s.g.h = int(g[0]), s.g.w = int(g[1]), s.g.c = int(g[2]), s.g.k = int(g[3]), s.g.stride = int(g[4]);
          s.g.pad_top = int(g[5]), s.g.pad_left = int(g[6]), s.g.oh = int(g[7]), s.g.ow = int(g[8]), s.g.f = int(g[9]);
          s.relu = g[10] == 1;
          s.pool = int(g[11]);
          // The output must fit what the input, kernel, stride and padding give: the padding after the
          // image is pad or pad + 1 ('same' puts an odd row or column at the end).
          const auto fits = [](int in, int k, int stride, int pad, int out) {
            return in + 2 * pad + 1 >= k && out <= (in + 2 * pad + 1 - k) / stride + 1;
          };
          HUBBLE_CHECK(fits(s.g.h, s.g.k, s.g.stride, s.g.pad_top, s.g.oh) &&
                           fits(s.g.w, s.g.k, s.g.stride, s.g.pad_left, s.g.ow),
                       path, ": ", p, "geometry: a ", s.g.k, "x", s.g.k, "/", s.g.stride, " convolution of ", s.g.h,
                       "x", s.g.w, " cannot give ", s.g.oh, "x", s.g.ow);
          HUBBLE_CHECK(!s.pool || (s.relu && s.g.oh >= s.pool && s.g.ow >= s.pool), path, ": ", p, "geometry: a ",
                       s.pool, "x", s.pool, " pool needs a ReLU and an output at least that large");
          if (i == 0) {
            plan.h = s.g.h, plan.w = s.g.w, plan.c = s.g.c;
          } else {
            HUBBLE_CHECK(s.g.h == h && s.g.w == w && s.g.c == c, path, ": ", p, "takes ", s.g.h, "x", s.g.w, "x", s.g.c,
                         " inputs, but the stage before gives ", h, "x", w, "x", c);
          }
          h = s.pool ? s.g.oh / s.pool : s.g.oh, w = s.pool ? s.g.ow / s.pool : s.g.ow, c = s.g.f;
          s.out_h = h, s.out_w = w;
          QuantizedStage st;
          st.weights = s8_weights(p, int(s.g.patch()), s.g.f);
          st.bias = f32(p + "bias", std::size_t(s.g.f));
          st.out = u8_quant(p + "output_scale", p + "output_zero_point");
          datasets += 7;
          plan.convs.push_back(std::move(s));
          stages.push_back(std::move(st));
        }
        HUBBLE_CHECK(!plan.convs.empty(), path, ": int8 model holds no conv stage");
        std::int64_t features = plan.bridge == Bridge::flatten ? std::int64_t(h) * w * c : c;
        for (int j = 0; f.has("dense/" + std::to_string(j) + "/shape"); ++j) {
          const std::string p = "dense/" + std::to_string(j) + "/";
          const std::vector<std::int64_t> shape = i64(p + "shape", 3);
          HUBBLE_CHECK(
              shape[0] == features && shape[1] >= 1 && shape[1] <= (1 << 20) && (shape[2] == 0 || shape[2] == 1), path,
              ": ", p, "shape is [", shape[0], ", ", shape[1], ", ", shape[2], "], expected [", features,
              ", units, 0 or 1]");
          PlanDense d;
          d.name = text(p + "name");
          d.in = int(shape[0]), d.out = int(shape[1]), d.relu = shape[2] == 1;
          if (f.has(p + "weights")) {
            HUBBLE_CHECK(version >= 2 && j == 0 && plan.bridge == Bridge::flatten, path, ": ", p,
                         "weights: only the first Dense after a flatten bridge can be int8 (format version 2)");
            dense = QuantizedDense{s8_weights(p, d.in, d.out), {}};  // QuantizedPlan sets d.w from the codes
            ++datasets;
          } else {
            d.w = f32(p + "kernel", std::size_t(d.in) * std::size_t(d.out));
          }
          d.b = f32(p + "bias", std::size_t(d.out));
          if (j == 0 && dense) dense->bias = d.b;
          datasets += 4;
          features = d.out;
          plan.dense.push_back(std::move(d));
        }
        HUBBLE_CHECK(!plan.dense.empty(), path, ": int8 model holds no dense stage");
        QuantizedFile meta;
        meta.path = path;
        for (const std::string& key : f.datasets("metadata", hubble::detail::max_extras)) {
          meta.metadata[key] = text("metadata/" + key);
          ++datasets;
        }
        if (f.has_attribute("dataset_count") && f.int_attribute("dataset_count") != datasets)
          h5::detail::corrupt(path, ": it holds ", datasets, " of the ", f.int_attribute("dataset_count"),
                              " datasets it was written with (an entry was removed or added)");
        if (info) *info = std::move(meta);
        return QuantizedPlan(std::move(plan), input, std::move(stages), std::move(dense), int8_path);
      },
      "int8 model");
}

}  // namespace hubble::lowp
