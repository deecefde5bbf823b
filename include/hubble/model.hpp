#pragma once
// hubble::Model — a trained network behind a type-erased, runtime interface, for code that must
// not carry the network's compile-time type (a classifier program, a service):
//
//   hubble::Model m = hubble::Model::load("runs/x/best.h5");
//   std::vector<float> p = m.predict(pixels);          // 128*128*3 bytes (RGB, HWC) -> 10 probabilities
//   std::cout << m.class_names()[argmax(p)];
//
// Which network a checkpoint holds is found from its `architecture` attribute in a registry:
// hubble's Galaxy10 networks (PaperNet, ImprovedNet) are built in, registered by their own
// headers (model_registry.hpp); register others with
//   hubble::Model::register_architecture<MyNet>({"cat", "dog"});
//
// Thread safety: one Model may be used from several threads at once. predict() is const; each
// call borrows a network replica from the model's pool (a copy of the weights, made the first
// time that many calls run together and kept for reuse), so concurrent calls never share
// buffers and run in parallel. Copies of a Model share its weights and pool. Loading and
// registering are safe from any thread too.
//
// prepare_image() turns a picture of any size into the network's input the way the training
// data was made: centre crop to a square, keep the central `crop_fraction` of it (Galaxy10
// training crops the central 128 of 256 pixels: 0.5), resize by area averaging (bilinear when
// enlarging).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/tensor.hpp"
#include "hubble/io/checkpoint.hpp"
#include "hubble/model_registry.hpp"
#include "hubble/onnx/onnx.hpp"  // only the protobuf-free description; reading ONNX is hubble/onnx/model.hpp
// The built-in networks: included here so that every file including model.hpp sees the same
// builtin_model slots.
#include "hubble/equivariant_net.hpp"
#include "hubble/improved_net.hpp"
#include "hubble/paper_net.hpp"

namespace hubble {

// The network input made from an image of width x height x channels bytes (1 grey, 2 grey +
// alpha, 3 RGB, 4 RGBA; rows top to bottom): side x side x 3 RGB bytes.
inline std::vector<std::uint8_t> prepare_image(const std::uint8_t* pixels, int width, int height, int channels,
                                               int side, double crop_fraction = 1.0) {
  HUBBLE_CHECK(pixels && width > 0 && height > 0 && channels >= 1 && channels <= 4, "prepare_image: bad image ", width,
               " x ", height, " x ", channels);
  HUBBLE_CHECK(side > 0, "prepare_image: bad output side ", side);
  HUBBLE_CHECK(crop_fraction > 0 && crop_fraction <= 1, "prepare_image: crop fraction ", crop_fraction,
               " outside (0, 1]");
  // Square centre crop, then the central fraction of it (in source pixels, may be fractional).
  const double sq = std::min(width, height);
  const double crop = sq * crop_fraction;
  const double x0 = (width - crop) / 2.0, y0 = (height - crop) / 2.0;
  const double scale = crop / side;  // source pixels per output pixel

  // Weights of source indices [first, first + w.size()) for each output index along one axis.
  struct Taps {
    int first;
    std::vector<double> w;
  };
  const auto taps = [&](double origin, int limit) {
    std::vector<Taps> out(static_cast<std::size_t>(side));
    for (int o = 0; o < side; ++o) {
      Taps t;
      if (scale >= 1.0) {  // area: the output pixel covers [a, b) of the source
        const double a = origin + o * scale, b = a + scale;
        t.first = int(std::floor(a));
        for (int s = t.first; s < int(std::ceil(b)); ++s) t.w.push_back(std::min<double>(b, s + 1) - std::max<double>(a, s));
      } else {  // bilinear between the two nearest source centres
        const double c = origin + (o + 0.5) * scale - 0.5;
        t.first = int(std::floor(c));
        const double f = c - t.first;
        t.w = {1.0 - f, f};
      }
      // Taps outside the image fall onto its edge pixel; weights renormalised to sum to 1.
      int lo = limit, hi = -1;
      for (std::size_t i = 0; i < t.w.size(); ++i) {
        const int s = std::clamp(t.first + int(i), 0, limit - 1);
        lo = std::min(lo, s);
        hi = std::max(hi, s);
      }
      Taps clamped{lo, std::vector<double>(std::size_t(hi - lo + 1), 0.0)};
      double total = 0;
      for (std::size_t i = 0; i < t.w.size(); ++i) {
        clamped.w[std::size_t(std::clamp(t.first + int(i), 0, limit - 1) - lo)] += t.w[i];
        total += t.w[i];
      }
      for (double& w : clamped.w) w /= total;
      out[std::size_t(o)] = std::move(clamped);
    }
    return out;
  };
  const std::vector<Taps> tx = taps(x0, width), ty = taps(y0, height);

  const auto rgb = [&](int x, int y, int ch) -> double {
    const std::uint8_t* p = pixels + (std::size_t(y) * width + x) * channels;
    return channels >= 3 ? p[ch] : p[0];  // grey (+ alpha) -> R = G = B; alpha dropped
  };
  // Horizontal pass over the rows the vertical taps need, then the vertical pass.
  const int row_lo = ty.front().first, row_hi = ty.back().first + int(ty.back().w.size());
  std::vector<double> rows(std::size_t(row_hi - row_lo) * side * 3, 0.0);
  for (int y = row_lo; y < row_hi; ++y)
    for (int o = 0; o < side; ++o)
      for (int ch = 0; ch < 3; ++ch) {
        double v = 0;
        for (std::size_t i = 0; i < tx[std::size_t(o)].w.size(); ++i) v += tx[std::size_t(o)].w[i] * rgb(tx[std::size_t(o)].first + int(i), y, ch);
        rows[(std::size_t(y - row_lo) * side + o) * 3 + ch] = v;
      }
  std::vector<std::uint8_t> out(std::size_t(side) * side * 3);
  for (int oy = 0; oy < side; ++oy)
    for (int ox = 0; ox < side; ++ox)
      for (int ch = 0; ch < 3; ++ch) {
        double v = 0;
        const Taps& t = ty[std::size_t(oy)];
        for (std::size_t i = 0; i < t.w.size(); ++i) v += t.w[i] * rows[(std::size_t(t.first + int(i) - row_lo) * side + ox) * 3 + ch];
        out[(std::size_t(oy) * side + ox) * 3 + ch] = std::uint8_t(std::clamp(std::lround(v), 0L, 255L));
      }
  return out;
}

class Model {
 public:
  // Loads a checkpoint of any registered architecture (weights only; optimiser state ignored).
  // A path ending in .onnx is read as an ONNX model (hubble/onnx/model.hpp must be included and
  // hubble::onnx linked): the registered network whose architecture holds the graph gets its weights.
  static Model load(const std::string& checkpoint_path) {
    if (checkpoint_path.size() > 5 && checkpoint_path.compare(checkpoint_path.size() - 5, 5, ".onnx") == 0)
      return load_onnx(checkpoint_path);
    const CheckpointHeader h = read_checkpoint_header(checkpoint_path);
    Registration reg;
    {
      std::lock_guard lock(registry_mutex());
      auto& r = registry();
      const auto it = r.find(h.architecture);
      if (it == r.end()) {
        std::string known;
        for (const auto& [arch, _] : r) known += "\n  " + arch;
        detail::fail(checkpoint_path, ": no network is registered for its architecture\n  ", h.architecture,
                     "\nregistered:", known, "\n(register it with hubble::Model::register_architecture<Net>())");
      }
      reg = it->second;
    }
    auto s = std::make_shared<Shared>();
    s->path = checkpoint_path;
    s->architecture = h.architecture;
    s->h = reg.h;
    s->w = reg.w;
    s->c = reg.c;
    s->k = reg.k;
    CheckpointData data;
    s->prototype = reg.load(checkpoint_path, data);
    s->metadata = data.metadata;
    return finish(std::move(s), reg);
  }

  // Makes checkpoints of Net loadable through Model::load. `class_names` (optional) name the
  // outputs when a checkpoint does not store its own ("model/class_names" metadata).
  template <class Net>
  static void register_architecture(std::vector<std::string> class_names = {}) {
    Registration reg = registration<Net>(std::move(class_names));
    std::lock_guard lock(registry_mutex());
    registry()[Net::architecture()] = std::move(reg);
  }
  // What hubble/onnx/model.hpp installs so that load() opens .onnx files (empty otherwise: the core
  // stays free of protobuf).
  struct OnnxSupport {
    std::function<std::shared_ptr<const onnx::ImportedGraph>(const std::string&)> read;
    std::function<bool(const onnx::ImportedGraph&, const std::string&)> matches;
    std::function<void(const onnx::ImportedGraph&, const onnx::NetworkDesc&)> load;
  };
  static OnnxSupport& onnx_support() {
    static OnnxSupport s;
    return s;
  }
  static std::vector<std::string> registered_architectures() {
    std::lock_guard lock(registry_mutex());
    std::vector<std::string> out;
    for (const auto& [arch, _] : registry()) out.push_back(arch);
    return out;
  }

  // Class probabilities of one image: input_height() x input_width() x input_channels() bytes,
  // HWC, scaled by 1/255 as in training (straight into the network's input buffer).
  std::vector<float> predict(std::span<const std::uint8_t> image) const {
    check_size(image.size(), 1);
    return predict_values(Input{nullptr, image.data(), nullptr}, 1);
  }
  // The same from values already in [0, 1].
  std::vector<float> predict(std::span<const float> image) const {
    check_size(image.size(), 1);
    return predict_values(Input{image.data(), nullptr, nullptr}, 1);
  }
  // A batch (n x H x W x C, values in [0, 1]): n x classes() probabilities, row-major. A float
  // network reads a batch of up to 64 images in place (no copy), as net.forward(batch) would.
  std::vector<float> predict(const Tensor<float>& batch) const {
    HUBBLE_CHECK(s_, "Model: not loaded");
    HUBBLE_CHECK(batch.height() == s_->h && batch.width() == s_->w && batch.channels() == s_->c, s_->path,
                 ": the model takes ", s_->h, "x", s_->w, "x", s_->c, " images, not ", batch.height(), "x",
                 batch.width(), "x", batch.channels());
    return predict_values(Input{batch.data(), nullptr, &batch}, batch.batch());
  }

  const std::vector<std::string>& class_names() const { return s_->names; }
  int classes() const { return s_->k; }
  int input_height() const { return s_->h; }
  int input_width() const { return s_->w; }
  int input_channels() const { return s_->c; }
  const std::string& architecture() const { return s_->architecture; }
  // The loaded network's layers (network/describe.hpp), e.g. for lowp::plan_of: its arrays point
  // into this Model's weights (read them, do not write) and stay valid while the Model (or a copy)
  // lives.
  NetworkDesc describe() const { return s_->prototype->describe(); }
  const std::string& path() const { return s_->path; }
  // Text metadata stored in the checkpoint (e.g. "model/crop_fraction", "train/recipe").
  std::string metadata(const std::string& key, const std::string& fallback = "") const {
    const auto it = s_->metadata.find(key);
    return it == s_->metadata.end() ? fallback : it->second;
  }
  // The share of a cut-out's side the network was trained on (galaxy10_train's "model/crop_fraction":
  // 0.5 for 128 of 256 pixels), or `fallback` when the checkpoint does not say; a value that is not
  // a number in (0, 1] is an error naming the file.
  double crop_fraction(double fallback) const {
    const auto it = s_->metadata.find("model/crop_fraction");
    if (it == s_->metadata.end()) return fallback;
    const std::string& v = it->second;
    double f = 0;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), f);
    HUBBLE_CHECK(ec == std::errc() && ptr == v.data() + v.size() && f > 0 && f <= 1, s_->path,
                 ": its model/crop_fraction '", v, "' is not a number in (0, 1] (damaged checkpoint?)");
    return f;
  }
  // Network replicas in the pool (grows to the largest number of concurrent predict calls).
  std::size_t replicas() const {
    std::lock_guard lock(s_->mutex);
    return s_->replicas;
  }

 private:
  // What predict() was given: n images of values in [0, 1] (`values`) or of bytes to scale by
  // 1/255 (`bytes`); `tensor` when the values are a whole Tensor (which a float network can
  // read in place).
  struct Input {
    const float* values = nullptr;
    const std::uint8_t* bytes = nullptr;
    const Tensor<float>* tensor = nullptr;
  };
  struct Engine {
    virtual ~Engine() = default;
    virtual std::unique_ptr<Engine> clone() const = 0;
    // out: n x classes probabilities.
    virtual void predict(const Input& in, int n, float* out) = 0;
    virtual NetworkDesc describe() = 0;
  };
  template <class Net>
  struct EngineFor final : Engine {
    using T = typename Net::scalar;
    using S = typename Net::input_shape;
    static constexpr int chunk = 64;  // images per forward pass: bounds the activation memory
    std::unique_ptr<Net> net = constant_weights_network();  // a Model's weights are only read
    Tensor<T> x;
    static std::unique_ptr<Net> constant_weights_network() {
      auto n = std::make_unique<Net>();
      n->set_weights_constant(true);
      return n;
    }
    NetworkDesc describe() override {
      if constexpr (std::is_same_v<T, float>) return hubble::describe(*net);
      else detail::fail("hubble::Model: describe() needs a float network, not ", Net::architecture());
    }
    std::unique_ptr<Engine> clone() const override {
      auto e = std::make_unique<EngineFor>();
      *e->net = *net;
      return e;
    }
    void predict(const Input& in, int n, float* out) override {
      constexpr int K = Net::classes;
      const std::size_t sample = std::size_t(S::h) * S::w * S::c;
      for (int first = 0; first < n; first += chunk) {
        const int count = std::min(chunk, n - first);
        const Tensor<T>* input = &x;
        if constexpr (std::is_same_v<T, float>)
          if (in.tensor && n <= chunk) input = in.tensor;  // the caller's batch, read in place
        if (input == &x) {
          x.resize(count, S::h, S::w, S::c);
          const std::size_t begin = std::size_t(first) * sample, end = std::size_t(first + count) * sample;
          if (in.bytes)
            for (std::size_t i = begin; i < end; ++i) x[i - begin] = T(float(in.bytes[i]) / 255.0f);
          else
            std::copy(in.values + begin, in.values + end, x.data());
        }
        net->forward(*input, Mode::eval);
        const Tensor<T>& z = net->logits();
        for (int i = 0; i < count; ++i) {  // softmax of the logits, in double
          const T* row = z.sample(i);
          const double m = double(*std::max_element(row, row + K));
          double sum = 0;
          for (int j = 0; j < K; ++j) sum += std::exp(double(row[j]) - m);
          for (int j = 0; j < K; ++j) out[std::size_t(first + i) * K + j] = float(std::exp(double(row[j]) - m) / sum);
        }
      }
    }
  };
  struct Registration {
    int h = 0, w = 0, c = 0, k = 0;
    std::vector<std::string> names;
    std::function<std::unique_ptr<Engine>(const std::string&, CheckpointData&)> load;
    std::function<std::unique_ptr<Engine>(const onnx::ImportedGraph&)> load_onnx;  // float networks
  };
  static Model load_onnx(const std::string& path) {
    const OnnxSupport& os = onnx_support();
    HUBBLE_CHECK(os.read, path, ": this program cannot read ONNX models (build it with hubble::onnx and include "
                 "hubble/onnx/model.hpp)");
    const std::shared_ptr<const onnx::ImportedGraph> graph = os.read(path);
    Registration reg;
    std::string architecture;
    {
      std::lock_guard lock(registry_mutex());
      std::string known;
      for (const auto& [arch, r] : registry()) {
        known += "\n  " + arch;
        if (architecture.empty() && r.load_onnx && os.matches(*graph, arch)) { reg = r; architecture = arch; }
      }
      if (architecture.empty())
        detail::fail(path, ": no registered network holds this ONNX graph\n  ", graph->architecture(), "\nregistered:", known,
                     "\n(hubble_onnx_type prints the type that holds it; register it with hubble::Model::register_architecture<Net>())");
    }
    auto s = std::make_shared<Shared>();
    s->path = path;
    s->architecture = architecture;
    s->h = reg.h; s->w = reg.w; s->c = reg.c; s->k = reg.k;
    s->prototype = reg.load_onnx(*graph);
    s->metadata = graph->metadata;  // hubble_convert copies a checkpoint's metadata (crop fraction, ...)
    return finish(std::move(s), reg);
  }

  template <class Net>
  static Registration registration(std::vector<std::string> class_names) {
    using S = typename Net::input_shape;
    Registration reg;
    reg.h = S::h;
    reg.w = S::w;
    reg.c = S::c;
    reg.k = Net::classes;
    reg.names = std::move(class_names);
    reg.load = [](const std::string& path, CheckpointData& data) -> std::unique_ptr<Engine> {
      auto e = std::make_unique<EngineFor<Net>>();
      data = load_checkpoint(path, *e->net);
      return e;
    };
    if constexpr (std::is_same_v<typename Net::scalar, float>)
      reg.load_onnx = [](const onnx::ImportedGraph& graph) -> std::unique_ptr<Engine> {
        auto e = std::make_unique<EngineFor<Net>>();
        onnx_support().load(graph, onnx::describe(*e->net));
        return e;
      };
    return reg;
  }
  struct Shared {
    std::string path, architecture;
    int h = 0, w = 0, c = 0, k = 0;
    std::vector<std::string> names;
    std::map<std::string, std::string> metadata;
    std::unique_ptr<Engine> prototype;       // never used for predicting; replicas are copies
    mutable std::mutex mutex;                // guards idle and replicas
    std::vector<std::unique_ptr<Engine>> idle;
    std::size_t replicas = 0;
  };
  // The Model around a loaded network: class names from its "model/class_names" metadata (one
  // per line), else the registration's, else "class 0", "class 1", ...
  static Model finish(std::shared_ptr<Shared> s, const Registration& reg) {
    const auto stored = s->metadata.find("model/class_names");
    if (stored != s->metadata.end() && !stored->second.empty()) {
      std::string line;
      for (const char ch : stored->second + "\n") {
        if (ch == '\n') { s->names.push_back(line); line.clear(); }
        else line += ch;
      }
    }
    if (int(s->names.size()) != s->k) s->names = reg.names;
    if (int(s->names.size()) != s->k) {
      s->names.clear();
      for (int i = 0; i < s->k; ++i) s->names.push_back("class " + std::to_string(i));
    }
    Model m;
    m.s_ = std::move(s);
    return m;
  }

  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }
  // Architecture text -> how to load it. Starts with the networks of the builtin_model slots
  // (model_registry.hpp: PaperNet, ImprovedNet).
  static std::map<std::string, Registration>& registry() {
    static std::map<std::string, Registration> r = [] {
      std::map<std::string, Registration> init;
      [&]<int... Slot>(std::integer_sequence<int, Slot...>) {
        (add_builtin<Slot>(init), ...);
      }(std::make_integer_sequence<int, builtin_model_slots>{});
      return init;
    }();
    return r;
  }
  template <int Slot>
  static void add_builtin(std::map<std::string, Registration>& r) {
    if constexpr (requires { typename builtin_model<Slot>::net; }) {
      using B = builtin_model<Slot>;
      r[B::net::architecture()] = registration<typename B::net>({std::begin(B::class_names), std::end(B::class_names)});
    }
  }

  void check_size(std::size_t values, int n) const {
    HUBBLE_CHECK(s_, "Model: not loaded");
    const std::size_t want = std::size_t(n) * s_->h * s_->w * s_->c;
    HUBBLE_CHECK(values == want, s_->path, ": the model takes ", s_->h, "x", s_->w, "x", s_->c, " = ", want,
                 " values per image, got ", values);
  }

  std::vector<float> predict_values(const Input& x, int n) const {
    HUBBLE_CHECK(s_, "Model: not loaded");
    std::unique_ptr<Engine> e;
    {
      std::lock_guard lock(s_->mutex);
      if (!s_->idle.empty()) {
        e = std::move(s_->idle.back());
        s_->idle.pop_back();
      }
    }
    if (!e) {
      e = s_->prototype->clone();  // the prototype is only read: safe to copy concurrently
      std::lock_guard lock(s_->mutex);
      ++s_->replicas;
    }
    std::vector<float> out(std::size_t(n) * s_->k);
    try {
      e->predict(x, n, out.data());
    } catch (...) {
      std::lock_guard lock(s_->mutex);
      s_->idle.push_back(std::move(e));
      throw;
    }
    std::lock_guard lock(s_->mutex);
    s_->idle.push_back(std::move(e));
    return out;
  }

  std::shared_ptr<Shared> s_;
};

}  // namespace hubble
