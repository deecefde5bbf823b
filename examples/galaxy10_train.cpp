// galaxy10_train — trains the Galaxy10 DECaLS paper's ConvNet (Table I, 654,922 parameters) and
// shows what it learned. With no arguments it trains on hubble's synthetic Galaxy10 (made on
// first use); --data trains on a real Galaxy10 file. See docs/training.md, or --help.
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "hubble/data/augment.hpp"
#include "hubble/data/galaxy10.hpp"
#include "hubble/data/split.hpp"
#include "hubble/data/synthetic.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/io/plots.hpp"
#include "hubble/io/text_file.hpp"
#include "hubble/metrics/classification.hpp"
#include "hubble/model.hpp"
#include "hubble/equivariant_net.hpp"
#include "hubble/improved_net.hpp"
#include "hubble/kernels/lowp/bf16_conv.hpp"
#include "hubble/paper_net.hpp"
#include "hubble/train/recipes.hpp"
#include "hubble/train/run_folder.hpp"
#include "hubble/train/trainer.hpp"
#ifdef HUBBLE_WITH_MPI
#include "hubble/distributed/mpi.hpp"
#endif

namespace fs = std::filesystem;
using namespace hubble;

namespace {

// The processes of this run: one, or the ranks of mpirun -np N (docs/distributed.md).
struct Job {
  int rank = 0, ranks = 1;
  train::Exchange* exchange = nullptr;  // set under MPI
  bool root() const { return rank == 0; }
};
Job g_job;

constexpr int synthetic_default_count = 1500;
constexpr int synthetic_default_epochs = 8;
constexpr const char* synthetic_default_file = "data/synthetic_galaxy10.h5";

// ---- command line ---------------------------------------------------------------------------

struct OptionSpec {
  const char* name;   // without the leading --
  const char* value;  // placeholder for --help; nullptr: a switch
  const char* help;
};

const std::vector<OptionSpec>& option_specs() {
  static const std::vector<OptionSpec> specs = {
      {"data", "FILE", "Galaxy10 HDF5 file to train on ('images' uint8 N x H x W x 3, 'ans' labels).\n"
                       "Default: hubble's synthetic Galaxy10 (see --synthetic-file)"},
      {"test-data", "FILE", "a separate Galaxy10 file scored once at the end (never used for training or selection)"},
      {"synthetic-file", "FILE", "where the synthetic set lives; made when missing (default data/synthetic_galaxy10.h5)"},
      {"synthetic-count", "N", "images in a newly made synthetic set (default 1500)"},
      {"crop", "N", "centre crop side in pixels, resized to the network's 128 x 128 input when not 128 (default 128)"},
      {"val-split", "F", "stratified validation fraction (default 0.2; 0 trains on everything)"},
      {"folds", "K", "cross-validation: split the data into K stratified folds (with --fold; replaces --val-split)"},
      {"fold", "I", "cross-validation: validate on fold I (0 .. K-1), train on the others"},
      {"source-crop", "N", "survey augmentation: the centre N x N window (native scale) each training view is cut\n"
                           "from (default 176: room for the scale and shift jitter around the 128 crop)"},
      {"max-train-images", "N", "train on at most N of the training images (quick runs; default all)"},
      {"limit", "N", "read only the first N images of the data file (default all)"},
      {"recipe", "NAME", "paper (default: the paper's settings), improved or equivariant (train/recipes.hpp); flags\n"
                         "override it"},
      {"network", "NAME", "paper (PaperNet, the paper's recipe), improved (ImprovedNet: BatchNorm + global average\n"
                          "pooling) or d4 (D4Net: D4-equivariant convolutions, invariant to rotations and flips)"},
      {"precision", "P", "fp32 (default) or bf16: the convolutions in bfloat16 with fp32 sums, weights and optimiser\n"
                         "state (kernels/lowp/bf16_conv.hpp; paper and improved networks)"},
      {"epochs", "N", "epochs (paper: 50; default 50 with --data, 8 on the synthetic set)"},
      {"batch-size", "N", "images per step (default 32)"},
      {"lr", "X", "learning rate (default 0.001)"},
      {"optimizer", "NAME", "adam (default), sgd or rmsprop"},
      {"schedule", "NAME", "learning-rate schedule: constant (paper) or cosine (with warm-up)"},
      {"warmup-epochs", "X", "cosine: epochs of linear warm-up"},
      {"final-lr-fraction", "X", "cosine: the last step's rate as a fraction of --lr"},
      {"weight-decay", "X", "adam: decoupled weight decay (AdamW; default 0)"},
      {"momentum", "X", "sgd: momentum (default 0.9)"},
      {"label-smoothing", "X", "label smoothing of the training loss (default 0)"},
      {"class-weights", "W0,W1,...", "one loss weight per class, comma-separated (default: the recipe's; all 1\n"
                                     "but in the equivariant recipe)"},
      {"augment", "MODE", "none, rot4 (paper: every training image at 0/90/180/270 degrees), dihedral\n"
                          "(a random one of the 8 rotations/flips per image, drawn anew every epoch) or survey\n"
                          "(dihedral plus random seeing, noise, brightness, band gains, scale, shift and JPEG;\n"
                          "data/survey_augment.hpp)"},
      {"survey-photometric", "P", "survey augmentation: the share of views that also get the photometric effects\n"
                                  "(blur, brightness, band gains, noise, JPEG); the rest only the geometry (default 1)"},
      {"repeats", "N", "show every training image N times per epoch (default 1; improved recipe: 4)"},
      {"tta", nullptr, "evaluate on the average of the 8 rotated/flipped views of each image"},
      {"no-tta", nullptr, "evaluate on the images as they are (paper)"},
      {"seed", "N", "seed of the weights, split, order, augmentation and dropout (default 1)"},
      {"shards", "S", "the sharded schedule: S shards (a power of two dividing --batch-size), each with its own order,\n"
                      "whose gradients are summed in a fixed tree; the weights are then the same bit for bit on\n"
                      "1, 2, 4 ... S processes (mpirun -np N galaxy10_train; docs/distributed.md). Default: 0 (one\n"
                      "sequential order) in one process, N under mpirun -np N"},
      {"threads", "N", "OpenMP threads (default: OMP_NUM_THREADS or all cores); a resumed run is only\n"
                       "bit-identical to an uninterrupted one with the same number"},
      {"out", "DIR", "output folder (default runs/<recipe>-<date>-<time>)"},
      {"resume", nullptr, "continue the run in --out from its last.h5 with its saved settings"},
      {"report", "WHICH", "weights for the final report: last (default) or best (best.h5)"},
      {"quiet", nullptr, "no progress bar, only one line per epoch"},
      {"help", nullptr, "show this help"},
  };
  return specs;
}

void print_help() {
  std::cout <<
      "usage: galaxy10_train [options]\n"
      "\n"
      "Trains the Galaxy10 DECaLS paper's ConvNet (128x128x3 -> 10 classes, 654,922 parameters) and\n"
      "reports what it learned. Without --data it trains on hubble's synthetic Galaxy10 for 8 epochs,\n"
      "which takes about a minute on 2 cores; the paper trains 50 epochs on the real data.\n"
      "\n"
      "options:\n";
  for (const OptionSpec& s : option_specs()) {
    std::string head = std::string("  --") + s.name + (s.value ? std::string(" ") + s.value : "");
    std::string help = s.help;
    std::string indent(26, ' ');
    if (head.size() < 25) head += std::string(26 - head.size(), ' ');
    else head += "\n" + indent;
    std::string text;
    for (char c : help) text += c == '\n' ? "\n" + indent : std::string(1, c);
    std::cout << head << text << "\n";
  }
  std::cout <<
      "\n"
      "output folder: metrics.jsonl (one JSON object per epoch), metrics.json (final figures),\n"
      "last.h5 and best.h5 (checkpoints), curves.png, confusion_validation.png, confusion_test.png,\n"
      "filters.png (the 32 learned 5x5 first-layer filters).\n"
      "Ctrl-C stops after the current batch and keeps the last complete epoch; continue with\n"
      "  galaxy10_train --out DIR --resume\n"
      "The output folder is locked (run.lock) while a run uses it: a second run on it stops at once.\n"
      "A loss or weight that becomes NaN or infinite stops the run; last.h5 and best.h5 keep the last\n"
      "complete epoch.\n"
      "exit status: 0 done; 1 error (a missing or malformed file or checkpoint, a folder in use or already\n"
      "holding a run, training diverged); 2 bad command line; 130 interrupted.\n";
}

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --name value, --name=value, or a bare switch.
std::map<std::string, std::string> parse_command_line(int argc, char** argv) {
  std::map<std::string, std::string> given;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "' (options start with --)");
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const auto spec = std::find_if(option_specs().begin(), option_specs().end(),
                                   [&](const OptionSpec& s) { return name == s.name; });
    if (spec == option_specs().end()) throw UsageError("unknown option '--" + name + "'");
    if (!spec->value) {
      if (has_value) throw UsageError("--" + name + " takes no value");
      value = "1";
    } else if (!has_value) {
      if (i + 1 >= argc) throw UsageError("--" + name + " needs a value (" + spec->value + ")");
      value = argv[++i];
    }
    if (spec->value && value.empty())
      throw UsageError("--" + name + " needs a value (" + spec->value + "), not an empty string");
    if (name == "tta" || name == "no-tta") {
      given["tta"] = std::string(1, name == "tta" ? '1' : '0');
      continue;
    }
    given[name] = value;
  }
  return given;
}

long long to_integer(const std::string& name, const std::string& v, long long lo, long long hi) {
  std::size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used != v.size() || v.empty()) throw UsageError("--" + name + " needs a whole number, not '" + v + "'");
  if (x < lo || x > hi)
    throw UsageError("--" + name + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", not " + v);
  return x;
}
double to_real(const std::string& name, const std::string& v, double lo, double hi, bool hi_open = false) {
  std::size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used != v.size() || v.empty() || !std::isfinite(x)) throw UsageError("--" + name + " needs a number, not '" + v + "'");
  if (x < lo || x > hi || (hi_open && x >= hi))
    throw UsageError("--" + name + " must be in [" + json::number(lo) + ", " + json::number(hi) + (hi_open ? ")" : "]") +
                     ", not " + v);
  return x;
}

// Everything the run uses, resolved from flags > saved settings (--resume) > recipe/defaults.
struct Settings {
  std::string data, test_data, synthetic_file = synthetic_default_file, out, report = "last", network = "paper";
  std::string precision = "fp32";  // the convolutions' arithmetic: fp32, or bf16 (lowp::Bf16, fp32 master weights)
  int synthetic_count = synthetic_default_count, crop = 128, max_train_images = 0, limit = 0;
  int folds = 0, fold = 0, source_crop = 176;
  double val_split = 0.2;
  bool resume = false, quiet = false;
  train::TrainConfig train;
  std::map<std::string, std::string> resolved;  // name -> value, saved as run/<name>
  std::string checkpoint;                       // --resume: the last.h5 continued
  CheckpointData saved;                         // --resume: what it holds besides the weights
  int epochs_done = 0;                          // --resume: epochs it has finished
};

// Where each setting comes from. A value read from the checkpoint that does not parse is the
// checkpoint's fault, not the command line's: an Error naming the file (exit 1), not a UsageError.
class SettingSources {
 public:
  SettingSources(const std::map<std::string, std::string>& given, std::map<std::string, std::string> saved,
                 std::string checkpoint)
      : given_(given), saved_(std::move(saved)), checkpoint_(std::move(checkpoint)) {}

  std::string get(const std::string& n, const std::string& fallback) const {
    if (given_.count(n)) return given_.at(n);
    if (saved_.count(n)) return saved_.at(n);
    return fallback;
  }
  bool from_checkpoint(const std::string& n) const { return !given_.count(n) && saved_.count(n); }

  // parse(value of n) with the error rewritten when the value came from the checkpoint.
  template <class Parse>
  auto parse(const std::string& n, const std::string& fallback, Parse&& parse) const {
    const std::string v = get(n, fallback);
    try {
      return parse(v);
    } catch (const UsageError& e) {
      if (!from_checkpoint(n)) throw;
      throw hubble::Error(checkpoint_ + ": its saved setting run/" + n + " ('" + v + "') is not valid: " + e.what() +
                          " (damaged checkpoint?)");
    }
  }

 private:
  const std::map<std::string, std::string>& given_;
  std::map<std::string, std::string> saved_;
  std::string checkpoint_;
};

// name must be one of `choices`.
std::string one_of(const std::string& name, const std::string& v, std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) {
    if (v == c) return v;
    list += std::string(list.empty() ? "" : " or ") + c;
  }
  throw UsageError("--" + name + " must be " + list + ", not '" + v + "'");
}

Settings resolve(const std::map<std::string, std::string>& given) {
  Settings s;
  s.resume = given.count("resume") > 0;
  s.quiet = given.count("quiet") > 0;
  std::map<std::string, std::string> saved;
  if (s.resume) {
    if (!given.count("out")) throw UsageError("--resume needs --out DIR (the folder of the run to continue)");
    s.checkpoint = (fs::path(given.at("out")) / "last.h5").string();
    if (!fs::exists(s.checkpoint))
      throw hubble::Error(s.checkpoint + ": nothing to resume (no checkpoint there; the run may not have finished an epoch)");
    s.saved = read_checkpoint_data(s.checkpoint);
    for (const auto& [k, v] : s.saved.metadata)
      if (k.rfind("run/", 0) == 0) saved[k.substr(4)] = v;
    // Refused before anything is made or loaded (the synthetic set, the data).
    if (saved.empty())
      throw hubble::Error(s.checkpoint + ": holds no galaxy10_train settings (metadata run/...): it was not written by "
                                         "galaxy10_train, so it cannot be resumed here");
    s.epochs_done = train::run_state_from(s.saved, s.checkpoint).epoch;
  }
  const SettingSources src(given, saved, s.checkpoint);
  const auto integer = [&](const std::string& n, const std::string& fallback, long long lo, long long hi) {
    return src.parse(n, fallback, [&](const std::string& v) { return to_integer(n, v, lo, hi); });
  };
  const auto real = [&](const std::string& n, double fallback, double lo, double hi, bool hi_open = false) {
    return src.parse(n, json::number(fallback), [&](const std::string& v) { return to_real(n, v, lo, hi, hi_open); });
  };

  const std::string recipe_name = src.get("recipe", "paper");
  const train::Recipe recipe = src.parse("recipe", "paper", [](const std::string& v) {
    try {
      return train::recipe_by_name(v);
    } catch (const hubble::Error& e) {
      throw UsageError(std::string("--recipe: ") + e.what());
    }
  });
  train::TrainConfig& c = s.train;
  c = train::config_from(recipe);

  s.data = src.get("data", "");
  s.test_data = src.get("test-data", "");
  s.synthetic_file = src.get("synthetic-file", synthetic_default_file);
  s.synthetic_count = int(integer("synthetic-count", std::to_string(synthetic_default_count), 10, 1000000));
  s.crop = int(integer("crop", "128", 1, 100000));
  s.val_split = real("val-split", 0.2, 0.0, 1.0, true);
  s.folds = int(integer("folds", "0", 0, 1000));
  s.fold = int(integer("fold", "0", 0, 999));
  if (s.folds == 1) throw UsageError("--folds needs at least 2 folds (or 0: no cross-validation)");
  if (s.folds > 0 && s.fold >= s.folds)
    throw UsageError("--fold " + std::to_string(s.fold) + " is outside 0 .. " + std::to_string(s.folds - 1));
  if (s.folds == 0 && given.count("fold")) throw UsageError("--fold needs --folds K");
  s.source_crop = int(integer("source-crop", "176", 128, 100000));
  s.max_train_images = int(integer("max-train-images", "0", 0, 100000000));
  s.limit = int(integer("limit", "0", 0, 100000000));
  const int default_epochs = s.data.empty() ? synthetic_default_epochs : recipe.epochs;
  c.epochs = int(integer("epochs", std::to_string(default_epochs), 1, 100000));
  c.batch_size = int(integer("batch-size", std::to_string(recipe.batch_size), 1, 100000));
  c.lr = real("lr", recipe.lr, 1e-12, 100.0);
  c.weight_decay = real("weight-decay", recipe.weight_decay, 0.0, 10.0);
  c.momentum = real("momentum", recipe.momentum, 0.0, 1.0, true);
  c.warmup_epochs = real("warmup-epochs", recipe.warmup_epochs, 0.0, 1e6);
  c.final_lr_fraction = real("final-lr-fraction", recipe.final_lr_fraction, 0.0, 1.0);
  c.label_smoothing = real("label-smoothing", recipe.label_smoothing, 0.0, 1.0, true);
  std::string recipe_weights;
  for (double w : recipe.class_weights) recipe_weights += (recipe_weights.empty() ? "" : ",") + json::number(w);
  c.class_weights = src.parse("class-weights", recipe_weights, [](const std::string& v) {
    std::vector<double> w;
    std::size_t start = 0;
    while (!v.empty() && start <= v.size()) {
      const std::size_t comma = std::min(v.find(',', start), v.size());
      w.push_back(to_real("class-weights", v.substr(start, comma - start), 0.0, 1000.0));
      if (w.back() <= 0) throw UsageError("--class-weights must be positive, not " + v.substr(start, comma - start));
      start = comma + 1;
    }
    return w;
  });
  if (!c.class_weights.empty() && c.class_weights.size() != 10)
    throw UsageError("--class-weights needs one weight per Galaxy10 class (10), not " +
                     std::to_string(c.class_weights.size()));
  c.repeats = int(integer("repeats", std::to_string(recipe.repeats), 1, 1000));
  c.jitter.photometric_probability = real("survey-photometric", recipe.survey_photometric, 0.0, 1.0);
  c.seed = std::uint64_t(integer("seed", "1", 0, std::numeric_limits<long long>::max()));
  c.threads = int(integer("threads", "0", 0, 4096));
  c.shards = int(integer("shards", std::to_string(g_job.ranks > 1 ? g_job.ranks : 0), 0, 65536));
  c.tta = src.parse("tta", recipe.tta ? "1" : "0", [](const std::string& v) { return one_of("tta", v, {"0", "1"}); }) == "1";
  const auto choice = [&](const std::string& n, const std::string& fallback, auto parse_name) {
    return src.parse(n, fallback, [&](const std::string& v) {
      try {
        return parse_name(v);
      } catch (const hubble::Error& e) {
        throw UsageError(e.what());
      }
    });
  };
  c.optimizer = choice("optimizer", train::name_of(recipe.optimizer), train::parse_optimizer);
  c.schedule = choice("schedule", train::name_of(recipe.schedule), train::parse_schedule);
  c.augment = choice("augment", train::name_of(recipe.augment), train::parse_augment);
  s.network = src.parse("network", recipe.network, [](const std::string& v) { return one_of("network", v, {"paper", "improved", "d4"}); });
  s.precision = src.parse("precision", "fp32", [](const std::string& v) { return one_of("precision", v, {"fp32", "bf16"}); });
  if (s.precision == "bf16" && s.network == "d4")
    throw UsageError("--precision bf16 applies to the paper and improved networks, not d4");
  if (c.augment != train::Augment::survey && given.count("survey-photometric"))
    throw UsageError("--survey-photometric applies to --augment survey only");
  if (c.augment == train::Augment::survey && s.crop != 128)
    throw UsageError("--augment survey trains on native-scale 128 x 128 views; --crop does not apply (see --source-crop)");
  s.report = src.parse("report", "last", [](const std::string& v) { return one_of("report", v, {"last", "best"}); });
  if (!s.data.empty() && given.count("synthetic-count") && !saved.count("synthetic-count"))
    throw UsageError("--synthetic-count only applies to the synthetic set, not to --data " + s.data);
  c.recipe = recipe_name;
  c.resume = s.resume;
  if (s.resume && c.epochs < s.epochs_done) {
    if (given.count("epochs"))
      throw UsageError("--epochs " + std::to_string(c.epochs) + " is fewer than the " + std::to_string(s.epochs_done) +
                       " epochs the run in " + given.at("out") + " has already finished; give --epochs " +
                       std::to_string(s.epochs_done) + " or more to continue it");
    throw hubble::Error(s.checkpoint + ": has finished " + std::to_string(s.epochs_done) +
                        " epochs, more than its saved run/epochs (" + std::to_string(c.epochs) + "; damaged checkpoint?)");
  }

  if (given.count("out")) {
    s.out = given.at("out");
  } else {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    s.out = "runs/" + recipe_name + "-" + stamp;
  }
  c.out_dir = s.out;

  // What a resumed run restores (run/<name> in the checkpoint): the effective values.
  s.resolved = {{"data", s.data},
                {"test-data", s.test_data},
                {"synthetic-file", s.synthetic_file},
                {"synthetic-count", std::to_string(s.synthetic_count)},
                {"crop", std::to_string(s.crop)},
                {"val-split", json::number(s.val_split)},
                {"folds", std::to_string(s.folds)},
                {"fold", std::to_string(s.fold)},
                {"source-crop", std::to_string(s.source_crop)},
                {"max-train-images", std::to_string(s.max_train_images)},
                {"limit", std::to_string(s.limit)},
                {"recipe", recipe_name},
                {"network", s.network},
                {"precision", s.precision},
                {"epochs", std::to_string(c.epochs)},
                {"batch-size", std::to_string(c.batch_size)},
                {"lr", json::number(c.lr)},
                {"optimizer", train::name_of(c.optimizer)},
                {"schedule", train::name_of(c.schedule)},
                {"warmup-epochs", json::number(c.warmup_epochs)},
                {"final-lr-fraction", json::number(c.final_lr_fraction)},
                {"weight-decay", json::number(c.weight_decay)},
                {"momentum", json::number(c.momentum)},
                {"label-smoothing", json::number(c.label_smoothing)},
                {"class-weights", [&] {
                   std::string t;
                   for (double w : c.class_weights) t += (t.empty() ? "" : ",") + json::number(w);
                   return t;
                 }()},
                {"augment", train::name_of(c.augment)},
                {"repeats", std::to_string(c.repeats)},
                {"survey-photometric", json::number(c.jitter.photometric_probability)},
                {"tta", c.tta ? "1" : "0"},
                {"seed", std::to_string(c.seed)},
                {"threads", std::to_string(c.threads)},
                {"shards", std::to_string(c.shards)},
                {"report", s.report}};
  return s;
}

// ---- Ctrl-C ---------------------------------------------------------------------------------

std::atomic<int> g_stop{0};

// Under mpirun a SIGTERM comes from the launcher ending the job (another rank failed, or the job
// was cancelled): this rank cannot finish its step without the others, so it says why and ends.
extern "C" void on_job_terminated(int) {
  char msg[200];
  const int n = std::snprintf(msg, sizeof msg,
                              "\ngalaxy10_train rank %d: ended by the MPI launcher (another rank failed or the job was "
                              "cancelled); the last complete epoch is kept: continue with --resume\n",
                              g_job.rank);
  (void)!::write(2, msg, std::size_t(std::max(0, std::min(n, int(sizeof msg) - 1))));
  ::_exit(143);
}

extern "C" void on_signal(int sig) {
  if (g_stop.fetch_add(1) == 0) {
    const char msg[] = "\n[stopping after this batch; the last complete epoch is kept. Ctrl-C again quits at once]\n";
    (void)!::write(2, msg, sizeof msg - 1);
  } else {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

// ---- progress -------------------------------------------------------------------------------

std::string clock_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

class ProgressPrinter {
 public:
  ProgressPrinter(bool tty, bool quiet) : tty_(tty), quiet_(quiet) {}

  void batch(const train::BatchProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.batch == p.batches;
    if (quiet_) return;
    if (tty_) {
      if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
      last_draw_ = now;
      // The bar takes what the terminal's width leaves, so the line never wraps (a wrapped
      // line cannot be redrawn with \r).
      char counts[64], stats[160];
      std::snprintf(counts, sizeof counts, "epoch %*d/%d ", digits(p.epochs), p.epoch, p.epochs);
      std::snprintf(stats, sizeof stats, " %*lld/%lld loss %.4f acc %.3f %.0f img/s ETA %s%s", digits(p.epoch_images),
                    p.images, p.epoch_images, p.loss, p.accuracy, p.images_per_second,
                    clock_text(p.eta_seconds).c_str(), last ? "  validating..." : "");
      const int columns = terminal_columns();
      const int width = std::clamp(columns - 1 - int(std::strlen(counts) + std::strlen(stats)) - 2, 0, 30);
      const int filled = int(double(width) * double(p.images) / double(std::max<long long>(1, p.epoch_images)));
      std::string bar;
      if (width > 0) {
        bar.assign(1, '[');
        bar.append(std::size_t(filled), '=');
        if (filled < width) {
          bar.push_back('>');
          bar.append(std::size_t(width - filled - 1), ' ');
        }
        bar.push_back(']');
      }
      std::string text = counts;
      text += bar;
      text += stats;
      if (int(text.size()) > columns - 1) text.resize(std::size_t(std::max(0, columns - 1)));
      std::fputs("\r", stdout);
      std::fputs(text.c_str(), stdout);
      std::fputs("\033[K", stdout);
      std::fflush(stdout);
      drawn_ = true;
    } else {
      // Plain lines for logs: about every quarter of an epoch.
      const int quarter = std::max(1, p.batches / 4);
      if (last || p.batch % quarter != 0) return;
      std::printf("epoch %d/%d  %lld/%lld images  loss %.4f  acc %.3f  %.0f img/s  ETA %s\n", p.epoch, p.epochs,
                  p.images, p.epoch_images, p.loss, p.accuracy, p.images_per_second, clock_text(p.eta_seconds).c_str());
      std::fflush(stdout);
    }
  }

  void epoch(const train::EpochRecord& r, int epochs) {
    clear();
    std::printf("epoch %*d/%d  train loss %.4f acc %.3f", digits(epochs), r.epoch, epochs, r.train_loss, r.train_accuracy);
    if (std::isfinite(r.val_accuracy)) std::printf("  | val loss %.4f acc %.3f", r.val_loss, r.val_accuracy);
    std::printf("  | %.0f img/s, %s%s\n", r.images_per_second, clock_text(r.seconds).c_str(), r.best ? "  *best" : "");
    std::fflush(stdout);
  }

  void message(const std::string& m) {
    clear();
    std::printf("%s\n", m.c_str());
    std::fflush(stdout);
  }

  void clear() {
    if (tty_ && drawn_) {
      std::fputs("\r\033[K", stdout);
      drawn_ = false;
    }
  }

 private:
  static int digits(long long v) { return int(std::to_string(v).size()); }
  static int terminal_columns() {
    winsize w{};
    if (::ioctl(::fileno(stdout), TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
    return 80;
  }
  bool tty_, quiet_, drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

// ---- data -----------------------------------------------------------------------------------

std::vector<std::string> class_names() {
  return {data::galaxy10_class_names.begin(), data::galaxy10_class_names.end()};
}

// Loads a Galaxy10 file at the network's input size: centre crop `crop`, resized to 128 if needed.
// With `native`, the centre crop x crop window as it is (survey augmentation cuts its views from it).
data::ImageSet load_images(const std::string& path, int crop, int limit, int& source_side,
                           const std::vector<std::size_t>* rows = nullptr, bool native = false) {
  {
    const h5::File f = h5::File::open(path);
    HUBBLE_CHECK(f.has("images"), path, ": no 'images' dataset (expected a Galaxy10 file)");
    const h5::DatasetInfo info = f.info("images");
    HUBBLE_CHECK(info.dims.size() == 4, path, ": 'images' has shape ", info.dims_str(), ", expected N x H x W x 3");
    HUBBLE_CHECK(info.dims[1] > 0 && info.dims[2] > 0 && info.dims[1] <= 65536 && info.dims[2] <= 65536, path,
                 ": 'images' has shape ", info.dims_str(), ", expected images of 1 to 65536 pixels a side");
    source_side = int(std::min(info.dims[1], info.dims[2]));
  }
  data::LoadOptions o;
  o.crop = crop;
  o.limit = std::size_t(limit);
  if (native)
    HUBBLE_CHECK(source_side >= crop, path, ": its images are ", source_side, " pixels a side, smaller than the ",
                 crop, " x ", crop, " window survey augmentation cuts its views from (lower --source-crop)");
  data::ImageSet set = rows ? data::load_galaxy10_rows(path, *rows, o) : data::load_galaxy10(path, o);
  constexpr int side = PaperNet::input_shape::h;
  if (native) return set;
  if (set.height == side && set.width == side) return set;
  data::ImageSet out;
  out.height = out.width = side;
  out.channels = 3;
  out.labels = set.labels;
  out.pixels.resize(std::size_t(set.size()) * out.image_bytes());
  for (int i = 0; i < set.size(); ++i) {
    const std::vector<std::uint8_t> img = prepare_image(set.image(i), set.width, set.height, 3, side);
    std::copy(img.begin(), img.end(), out.image(i));
  }
  return out;
}

std::string class_count_text(const std::vector<int>& labels) {
  std::vector<int> n(10, 0);
  for (int l : labels) ++n[std::size_t(l)];
  std::string s;
  for (int k = 0; k < 10; ++k) {
    if (k) s += ", ";
    s += std::to_string(k) + ":" + std::to_string(n[std::size_t(k)]);
  }
  return s;
}

template <class Net>
std::uint64_t weights_digest(Net& net) {  // FNV-1a over the bytes of every weight, in order
  std::uint64_t h = 1469598103934665603ull;
  for (const auto& p : net.parameters()) {
    const auto* b = reinterpret_cast<const unsigned char*>(p.value);
    for (std::size_t i = 0; i < p.size * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  return h;
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The data a run trains on, prepared before the network type is chosen.
struct Prepared {
  const data::ImageSet& images;
  const data::Split& split;
  std::string data_path;
  int source_side;
  const std::optional<data::ImageSet>& test;  // --test-data, loaded (and so checked) before training
};

// With --resume: refuses a checkpoint of another network or with other settings before any data
// is made or loaded (the trainer checks again, with the set sizes, when it loads the weights).
template <class Net>
void check_resumable(const Settings& s) {
  const CheckpointHeader h = read_checkpoint_header(s.checkpoint);
  HUBBLE_CHECK(h.architecture == Net::architecture(), s.checkpoint, ": checkpoint is of another network than --network ",
               s.network, "\n  checkpoint: ", h.architecture, "\n  network:    ", Net::architecture());
  const std::string differences = train::setting_differences(s.saved, train::fingerprint(s.train));
  HUBBLE_CHECK(differences.empty(), s.checkpoint, ": cannot resume with different settings:", differences,
               "\n(use the original settings, or start a new run in another folder)");
}

template <class Net>
int train_and_report(Settings& s, const Prepared& prepared, const char* program, ProgressPrinter& progress);

int run(int argc, char** argv) {
  std::map<std::string, std::string> given;
  Settings s;
  try {
    given = parse_command_line(argc, argv);
    if (given.count("help")) {
      print_help();
      return 0;
    }
    s = resolve(given);
  } catch (const UsageError& e) {
    std::cerr << "galaxy10_train: " << e.what() << "\n(see galaxy10_train --help)\n";
    return 2;
  }
  const bool tty = ::isatty(::fileno(stdout)) == 1;
  ProgressPrinter progress(tty, s.quiet);
  train::TrainConfig& cfg = s.train;
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();

  // Everything that can be refused is refused before the (slow) data and training: the resumed
  // checkpoint, then the output folder (locked for the whole run, so a second run on it fails at
  // once), then --test-data, loaded now and scored at the end. Only rank 0 of an MPI job touches
  // the output folder and the test set.
  if (s.resume && g_job.root()) {
    if (s.network == "improved") check_resumable<ImprovedNet>(s);
    else if (s.network == "d4") check_resumable<D4Net>(s);
    else check_resumable<PaperNet>(s);
  }
  std::optional<train::RunFolder> folder;
  if (g_job.root()) {
    folder.emplace(s.out);
    if (!s.resume) folder->refuse_existing_run();
  }
  std::optional<data::ImageSet> test;
  if (!s.test_data.empty() && g_job.root()) {
    int test_side = 0;
    test = load_images(s.test_data, s.crop, 0, test_side);
  }

  // Data.
  std::string data_path = s.data, data_note;
  if (data_path.empty()) {
    data_path = s.synthetic_file;
    if (!fs::exists(data_path) && g_job.root()) {
      std::printf("making the synthetic Galaxy10 set: %d images of 256x256 -> %s (once; later runs reuse it)\n",
                  s.synthetic_count, data_path.c_str());
      std::fflush(stdout);
      const auto t0 = std::chrono::steady_clock::now();
      data::SyntheticOptions so;
      so.count = s.synthetic_count;
      const data::ImageSet synthetic = data::make_synthetic_galaxy10(so);
      if (fs::path(data_path).has_parent_path()) fs::create_directories(fs::path(data_path).parent_path());
      data::write_galaxy10(data_path, synthetic, {{"source", "hubble synthetic Galaxy10 (make_synthetic_galaxy10)"}});
      std::printf("  done in %s\n", clock_text(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()).c_str());
    }
    data_note = "hubble's synthetic Galaxy10 (procedural galaxies, not real data)";
  } else {
    data_note = "Galaxy10 file";
  }
  // The split needs only the labels; with several ranks each then reads only the rows it trains
  // on (rank 0 also the validation rows), never the whole set.
  if (g_job.exchange) {  // every rank waits for rank 0's synthetic set
    int ready = 1;
    g_job.exchange->broadcast(std::as_writable_bytes(std::span<int>(&ready, 1)));
  }
  const std::vector<int> labels = data::read_galaxy10_labels(data_path, std::size_t(s.limit));
  const bool spread = g_job.ranks > 1;
  if (g_job.exchange) {  // the same run on the same data on every rank, or none starts
    std::map<std::string, std::string> identity = s.resolved;
    identity["out"] = s.out;
    identity["resume"] = s.resume ? "1" : "0";
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a of the labels read
    for (int l : labels) h = (h ^ std::uint64_t(l)) * 1099511628211ull;
    std::error_code ec;
    identity["data file bytes"] = std::to_string(fs::file_size(data_path, ec));
    identity["data labels (count, fnv1a64)"] = std::to_string(labels.size()) + ", " + hex(h);
    identity["network"] = s.network;
#ifdef HUBBLE_WITH_MPI
    distributed::require_same_settings(*g_job.exchange, identity);
#endif
  }
  data::Split split;
  std::vector<int> all(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) all[i] = int(i);
  if (s.folds > 0) split = data::stratified_fold(labels, s.folds, s.fold, cfg.seed);
  else if (s.val_split > 0) split = data::stratified_split(labels, s.val_split, cfg.seed);
  else split.train = all;
  if (s.max_train_images > 0 && int(split.train.size()) > s.max_train_images) {
    Rng r = Rng(cfg.seed).split(0x3A7);
    data::shuffle(split.train, r);
    split.train.resize(std::size_t(s.max_train_images));
    std::sort(split.train.begin(), split.train.end());
  }
  HUBBLE_CHECK(!split.train.empty(), data_path, ": no training images left after the split");
  int source_side = 0;
  const bool survey = cfg.augment == train::Augment::survey;
  data::ImageSet images;
  data::Split local = split;  // split in the indices of `images`
  if (!spread) {
    images = survey ? load_images(data_path, s.source_crop, s.limit, source_side, nullptr, true)
                    : load_images(data_path, s.crop, s.limit, source_side);
  } else {  // this rank's rows: its shards' training images (+ the validation images on rank 0)
    const train::ShardBlock mine = train::shard_block(cfg.shards, g_job.rank, g_job.ranks);
    train::check_sharding(cfg.shards, cfg.batch_size, g_job.ranks);
    std::vector<std::size_t> rows;
    for (std::size_t p = 0; p < split.train.size(); ++p) {
      if (!mine.owns(int(p % std::size_t(cfg.shards)))) {
        local.train[p] = -1;
        continue;
      }
      local.train[p] = int(rows.size());
      rows.push_back(std::size_t(split.train[p]));
    }
    if (g_job.root())
      for (int& v : local.validation) {
        rows.push_back(std::size_t(v));
        v = int(rows.size() - 1);
      }
    else local.validation.clear();
    images = survey ? load_images(data_path, s.source_crop, s.limit, source_side, &rows, true)
                    : load_images(data_path, s.crop, s.limit, source_side, &rows);
  }

  std::printf("data      %s: %s\n", data_path.c_str(), data_note.c_str());
  std::printf("          %zu images %dx%d, centre crop %d%s; classes %s\n", labels.size(), source_side, source_side,
              std::min(s.crop, source_side), s.crop == 128 ? "" : " resized to 128", class_count_text(labels).c_str());
  if (survey) {
    std::printf("          survey views cut from the centre %dx%d window; validation on the centre 128 crop\n", s.source_crop,
                s.source_crop);
    if (cfg.jitter.photometric_probability < 1)
      std::printf("          photometric effects on %g%% of the views, the others geometry only\n",
                  100 * cfg.jitter.photometric_probability);
  }
  if (s.folds > 0) std::printf("folds     validating on fold %d of %d\n", s.fold, s.folds);
  std::printf("split     %zu training, %zu validation (stratified, seed %llu)\n", split.train.size(), split.validation.size(),
              static_cast<unsigned long long>(cfg.seed));
  if (cfg.shards > 0) {
    const std::string read = spread ? "; rank 0 read " + std::to_string(images.size()) + " of the images" : "";
    std::printf("shards    %d shards of the global batch %d (%d images each per step) on %d process%s%s\n", cfg.shards,
                cfg.batch_size, cfg.batch_size / std::max(1, cfg.shards), g_job.ranks, g_job.ranks > 1 ? "es" : "",
                read.c_str());
  }
  const long long per_epoch = (long long)split.train.size() * (cfg.augment == train::Augment::rot4 ? 4 : 1) * cfg.repeats;
  std::printf("recipe    %s: %s lr %g %s%s, batch %d, %d epochs of %lld images (augment %s%s), label smoothing %g, "
              "tta %s, %d threads\n",
              cfg.recipe.c_str(), train::name_of(cfg.optimizer), cfg.lr, train::name_of(cfg.schedule),
              cfg.schedule == train::Schedule::cosine ? (" (warm-up " + json::number(cfg.warmup_epochs) + " epochs)").c_str() : "",
              cfg.batch_size, cfg.epochs, per_epoch, train::name_of(cfg.augment),
              cfg.repeats > 1 ? (", x" + std::to_string(cfg.repeats)).c_str() : "", cfg.label_smoothing,
              cfg.tta ? "on" : "off", threads);
  if (!cfg.class_weights.empty()) std::printf("          class weights %s\n", s.resolved.at("class-weights").c_str());
  std::printf("output    %s\n", s.out.c_str());
  std::fflush(stdout);

  // What every checkpoint records about the run.
  for (const auto& [k, v] : s.resolved) cfg.metadata["run/" + k] = v;
  std::string names_joined;
  for (const auto& n : class_names()) {
    if (!names_joined.empty()) names_joined += '\n';
    names_joined += n;
  }
  cfg.metadata["model/class_names"] = names_joined;
  cfg.metadata["model/crop_fraction"] = json::number(double(std::min(s.crop, source_side)) / double(source_side));
  cfg.metadata["model/data"] = data_path;

  const Prepared prepared{images, local, data_path, source_side, test};
  // bf16: the same networks with every convolution computed by lowp::Bf16 (bf16 products, fp32
  // sums); weights, gradients and Adam's state stay fp32, and the checkpoint is an ordinary one.
  using kernels::lowp::Bf16;
  if (s.precision == "bf16" && s.network == "improved")
    return train_and_report<ImprovedNetT<float, Bf16>>(s, prepared, argv[0], progress);
  if (s.precision == "bf16") return train_and_report<PaperNetT<float, Bf16>>(s, prepared, argv[0], progress);
  if (s.network == "improved") return train_and_report<ImprovedNet>(s, prepared, argv[0], progress);
  if (s.network == "d4") return train_and_report<D4Net>(s, prepared, argv[0], progress);
  return train_and_report<PaperNet>(s, prepared, argv[0], progress);
}

// Trains network Net on the prepared data and writes the report, checkpoints and pictures.
template <class Net>
int train_and_report(Settings& s, const Prepared& prepared, const char* program, ProgressPrinter& progress) {
  train::TrainConfig& cfg = s.train;
  const data::ImageSet& images = prepared.images;
  const data::Split& split = prepared.split;
  const std::string& data_path = prepared.data_path;
  std::printf("network   %s, %s parameters, input 128x128x3\n",
              s.network == "paper"      ? "the paper's ConvNet (PaperNet)"
              : s.network == "d4" ? "D4Net (D4-equivariant convolutions, invariant to rotations and flips)"
                                  : "ImprovedNet (BatchNorm, global average pooling)",
              detail::thousands(Net::parameter_count).c_str());
  if (s.precision == "bf16")
    std::printf("precision bf16 convolutions (%s path; fp32 weights, gradients and optimiser state)\n",
                kernels::lowp::chosen_bf16_path());
  std::fflush(stdout);

  // Train.
  auto net = std::make_unique<Net>(cfg.seed);
  train::Callbacks cb;
  cb.on_batch = [&](const train::BatchProgress& p) { progress.batch(p); };
  cb.on_epoch = [&](const train::EpochRecord& r) { progress.epoch(r, cfg.epochs); };
  cb.on_message = [&](const std::string& m) { progress.message(m); };
  cb.should_stop = [] { return g_stop.load() > 0; };
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, g_job.exchange ? on_job_terminated : on_signal);
  train::Trainer<Net> trainer(*net, cfg, cb);
  if (g_job.exchange) trainer.set_exchange(*g_job.exchange);
  const train::FitResult fit = trainer.fit(images, split.train, split.validation);
  progress.clear();
  if (!g_job.root()) return fit.interrupted ? 130 : 0;  // rank 0 reports and writes
#ifdef HUBBLE_WITH_MPI
  if (const auto* mpi = dynamic_cast<const distributed::MpiExchange*>(g_job.exchange)) {
    double train_seconds = 0;
    for (const auto& r : fit.history)
      if (r.epoch > fit.start_epoch) train_seconds += r.seconds;
    std::printf("communication  rank 0 waited %.2f s in gradient sums over %d ranks (%.1f%% of %.2f s of epochs)\n",
                mpi->seconds_in_sum(), g_job.ranks, train_seconds > 0 ? 100.0 * mpi->seconds_in_sum() / train_seconds : 0.0,
                train_seconds);
  }
#endif
  const fs::path out(s.out);
  if (fit.interrupted) {
    const int done = fit.history.empty() ? 0 : fit.history.back().epoch;
    std::printf("\ninterrupted during epoch %d of %d.\n", done + 1, cfg.epochs);
    if (done > 0)
      std::printf("the last complete checkpoint is %s (epoch %d). Continue with:\n  %s --out %s --resume\n",
                  (out / "last.h5").string().c_str(), done, program, s.out.c_str());
    else
      std::printf("no epoch was completed, so nothing was saved.\n");
    return 130;
  }
  std::signal(SIGINT, SIG_DFL);  // the rest is quick: Ctrl-C simply quits
  std::signal(SIGTERM, SIG_DFL);
  if (fit.start_epoch == cfg.epochs && fit.start_epoch > 0)
    std::printf("the run had already finished its %d epochs; reporting only\n", cfg.epochs);

  // Report.
  const std::uint64_t last_digest = weights_digest(*net);
  std::string weights = "last.h5 (after epoch " + std::to_string(cfg.epochs) + ")";
  if (s.report == "best" && fs::exists(out / "best.h5")) {
    load_checkpoint((out / "best.h5").string(), *net);
    weights = "best.h5 (epoch " + std::to_string(fit.best_epoch) + ")";
  }
  std::printf("\nfinal weights digest  fnv1a64:%s (last.h5)\n", hex(last_digest).c_str());
  std::printf("reporting with        %s%s\n", weights.c_str(), cfg.tta ? ", 8-view test-time averaging" : "");

  json::Object summary;
  summary.add("weights", s.report).add("weights_digest", "fnv1a64:" + hex(last_digest)).add("best_epoch", fit.best_epoch);
  summary.add("epochs", cfg.epochs).add("recipe", cfg.recipe).add("network", s.network).add("tta", cfg.tta).add("data", data_path);
  std::vector<std::string> pngs;
  const auto score = [&](const std::string& title, const std::string& key, const data::ImageSet& set,
                         const std::vector<int>& idx) {
    const train::Evaluation e = train::Trainer<Net>::evaluate_network(*net, set, idx, cfg.tta, cfg.batch_size);
    const metrics::Report r = e.report(class_names());
    std::printf("\n%s: %d images, accuracy %.4f, loss %.4f, macro F1 %.4f\n%s\n%s", title.c_str(), e.size(), r.accuracy,
                e.loss, r.macro_f1, metrics::format_table(r).c_str(), metrics::format_confusion(r).c_str());
    json::Object o = metrics::to_json(r);
    o.add("loss", e.loss);
    summary.add(key, o);
    const std::string png = (out / ("confusion_" + key + ".png")).string();
    plots::save_confusion_matrix(png, r.confusion.counts(), r.confusion.classes(), r.class_names,
                                 title + " (accuracy " + json::number(std::round(r.accuracy * 1000) / 1000) + ")");
    pngs.push_back(png);
  };
  // Survey augmentation trains on views cut from a wider window; scores are on the plain centre crop.
  const data::ImageSet cropped = images.height == Net::input_shape::h ? data::ImageSet{} : data::centre_crop(images, Net::input_shape::h);
  const data::ImageSet& scored = images.height == Net::input_shape::h ? images : cropped;
  if (!split.validation.empty()) score("validation", "validation", scored, split.validation);
  if (prepared.test) {
    const data::ImageSet& test = *prepared.test;
    std::vector<int> idx(std::size_t(test.size()));
    for (int i = 0; i < test.size(); ++i) idx[std::size_t(i)] = i;
    score("test (" + fs::path(s.test_data).filename().string() + ")", "test", test, idx);
  }
  if (split.validation.empty() && s.test_data.empty()) {
    std::vector<int> held;  // with several ranks, rank 0 holds only its shards' images
    for (int i : split.train)
      if (i >= 0) held.push_back(i);
    score(g_job.ranks > 1 ? "rank 0's training images (no validation split)" : "training images (no validation split)",
          "train", scored, held);
  }

  // Curves and filters.
  std::vector<double> ep, tl, vl, ta, va;
  for (const auto& r : fit.history) {
    ep.push_back(r.epoch);
    tl.push_back(r.train_loss);
    vl.push_back(r.val_loss);
    ta.push_back(r.train_accuracy);
    va.push_back(r.val_accuracy);
  }
  plots::save_training_curves((out / "curves.png").string(), ep, tl, vl, ta, va);
  // The first layer's kernel, [K, K, 3, F]: 5 x 5 x 3 x 32 for PaperNet and ImprovedNet, the 8
  // learned (un-rotated) 6 x 6 filters of D4Net's lifting layer.
  const auto first = net->parameters().front();
  const std::vector<std::size_t> shape = detail::param_shape_of<typename Net::template layer_type<0>>::get("kernel", first.size);
  if (shape.size() == 4 && shape[2] == 3)
    plots::save_filter_grid((out / "filters.png").string(), first.value, int(shape[0]), 3, int(shape[3]));
  io::write_text_atomically((out / "metrics.json").string(), summary.str() + "\n");

  // The files this run leaves, as they are on disk (never a name that was not written).
  std::vector<std::string> written;
  for (const std::string name : {"metrics.json", "metrics.jsonl", "last.h5", "best.h5", "curves.png", "filters.png"})
    if (fs::exists(out / name))
      written.push_back(name == "best.h5" ? "best.h5 (epoch " + std::to_string(fit.best_epoch) + ")" : name);
  for (const auto& p : pngs)
    if (fs::exists(p)) written.push_back(fs::path(p).filename().string());
  std::printf("\nwrote %s:", s.out.c_str());
  for (std::size_t i = 0; i < written.size(); ++i) std::printf("%s %s", i ? "," : "", written[i].c_str());
  std::printf("\n");
  const fs::path classify_with = fs::exists(out / "best.h5") ? out / "best.h5" : out / "last.h5";
  if (fs::exists(classify_with))
    std::printf("classify pictures with: galaxy10_classify %s IMAGE...\n", classify_with.string().c_str());
  return 0;
}


// An error on one rank of an MPI job ends every rank at once (MPI_Abort), so none waits for it.
int failed(const char* what, [[maybe_unused]] bool everyone_fails = false) {
  std::fflush(stdout);
  std::cerr << "\ngalaxy10_train" << (g_job.ranks > 1 ? " rank " + std::to_string(g_job.rank) : std::string())
            << ": error: " << what << "\n";
#ifdef HUBBLE_WITH_MPI
  if (g_job.ranks > 1 && !everyone_fails) distributed::MpiSession::abort_all(1);
#endif
  return 1;
}

int run_job(int argc, char** argv) {
  try {
    return run(argc, argv);
  }
#ifdef HUBBLE_WITH_MPI
  catch (const distributed::JobRefused& e) {
    return failed(e.what(), true);
  }
#endif
  catch (const hubble::Error& e) {
    return failed(e.what());
  } catch (const std::exception& e) {
    return failed(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef HUBBLE_WITH_MPI
  if (distributed::launched_by_mpi()) {  // mpirun -np N galaxy10_train ...: the ranks of one run
    distributed::MpiSession mpi(argc, argv);
    distributed::MpiExchange exchange;
    exchange.allow_overlap(mpi.threads_may_call());
    g_job = {mpi.rank(), mpi.size(), &exchange};
    if (!g_job.root()) (void)!std::freopen("/dev/null", "w", stdout);  // rank 0 speaks for the job; errors still reach stderr
    const int code = run_job(argc, argv);
    g_job.exchange = nullptr;
    return code;
  }
#endif
  return run_job(argc, argv);
}
