// galaxy10_quantize — post-training int8 quantisation of a trained checkpoint (PaperNet,
// ImprovedNet or any plain Conv2D network; lowp/quantized_plan.hpp), calibrated on training
// images, scored against the fp32 model on a Galaxy10 file, and optionally timed beside it.
//
//   galaxy10_quantize --model runs/a/best.h5 --calibration train.h5 --data other.h5
//   galaxy10_quantize --model runs/a/best.h5 --calibration train.h5 --folds 4 --fold 0 --split-seed 0 --time
//
// Calibration reads --calibration-images images spread evenly over the calibration file (its
// training part, with --folds); every --method is tried and scored side by side. Scoring uses
// --data, or with --folds the validation fold of the calibration file (cross-validation: the
// images scored were not calibrated on). The fp32 column is hubble::Model's own prediction.
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hubble/data/augment.hpp"
#include "hubble/data/galaxy10.hpp"
#include "hubble/data/model_input.hpp"
#include "hubble/data/split.hpp"
#include "hubble/io/text_file.hpp"
#include "hubble/kernels/cpu_features.hpp"
#include "hubble/lowp/quantized_file.hpp"
#include "hubble/lowp/quantized_plan.hpp"
#include "hubble/metrics/classification.hpp"
#include "hubble/metrics/json.hpp"
#include "hubble/model.hpp"

namespace {

namespace data = hubble::data;
namespace json = hubble::json;
namespace lowp = hubble::lowp;
namespace kl = hubble::kernels::lowp;
namespace metrics = hubble::metrics;

constexpr int exit_ok = 0, exit_error = 1, exit_usage = 2;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void usage(std::ostream& os) {
  os << "usage: galaxy10_quantize --model CKPT.h5 --calibration FILE.h5 [--data FILE.h5]\n"
        "                         [--folds K --fold I --split-seed S] [--calibration-images N]\n"
        "                         [--method all|minmax|percentile|entropy] [--percentile P]\n"
        "                         [--path NAME] [--head int8|fp32] [--time] [--threads N] [--limit N]\n"
        "                         [--json OUT.json] [--out MODEL.int8.h5]\n"
        "\n"
        "Quantises the checkpoint's convolutions, and the Dense right after Flatten, to int8 (u8 activations,\n"
        "per-channel s8 weights, BatchNorm folded in), calibrated on training images, and scores the int8\n"
        "model beside the fp32 one.\n"
        "  --model FILE            a checkpoint (galaxy10_train) of a network of Conv2D/BatchNorm/ReLU/MaxPool\n"
        "                          stages and a Dense head (PaperNet, ImprovedNet)\n"
        "  --calibration FILE      the Galaxy10 file the calibration images come from (a training file)\n"
        "  --calibration-images N  how many, spread evenly over it (default 256)\n"
        "  --data FILE             the Galaxy10 file to score on\n"
        "  --folds K --fold I --split-seed S\n"
        "                          instead of --data: calibrate on the training folds of the calibration file\n"
        "                          and score its fold I (galaxy10_train --folds K --fold I --seed S's split)\n"
        "  --method M              the calibration: minmax, percentile, entropy, or all (default) side by side\n"
        "  --percentile P          the percentile method's share of values kept (default 0.9999)\n"
        "  --path NAME             the int8 kernel path: generic, avx2, avx_vnni, avx512_vnni, amx_int8 (default:\n"
        "                          the fastest this CPU has)\n"
        "  --head H                int8 (default): the first Dense after Flatten in int8 too (PaperNet's);\n"
        "                          fp32: the whole head in fp32. After GlobalAvgPool the head is fp32 either way\n"
        "  --time                  also time fp32 (hubble::Model) and int8 at batch 1 and 64, alternating\n"
        "  --threads N             OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
        "  --limit N               read only the first N images of each file (quick runs)\n"
        "  --json FILE             also write the scores as JSON (replaced atomically)\n"
        "  --out FILE              save the int8 model (lowp/quantized_file.hpp) of --method, or with all of the\n"
        "                          entropy calibration (chosen by cross-validation: docs/kernels.md)\n"
        "Exit status: 0 done; 1 an unusable file (named in the message); 2 a bad command line.\n";
}

long long whole_number(const std::string& option, const std::string& v, long long lo, long long hi) {
  long long x = 0;
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  if (v.empty() || ec != std::errc() || ptr != end || x < lo || x > hi)
    throw UsageError(option + " needs a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     "], not '" + v + "'");
  return x;
}

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

hubble::Tensor<float> tensor_of(const data::ImageSet& set) {
  std::vector<int> idx(std::size_t(set.size()));
  for (int i = 0; i < set.size(); ++i) idx[std::size_t(i)] = i;
  hubble::Tensor<float> x;
  data::to_tensor(set, std::span<const int>(idx), x);
  return x;
}

int argmax(const float* p, int k) { return int(std::max_element(p, p + k) - p); }

std::vector<int> argmaxes(const std::vector<float>& probs, int k) {
  std::vector<int> out;
  for (std::size_t i = 0; i + std::size_t(k) <= probs.size(); i += std::size_t(k)) out.push_back(argmax(&probs[i], k));
  return out;
}

// Images per second of f(first, count) over batches of `batch` images drawn in turn from n,
// for at least `seconds`; the median of `rounds` rounds is what callers report.
template <class F>
double images_per_second(F&& f, int n, int batch, double seconds) {
  int first = 0;
  long long images = 0;
  f(0, std::min(batch, n));  // warm-up: buffers, packed weights
  const double t0 = seconds_now();
  double t = t0;
  while (t - t0 < seconds) {
    if (first + batch > n) first = 0;
    f(first, batch);
    first += batch;
    images += batch;
    t = seconds_now();
  }
  return double(images) / (t - t0);
}

struct Scored {
  std::string method;
  lowp::Calibration calibration;
  std::optional<lowp::QuantizedPlan> quantized;  // the model this calibration gives
  metrics::Report report;
  double agreement = 0;  // share of images where int8 and fp32 pick the same class
  double max_probability_difference = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, calibration_path, data_path, method_name = "all", json_path, path_name, out_path;
  lowp::HeadPrecision head = lowp::HeadPrecision::int8;
  long long calibration_images = 256, folds = 0, fold = 0, split_seed = 1, limit = 0, threads = 0;
  double percentile = 0.9999;
  bool time = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        usage(std::cout);
        return exit_ok;
      }
      if (a == "--time") {
        time = true;
        continue;
      }
      if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "'");
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      const std::string v = argv[++i];
      if (a == "--model") model_path = v;
      else if (a == "--calibration") calibration_path = v;
      else if (a == "--data") data_path = v;
      else if (a == "--calibration-images") calibration_images = whole_number(a, v, 1, 1000000);
      else if (a == "--folds") folds = whole_number(a, v, 2, 1000);
      else if (a == "--fold") fold = whole_number(a, v, 0, 999);
      else if (a == "--split-seed") split_seed = whole_number(a, v, 0, (1LL << 62));
      else if (a == "--limit") limit = whole_number(a, v, 1, 100000000);
      else if (a == "--threads") threads = whole_number(a, v, 1, 4096);
      else if (a == "--json") json_path = v;
      else if (a == "--out") out_path = v;
      else if (a == "--path") path_name = v;
      else if (a == "--head") {
        if (v != "int8" && v != "fp32") throw UsageError("--head must be int8 or fp32, not '" + v + "'");
        head = v == "int8" ? lowp::HeadPrecision::int8 : lowp::HeadPrecision::fp32;
      } else if (a == "--method") {
        if (v != "all" && v != "minmax" && v != "percentile" && v != "entropy")
          throw UsageError("--method must be all, minmax, percentile or entropy, not '" + v + "'");
        method_name = v;
      } else if (a == "--percentile") {
        const char* end = v.data() + v.size();
        const auto [ptr, ec] = std::from_chars(v.data(), end, percentile);
        if (ec != std::errc() || ptr != end || !(percentile > 0.5 && percentile <= 1))
          throw UsageError("--percentile must be a number in (0.5, 1], not '" + v + "'");
      } else {
        throw UsageError("unknown option " + a);
      }
    }
    if (model_path.empty()) throw UsageError("--model is required");
    if (calibration_path.empty()) throw UsageError("--calibration is required");
    if (data_path.empty() == (folds == 0))
      throw UsageError(
          "score on --data FILE, or on a fold of the calibration file with --folds K --fold I (one of the two)");
    if (folds > 0 && fold >= folds)
      throw UsageError("--fold " + std::to_string(fold) + " is outside 0 .. " + std::to_string(folds - 1));
  } catch (const UsageError& e) {
    std::cerr << "galaxy10_quantize: " << e.what() << "\n\n";
    usage(std::cerr);
    return exit_usage;
  }

  try {
    if (threads > 0) omp_set_num_threads(int(threads));
    kl::Int8Path path = kl::int8_path();
    if (!path_name.empty()) {
      path = kl::parse_int8_path(path_name);
      HUBBLE_CHECK(kl::available(path), "--path ", path_name, ": this CPU cannot run it (", hubble::cpu::describe(),
                   ")");
    }
    const hubble::Model model = hubble::Model::load(model_path);
    const lowp::InferencePlan plan = lowp::plan_of(model.describe());
    const int side = model.input_height(), k = model.classes();

    data::LoadOptions options;
    options.crop = 0;
    options.limit = std::size_t(limit);
    const data::ImageSet calibration_file = data::load_galaxy10(calibration_path, options);
    const double fraction = model.crop_fraction(std::min(1.0, double(side) / calibration_file.height));
    const auto input_of = [&](const data::ImageSet& full) {
      return data::model_input(full, std::clamp(int(std::lround(fraction * full.height)), 1, full.height), side);
    };
    data::ImageSet calibration_pool = calibration_file, scored;
    if (folds > 0) {
      const data::Split split =
          data::stratified_fold(calibration_file.labels, int(folds), int(fold), std::uint64_t(split_seed));
      calibration_pool = data::subset(calibration_file, split.train);
      scored = data::subset(calibration_file, split.validation);
    } else {
      scored = data::load_galaxy10(data_path, options);
    }
    // Evenly spread over the pool (the files are sorted by class, so every class is in).
    const int count = int(std::min<long long>(calibration_images, calibration_pool.size()));
    std::vector<int> picked;
    for (int i = 0; i < count; ++i) picked.push_back(int((long long)i * calibration_pool.size() / count));
    const hubble::Tensor<float> x_cal = tensor_of(input_of(data::subset(calibration_pool, picked)));
    const data::ImageSet scored_input = input_of(scored);
    const hubble::Tensor<float> x = tensor_of(scored_input);
    const int n = scored_input.size();
    for (int l : scored_input.labels)
      HUBBLE_CHECK(l >= 0 && l<k, folds> 0 ? calibration_path : data_path, ": label ", l, " but the model has ", k,
                   " classes");

    std::printf("model        %s: %s\n", model_path.c_str(), model.architecture().c_str());
    std::printf("cpu          %s; int8 path %s, %d threads\n", hubble::cpu::describe().c_str(), kl::name_of(path),
                omp_get_max_threads());
    const bool int8_dense = head == lowp::HeadPrecision::int8 && lowp::QuantizedPlan::int8_dense_applies(plan);
    std::printf("head         %s\n", int8_dense ? (plan.dense.front().name + " in int8, the rest in fp32").c_str()
                                     : head == lowp::HeadPrecision::fp32
                                         ? "fp32 (--head fp32)"
                                         : "fp32 (no Dense right after Flatten to run in int8)");
    std::printf("calibration  %d images of %s%s\n", count, calibration_path.c_str(),
                folds > 0 ? (" (training folds of " + std::to_string(folds) + ")").c_str() : "");
    std::printf("scored on    %d images of %s\n\n", n,
                folds > 0 ? ("fold " + std::to_string(fold) + " of " + calibration_path).c_str() : data_path.c_str());

    const std::vector<float> fp32 = model.predict(x);
    const std::vector<int> fp32_class = argmaxes(fp32, k);
    const metrics::Report fp32_report = metrics::report(scored_input.labels, fp32_class, k, model.class_names());

    std::vector<lowp::CalibrationMethod> methods;
    if (method_name == "all")
      methods = {lowp::CalibrationMethod::minmax, lowp::CalibrationMethod::percentile,
                 lowp::CalibrationMethod::entropy};
    else methods = {lowp::parse_calibration_method(method_name)};
    std::vector<Scored> rows;
    std::printf("%-15s %9s %9s %11s %12s\n", "model", "accuracy", "macro F1", "same class", "max |dp|");
    std::printf("%-15s %9.4f %9.4f %11s %12s\n", "fp32", fp32_report.accuracy, fp32_report.macro_f1, "-", "-");
    for (auto m : methods) {
      Scored s;
      s.method = lowp::name_of(m);
      s.calibration = lowp::calibrate(plan, x_cal.data(), count, m, percentile);
      s.quantized.emplace(plan, s.calibration, path, head);
      const std::vector<float> int8 = s.quantized->run(x.data(), n);
      const std::vector<int> int8_class = argmaxes(int8, k);
      s.report = metrics::report(scored_input.labels, int8_class, k, model.class_names());
      int same = 0;
      for (int i = 0; i < n; ++i) same += int8_class[std::size_t(i)] == fp32_class[std::size_t(i)];
      s.agreement = double(same) / n;
      for (std::size_t i = 0; i < int8.size(); ++i)
        s.max_probability_difference = std::max(s.max_probability_difference, double(std::abs(int8[i] - fp32[i])));
      std::printf("int8 %-10s %9.4f %9.4f %10.1f%% %12.4f\n", s.method.c_str(), s.report.accuracy, s.report.macro_f1,
                  100 * s.agreement, s.max_probability_difference);
      rows.push_back(std::move(s));
    }

    if (!out_path.empty()) {
      const std::string saved_method = method_name == "all" ? "entropy" : method_name;
      for (const Scored& s : rows)
        if (s.method == saved_method) {
          char fraction_text[32];
          std::snprintf(fraction_text, sizeof fraction_text, "%.17g", fraction);
          lowp::save_quantized(out_path, *s.quantized,
                               {{"model/class_names", model.metadata("model/class_names")},
                                {"model/crop_fraction", fraction_text},
                                {"quantized/from", model_path},
                                {"quantized/calibration",
                                 s.method + " on " + std::to_string(count) + " images of " + calibration_path}});
          std::printf("saved        %s (int8, %s calibration)\n", out_path.c_str(), s.method.c_str());
        }
    }

    std::vector<std::pair<std::string, double>> timings;
    if (time) {
      // fp32 (hubble::Model, as an embedder calls it) and int8 side by side, alternating, 5 rounds.
      const lowp::QuantizedPlan& q = *rows.back().quantized;
      const std::size_t per_image = std::size_t(side) * side * 3;
      for (int batch : {1, 64}) {
        hubble::Tensor<float> xb(std::min(batch, n), side, side, 3);
        std::vector<double> f32, i8;
        for (int round = 0; round < 5; ++round) {
          f32.push_back(images_per_second(
              [&](int first, int c) {
                std::copy(x.data() + std::size_t(first) * per_image, x.data() + std::size_t(first + c) * per_image,
                          xb.data());
                (void)model.predict(xb);
              },
              n, std::min(batch, n), 1.0));
          i8.push_back(
              images_per_second([&](int first, int c) { (void)q.run(x.data() + std::size_t(first) * per_image, c); }, n,
                                std::min(batch, n), 1.0));
        }
        std::sort(f32.begin(), f32.end());
        std::sort(i8.begin(), i8.end());
        std::printf("batch %-3d fp32 %8.1f img/s, int8 %8.1f img/s: %.2fx (medians of 5 alternating 1 s rounds)\n",
                    batch, f32[2], i8[2], i8[2] / f32[2]);
        timings.push_back({"fp32_b" + std::to_string(batch), f32[2]});
        timings.push_back({"int8_b" + std::to_string(batch), i8[2]});
      }
    }

    if (!json_path.empty()) {
      std::string out =
          "{\n  \"model\": " + json::quote(model_path) + ",\n  \"architecture\": " + json::quote(model.architecture()) +
          ",\n  \"cpu\": " + json::quote(hubble::cpu::describe()) +
          ",\n  \"int8_path\": " + json::quote(kl::name_of(path)) +
          ",\n  \"head\": " + json::quote(int8_dense ? "int8" : "fp32") + ",\n  \"images\": " + std::to_string(n) +
          ",\n  \"calibration_images\": " + std::to_string(count) +
          ",\n  \"fp32\": {\"accuracy\": " + json::number(fp32_report.accuracy) +
          ", \"macro_f1\": " + json::number(fp32_report.macro_f1) + "},\n  \"int8\": [";
      for (std::size_t r = 0; r < rows.size(); ++r) {
        const Scored& s = rows[r];
        out += std::string(r ? "," : "") + "\n    {\"method\": " + json::quote(s.method) +
               ", \"accuracy\": " + json::number(s.report.accuracy) +
               ", \"macro_f1\": " + json::number(s.report.macro_f1) + ", \"agreement\": " + json::number(s.agreement) +
               ", \"max_probability_difference\": " + json::number(s.max_probability_difference) + ", \"ranges\": [";
        for (std::size_t i = 0; i < s.calibration.conv_outputs.size(); ++i)
          out += std::string(i ? ", " : "") + "[" + json::number(double(s.calibration.conv_outputs[i].lo)) + ", " +
                 json::number(double(s.calibration.conv_outputs[i].hi)) + "]";
        out += "]}";
      }
      out += "\n  ],\n  \"images_per_second\": {";
      for (std::size_t t = 0; t < timings.size(); ++t)
        out += std::string(t ? ", " : "") + json::quote(timings[t].first) + ": " + json::number(timings[t].second);
      out += "}\n}\n";
      hubble::io::write_text_atomically(json_path, out);
    }
    return exit_ok;
  } catch (const std::exception& e) {
    std::cerr << "galaxy10_quantize: " << e.what() << "\n";
    return exit_error;
  }
}
