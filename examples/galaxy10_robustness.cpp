// galaxy10_robustness — scores checkpoints on a Galaxy10 set under the fixed survey shifts of the
// robustness benchmark (data/robustness.hpp; docs/data.md, "Survey variation and the robustness
// benchmark"): one table, a row per model, a column per shift.
//
//   galaxy10_robustness --data holdout.h5 --model runs/a/best.h5 --model runs/b/best.h5 --json rob.json
//   galaxy10_robustness --list-shifts
//
// Each shift is applied to the whole cut-out (e.g. 256 x 256) before the network's centre crop, as a
// real survey image would be, then every model sees the crop its training used: the central
// model/crop_fraction of the image (checkpoint metadata; 0.5 = 128 of 256), resized to the
// network's input as galaxy10_train does when the crop is not the input size.
//
// Views: with --views 8 the softmax is averaged over the 8 rotations/flips of each image, as the
// trainer's test-time averaging (train/evaluation.hpp) does. By default a model gets 8 views when
// its checkpoint says its run evaluated that way: galaxy10_train stores its resolved options as
// "run/<option>" metadata, and "run/tta" is "1" for --tta (the improved recipe), "0" otherwise;
// a checkpoint without it (written through the API, or an .onnx model) gets 1 view.
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hubble/data/augment.hpp"
#include "hubble/data/galaxy10.hpp"
#include "hubble/data/model_input.hpp"
#include "hubble/data/robustness.hpp"
#include "hubble/data/split.hpp"
#include "hubble/io/text_file.hpp"
#include "hubble/metrics/classification.hpp"
#include "hubble/metrics/json.hpp"
#include "hubble/model.hpp"

namespace {

namespace data = hubble::data;
namespace json = hubble::json;
namespace metrics = hubble::metrics;

constexpr int exit_ok = 0, exit_error = 1, exit_usage = 2;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void usage(std::ostream& os) {
  os << "usage: galaxy10_robustness --data FILE.h5 --model A.h5 [--model B.h5 ...] [--label NAME ...]\n"
        "                           [--views 1|8] [--json OUT.json] [--threads N] [--limit N]\n"
        "                           [--folds K --fold I --split-seed S]\n"
        "       galaxy10_robustness --list-shifts\n"
        "\n"
        "Scores each model on the Galaxy10 file under the robustness benchmark's fixed shifts (blur, noise,\n"
        "brightness, band gains, scale, JPEG; --list-shifts prints them), each applied to the full-size\n"
        "cut-out before the model's centre crop. Prints accuracy per model and shift, the mean over the\n"
        "shifts and the worst shift; --json also records macro F1 per shift and per-class recall on clean.\n"
        "  --data FILE     a Galaxy10 HDF5 file ('images' uint8 N x S x S x 3, 'ans' labels)\n"
        "  --model FILE    a checkpoint from galaxy10_train (repeat for more rows)\n"
        "  --label NAME    a row name per --model, in order (default: the checkpoint's folder/name)\n"
        "  --views V       1: the images as they are; 8: softmax averaged over the 8 rotations/flips.\n"
        "                  Default: 8 for a checkpoint whose run used test-time averaging (run/tta), else 1\n"
        "  --json FILE     also write every score as JSON (replaced atomically)\n"
        "  --threads N     OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
        "  --limit N       score only the first N images of the file (quick runs)\n"
        "  --folds K --fold I --split-seed S\n"
        "                  score only the validation fold of galaxy10_train --folds K --fold I --seed S\n"
        "                  (cross-validation on a training file; the holdout needs none of these)\n"
        "  --list-shifts   print the fixed shifts and exit\n"
        "Exit status: 0 scored; 1 an unusable file (named in the message); 2 a bad command line.\n";
}

long long whole_number(const std::string& option, const std::string& v, long long lo, long long hi) {
  long long x = 0;
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  if (v.empty() || ec == std::errc::invalid_argument || ptr != end)
    throw UsageError(option + " needs a whole number, not '" + v + "'");
  if (ec == std::errc::result_out_of_range || x < lo || x > hi)
    throw UsageError(option + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", not " + v);
  return x;
}

void list_shifts() {
  std::printf("The robustness benchmark's fixed shifts (data/robustness.hpp), applied to the full cut-out:\n");
  for (const data::Shift& s : data::robustness_shifts()) {
    const std::string settings = data::settings_text(s);
    std::printf("  %-11s %-36s %s\n", s.name.c_str(), s.models.c_str(), settings.empty() ? "-" : settings.c_str());
  }
}

// "runs/a/best.h5" -> "a/best".
std::string default_label(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string parent = p.parent_path().filename().string();
  return parent.empty() ? p.stem().string() : parent + "/" + p.stem().string();
}

struct Row {
  std::string label;
  hubble::Model model;
  int views = 1;
  std::string views_from;                  // why that many
  int crop = 0;                            // centre crop of the full image, in its pixels
  std::vector<double> accuracy, macro_f1;  // per shift
  metrics::Report clean;
};

// Predicted classes of every image, the softmax averaged over `views` dihedral views.
std::vector<int> predict_all(const hubble::Model& model, const data::ImageSet& set, int views) {
  constexpr int batch = 32;
  const int k = model.classes();
  std::vector<int> predictions;
  predictions.reserve(std::size_t(set.size()));
  hubble::Tensor<float> x;
  std::vector<int> idx;
  std::vector<data::Dihedral> view_of;
  std::vector<double> p;
  for (int first = 0; first < set.size(); first += batch) {
    const int count = std::min(batch, set.size() - first);
    idx.clear();
    view_of.clear();
    for (int v = 0; v < views; ++v)
      for (int i = 0; i < count; ++i) {
        idx.push_back(first + i);
        view_of.push_back(data::all_dihedral[std::size_t(v)]);
      }
    data::to_tensor(set, idx, x, view_of);
    const std::vector<float> probs = model.predict(x);
    for (int i = 0; i < count; ++i) {
      p.assign(std::size_t(k), 0.0);
      for (int v = 0; v < views; ++v)
        for (int j = 0; j < k; ++j)
          p[std::size_t(j)] += probs[std::size_t(v * count + i) * std::size_t(k) + std::size_t(j)];
      predictions.push_back(int(std::max_element(p.begin(), p.end()) - p.begin()));
    }
  }
  return predictions;
}

int run(int argc, char** argv) {
  std::string data_path, json_path;
  std::vector<std::string> model_paths, labels;
  int views = 0, threads = 0;
  long long limit = 0, folds = 0, fold = -1, split_seed = -1;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&](const char* what) -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value (" + what + ")");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(std::cout);
      return exit_ok;
    } else if (a == "--list-shifts") {
      list = true;
    } else if (a == "--data") {
      data_path = value("FILE");
    } else if (a == "--model") {
      model_paths.push_back(value("FILE"));
    } else if (a == "--label") {
      labels.push_back(value("NAME"));
    } else if (a == "--views") {
      const std::string v = value("1 or 8");
      if (v != "1" && v != "8") throw UsageError("--views must be 1 or 8, not '" + v + "'");
      views = v == "1" ? 1 : 8;
    } else if (a == "--json") {
      json_path = value("FILE");
      if (json_path.empty()) throw UsageError("--json needs a file name, not an empty string");
    } else if (a == "--threads") {
      threads = int(whole_number("--threads", value("N"), 1, 4096));
    } else if (a == "--folds") {
      folds = whole_number("--folds", value("K"), 2, 1000);
    } else if (a == "--fold") {
      fold = whole_number("--fold", value("I"), 0, 999);
    } else if (a == "--split-seed") {
      split_seed = whole_number("--split-seed", value("S"), 0, std::numeric_limits<long long>::max());
    } else if (a == "--limit") {
      limit = whole_number("--limit", value("N"), 1, std::numeric_limits<int>::max());
    } else {
      throw UsageError("unknown argument " + a);
    }
  }
  if (list) {
    list_shifts();
    return exit_ok;
  }
  if (data_path.empty()) throw UsageError("needs --data FILE");
  if ((folds > 0) != (fold >= 0) || (folds > 0) != (split_seed >= 0))
    throw UsageError("--folds, --fold and --split-seed go together");
  if (folds > 0 && fold >= folds)
    throw UsageError("--fold " + std::to_string(fold) + " is outside 0 .. " + std::to_string(folds - 1));
  if (model_paths.empty()) throw UsageError("needs at least one --model FILE");
  if (!labels.empty() && labels.size() != model_paths.size())
    throw UsageError(std::to_string(labels.size()) + " --label for " + std::to_string(model_paths.size()) +
                     " --model: give one label per model, or none");
  if (threads > 0) omp_set_num_threads(threads);

  // Models first: a bad checkpoint fails before the (slow) image read.
  std::vector<Row> rows;
  for (std::size_t m = 0; m < model_paths.size(); ++m) {
    Row r;
    r.label = labels.empty() ? default_label(model_paths[m]) : labels[m];
    r.model = hubble::Model::load(model_paths[m]);
    const hubble::Model& model = r.model;
    HUBBLE_CHECK(model.input_height() == model.input_width() && model.input_channels() == 3, model_paths[m],
                 ": galaxy10_robustness needs a square RGB network, this one takes ", model.input_height(), "x",
                 model.input_width(), "x", model.input_channels());
    if (views > 0) {
      r.views = views;
      r.views_from = "--views";
    } else {
      const std::string tta = model.metadata("run/tta");
      r.views = tta == "1" ? 8 : 1;
      r.views_from = tta.empty() ? "default (no run/tta in the checkpoint)" : "checkpoint run/tta = " + tta;
    }
    rows.push_back(std::move(r));
  }

  data::LoadOptions options;
  options.crop = 0;  // the whole cut-out: shifts act before the crop
  options.limit = std::size_t(limit);
  data::ImageSet full = data::load_galaxy10(data_path, options);
  if (folds > 0)  // the same fold galaxy10_train validated on (data/split.hpp)
    full = data::subset(
        full, data::stratified_fold(full.labels, int(folds), int(fold), std::uint64_t(split_seed)).validation);
  HUBBLE_CHECK(full.height == full.width, data_path, ": the images are ", full.height, " x ", full.width,
               "; the benchmark needs square cut-outs");
  for (std::size_t m = 0; m < rows.size(); ++m) {
    Row& r = rows[m];
    // No metadata: crop the input side.
    const double fraction = r.model.crop_fraction(std::min(1.0, double(r.model.input_height()) / full.height));
    r.crop = std::clamp(int(std::lround(fraction * full.height)), 1, full.height);
    for (int l : full.labels)
      HUBBLE_CHECK(l < r.model.classes(), data_path, ": label ", l, " but ", model_paths[m], " has only ",
                   r.model.classes(), " classes");
  }

  std::printf("robustness of %zu model%s on %s: %d images %dx%d; each shift applied to the whole cut-out\n",
              rows.size(), rows.size() == 1 ? "" : "s", data_path.c_str(), full.size(), full.height, full.width);
  for (const Row& r : rows)
    std::printf(
        "  %s: %s, centre %dx%d%s, %d view%s (%s)\n", r.label.c_str(), r.model.path().c_str(), r.crop, r.crop,
        r.crop == r.model.input_height() ? "" : (" resized to " + std::to_string(r.model.input_height())).c_str(),
        r.views, r.views == 1 ? "" : "s", r.views_from.c_str());
  std::fflush(stdout);

  const std::vector<data::Shift>& shifts = data::robustness_shifts();
  for (const data::Shift& s : shifts) {
    const data::ImageSet moved = data::shifted(full, s);
    for (Row& r : rows) {
      const data::ImageSet input = data::model_input(moved, r.crop, r.model.input_height());
      const std::vector<int> predicted = predict_all(r.model, input, r.views);
      metrics::Report rep = metrics::report(input.labels, predicted, r.model.classes(), r.model.class_names());
      r.accuracy.push_back(rep.accuracy);
      r.macro_f1.push_back(rep.macro_f1);
      if (s.name == "clean") r.clean = std::move(rep);
    }
    std::fprintf(stderr, "  scored %s\n", s.name.c_str());
  }

  // The table: accuracy in percent; mean and worst over the shifts other than clean.
  std::size_t label_w = 5;
  for (const Row& r : rows) label_w = std::max(label_w, r.label.size());
  std::string table = "\naccuracy (%)\n";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-*s", int(label_w), "model");
  table += buf;
  for (const data::Shift& s : shifts) {
    std::snprintf(buf, sizeof buf, " %*s", int(std::max<std::size_t>(5, s.name.size())), s.name.c_str());
    table += buf;
  }
  table += "   mean  worst\n";
  json::Object out;
  std::vector<json::Raw> shift_json, model_json;
  for (const data::Shift& s : shifts)
    shift_json.push_back(
        json::Object().add("name", s.name).add("models", s.models).add("settings", data::settings_text(s)));
  for (const Row& r : rows) {
    std::snprintf(buf, sizeof buf, "%-*s", int(label_w), r.label.c_str());
    table += buf;
    double mean_acc = 0, mean_f1 = 0;
    std::size_t worst = 0;
    json::Object scores;
    for (std::size_t k = 0; k < shifts.size(); ++k) {
      std::snprintf(buf, sizeof buf, " %*.1f", int(std::max<std::size_t>(5, shifts[k].name.size())),
                    100 * r.accuracy[k]);
      table += buf;
      scores.add(shifts[k].name, json::Object().add("accuracy", r.accuracy[k]).add("macro_f1", r.macro_f1[k]));
      if (k == 0) continue;  // clean is not a shift
      mean_acc += r.accuracy[k];
      mean_f1 += r.macro_f1[k];
      if (worst == 0 || r.accuracy[k] < r.accuracy[worst]) worst = k;
    }
    const double n_shifts = double(shifts.size() - 1);
    mean_acc /= n_shifts;
    mean_f1 /= n_shifts;
    std::snprintf(buf, sizeof buf, " %6.1f %6.1f (%s)\n", 100 * mean_acc, 100 * r.accuracy[worst],
                  shifts[worst].name.c_str());
    table += buf;
    std::vector<json::Raw> recall;
    for (std::size_t c = 0; c < r.clean.per_class.size(); ++c)
      recall.push_back(json::Object()
                           .add("class", int(c))
                           .add("name", r.clean.class_names[c])
                           .add("recall", r.clean.per_class[c].recall)
                           .add("support", r.clean.per_class[c].support));
    model_json.push_back(json::Object()
                             .add("label", r.label)
                             .add("path", r.model.path())
                             .add("architecture", r.model.architecture())
                             .add("views", r.views)
                             .add("views_from", r.views_from)
                             .add("crop", r.crop)
                             .add("input_side", r.model.input_height())
                             .add("scores", scores)
                             .add("mean_accuracy", mean_acc)
                             .add("mean_macro_f1", mean_f1)
                             .add("worst_shift", shifts[worst].name)
                             .add("worst_accuracy", r.accuracy[worst])
                             .add("clean_per_class_recall", recall));
  }
  table += "mean and worst: over the " + std::to_string(shifts.size() - 1) + " shifts other than clean\n";
  std::fputs(table.c_str(), stdout);
  std::fflush(stdout);
  if (!json_path.empty()) {
    out.add("benchmark", "galaxy10_robustness (data/robustness.hpp)")
        .add("data", data_path)
        .add("images", full.size())
        .add("image_side", full.height)
        .add("shifts", shift_json)
        .add("models", model_json);
    hubble::io::write_text_atomically(json_path, out.str() + "\n");
    std::printf("wrote %s\n", json_path.c_str());
  }
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "galaxy10_robustness: " << e.what() << "\n\n";
    usage(std::cerr);
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "galaxy10_robustness: error: " << e.what() << "\n";
    return exit_error;
  }
}
