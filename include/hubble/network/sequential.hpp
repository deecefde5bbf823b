#pragma once
// Network<T, Input<H,W,C>, Layers...> — a feed-forward network whose layer list, shapes and
// parameter count are fixed at compile time; Sequential<...> is the float version.
//
//   using Net = Sequential<Input<28,28,1>, Conv2D<8,3>, ReLU, MaxPool<2>, Flatten, Dense<10>, Softmax>;
//   static_assert(Net::parameter_count == 13610);
//   Net net(/*seed=*/42);
//   Adam<float> adam;
//   BatchStats s = net.train_step(images, labels, adam);   // forward, backward, update
//
// The network owns every activation and gradient buffer (sized on the first batch, reused
// after). forward() keeps a pointer to its input: keep the input alive until backward().
//
// forward_from / backward_from (at the end of the class) are the whole chain: layer I reads
// acts_[I - 1] and writes acts_[I], and backward walks down from the last layer. Where the fusion
// plan (network/fusion.hpp) says that layers I, I + 1 (, I + 2) run as one pass — Conv2D+ReLU,
// Conv2D+ReLU+MaxPool, ReLU+MaxPool backward — the chain runs that step instead, with the same
// bits; set_fusion(false) runs every layer on its own and keeps every tensor, for inspection.
#include <array>
#include <cstdint>
#include <functional>
#include <ostream>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "hubble/core/parameter.hpp"
#include "hubble/layers/activations.hpp"
#include "hubble/layers/input.hpp"
#include "hubble/network/fusion.hpp"
#include "hubble/network/loss.hpp"

namespace hubble {

// One row of summary(): "conv2d_1", "Conv2D+ReLU", "62x62x32", 2432.
struct SummaryRow {
  std::string name, type, shape;
  std::size_t params;
};

namespace detail {
// Binds each spec to the output shape of the previous layer.
template <class In, class T, class... Specs>
struct bind_chain {
  using layers = std::tuple<>;
  using out_shape = In;
};
template <class In, class T, class S, class... Rest>
struct bind_chain<In, T, S, Rest...> {
  using layer = typename S::template bind<In, T>;
  using next = bind_chain<typename layer::out_shape, T, Rest...>;
  using layers = decltype(std::tuple_cat(std::declval<std::tuple<layer>>(), std::declval<typename next::layers>()));
  using out_shape = typename next::out_shape;
};
template <class L> struct is_softmax : std::false_type {};
template <class In, class T> struct is_softmax<ActivationLayer<In, T, activation::Softmax>> : std::true_type {};
template <class> struct is_input : std::false_type {};
template <int H, int W, int C> struct is_input<Input<H, W, C>> : std::true_type {};
}  // namespace detail

template <class T, class InputSpec, class... Specs>
class Network {
  static_assert(std::is_floating_point_v<T>, "Network: the scalar type must be float or double");
  static_assert(detail::is_input<InputSpec>::value, "Sequential: the first entry must be Input<H, W, C>");
  static_assert(sizeof...(Specs) > 0, "Sequential: a network needs at least one layer after Input");
  using chain = detail::bind_chain<typename InputSpec::shape, T, Specs...>;

 public:
  using scalar = T;
  using layers_type = typename chain::layers;
  using input_shape = typename InputSpec::shape;
  using output_shape = typename chain::out_shape;
  template <class U>
  using rebind = Network<U, InputSpec, Specs...>;
  static constexpr std::size_t layer_count = sizeof...(Specs);
  template <std::size_t I>
  using layer_type = std::tuple_element_t<I, layers_type>;
  static constexpr bool ends_with_softmax = detail::is_softmax<layer_type<layer_count - 1>>::value;
  static constexpr std::size_t parameter_count = []<std::size_t... I>(std::index_sequence<I...>) {
    return (std::size_t(0) + ... + layer_type<I>::parameter_count);
  }(std::make_index_sequence<layer_count>{});
  static constexpr int classes = output_shape::c;

  explicit Network(std::uint64_t seed = 0, Init init = Init::glorot_uniform) { initialize(seed, init); }

  // Draws every layer's parameters (and seeds dropout streams) from one seed.
  void initialize(std::uint64_t seed, Init init = Init::glorot_uniform) {
    Rng root(seed);
    for_each_layer([&](auto& layer, std::size_t i) {
      Rng r = root.split(i + 1);
      layer.initialize(r, init);
    });
  }

  // x: n samples of input_shape. Returns the output (probabilities when the net ends in Softmax).
  // In Mode::eval (with fusion on) BatchNorm is folded into the Conv2D before it
  // (network/fusion.hpp); a backward() after such a pass first runs the forward again unfolded.
  const Tensor<T>& forward(const Tensor<T>& x, Mode mode = Mode::eval) {
    run_forward(x, mode, fuse_, fuse_ && mode == Mode::eval && fusion_plan::folds_batchnorm());
    return acts_[layer_count - 1];
  }

  // dy = dLoss/d(output). Fills every parameter gradient.
  void backward(const Tensor<T>& dy) {
    if (folded_pass_) run_forward(*input_, Mode::eval, fused_pass_, false);  // BatchNorm's backward needs its input
    backward_from<layer_count - 1>(dy);
  }

  // Loss and gradients for one batch without updating: forward + fused loss + backward.
  // mode = Mode::eval turns dropout off (deterministic gradients, e.g. to compare with PyTorch).
  BatchStats compute_gradients(const Tensor<T>& x, std::span<const int> labels, const LossOptions& loss = {},
                               Mode mode = Mode::train) {
    run_forward(x, mode, fuse_, false);
    const BatchStats s = softmax_cross_entropy(logits(), labels, loss, &dlogits_);
    if constexpr (ends_with_softmax) backward_from<layer_count - 2>(dlogits_);  // fused: skip Softmax
    else backward_from<layer_count - 1>(dlogits_);
    return s;
  }

  // One training step: gradients on the batch, then one optimiser update. Returns the batch's
  // loss and accuracy (measured before the update, in `mode`).
  template <class Optimizer>
  BatchStats train_step(const Tensor<T>& x, std::span<const int> labels, Optimizer& opt, const LossOptions& loss = {},
                        Mode mode = Mode::train) {
    const BatchStats s = compute_gradients(x, labels, loss, mode);
    auto params = parameters();
    opt.step(params);
    return s;
  }

  // Loss and accuracy in eval mode (no dropout), no gradients.
  BatchStats evaluate(const Tensor<T>& x, std::span<const int> labels, const LossOptions& loss = {}) {
    forward(x, Mode::eval);
    return softmax_cross_entropy(logits(), labels, loss, nullptr);
  }

  // The pre-softmax scores of the last forward pass.
  const Tensor<T>& logits() const {
    if constexpr (ends_with_softmax && layer_count >= 2) return acts_[layer_count - 2];
    else return acts_[layer_count - 1];
  }
  // Fusion of Conv2D+ReLU(+MaxPool) and ReLU+MaxPool (on by default; network/fusion.hpp).
  // Takes effect at the next forward(); a backward() follows its forward's choice.
  void set_fusion(bool on) { fuse_ = on; }
  bool fusion() const { return fuse_; }

  // A promise, for inference, that the weights will not change until this is switched off: the
  // convolutions then check once, not on every forward, that the weights they prepared (packed,
  // Winograd-transformed) are still the layer's (kernels::Workspace::has_prepared). Switching it
  // on or off makes the next forward check again. Writing weights while it is on (an optimiser
  // step, a checkpoint load, a write through parameters()) leaves the convolutions computing
  // with the old ones: switch it off first. hubble::Model switches it on; it is off by default.
  void set_weights_constant(bool on) {
    for_each_layer([&](auto& layer, std::size_t) {
      if constexpr (requires { layer.set_weights_constant(on); }) layer.set_weights_constant(on);
    });
  }

  // Output of layer I (0-based, Input not counted) from the last forward pass; empty for the
  // tensors a fused step does not store (network/fusion.hpp).
  const Tensor<T>& activation(std::size_t i) const { return acts_.at(i); }
  // dLoss/d(output of layer i) from the last backward pass (empty likewise).
  const Tensor<T>& activation_gradient(std::size_t i) const { return grads_.at(i); }

  // Every trainable array, named "<kind>_<k>/<kernel|bias>" like Keras ("conv2d_1/kernel").
  std::vector<ParamRef<T>> parameters() {
    std::vector<ParamRef<T>> out;
    for_each_layer([&](auto& layer, std::size_t i) {
      layer.for_each_parameter([&](const char* suffix, T* v, T* g, std::size_t n) {
        out.push_back({layer_names()[i] + "/" + suffix, v, g, n});
      });
    });
    return out;
  }

  // Non-trainable state saved with the weights (BatchNorm's moving statistics), named like
  // parameters ("batch_norm_1/moving_mean"); grad is nullptr.
  std::vector<ParamRef<T>> buffers() {
    std::vector<ParamRef<T>> out;
    for_each_layer([&](auto& layer, std::size_t i) {
      if constexpr (requires { layer.for_each_buffer([](const char*, T*, std::size_t) {}); })
        layer.for_each_buffer([&](const char* suffix, T* v, std::size_t n) {
          out.push_back({layer_names()[i] + "/" + suffix, v, nullptr, n});
        });
    });
    return out;
  }

  // Called with layer i's index as soon as its backward() has filled its parameter gradients,
  // while the layers before it still back-propagate: a data-parallel trainer sends those
  // gradients meanwhile (hubble/distributed). Empty: nothing is called.
  void set_backward_hook(std::function<void(std::size_t)> hook) { backward_hook_ = std::move(hook); }

  // Layers that draw random numbers while training (dropout), in order.
  std::vector<Rng*> random_streams() {
    std::vector<Rng*> out;
    for_each_layer([&](auto& layer, std::size_t) {
      if constexpr (requires { layer.rng(); }) out.push_back(&layer.rng());
    });
    return out;
  }

  template <std::size_t I>
  auto& layer() { return std::get<I>(layers_); }
  template <std::size_t I>
  const auto& layer() const { return std::get<I>(layers_); }

  // Calls f(layer, index) for each layer in order.
  template <class F>
  void for_each_layer(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(std::get<I>(layers_), I), ...); }(std::make_index_sequence<layer_count>{});
  }

  // Per-layer names: conv2d_1, max_pool_1, ..., numbered per kind as Keras does.
  static const std::vector<std::string>& layer_names() {
    static const std::vector<std::string> names = [] {
      std::vector<std::string> out;
      std::vector<std::pair<std::string, int>> counts;
      auto add = [&](std::string kind) {
        std::string snake;
        for (std::size_t i = 0; i < kind.size(); ++i) {
          const char ch = kind[i];
          if (std::isupper(static_cast<unsigned char>(ch)) && i > 0 && std::islower(static_cast<unsigned char>(kind[i - 1]))) snake += '_';
          snake += char(std::tolower(static_cast<unsigned char>(ch)));
        }
        int k = 1;
        for (auto& [name, c] : counts) if (name == snake) k = ++c;
        if (k == 1) counts.emplace_back(snake, 1);
        out.push_back(snake + "_" + std::to_string(k));
      };
      [&]<std::size_t... I>(std::index_sequence<I...>) { (add(layer_type<I>::kind), ...); }(std::make_index_sequence<layer_count>{});
      return out;
    }();
    return names;
  }

  // The architecture as one line of text, e.g. "Input<128,128,3> Conv2D<32,5,2,valid> ReLU ...".
  // Checkpoints store it to refuse weights of another network.
  static std::string architecture() {
    std::string s = InputSpec::spec();
    [&]<std::size_t... I>(std::index_sequence<I...>) { ((s += " " + layer_type<I>::spec()), ...); }(std::make_index_sequence<layer_count>{});
    return s;
  }

  // Keras-style table: one row per layer, activations folded into the layer they follow.
  static void summary(std::ostream& os);
  static std::vector<SummaryRow> summary_rows();

 private:
  // Which layers run as one pass when fusion is on, decided from the layer types alone
  // (network/fusion.hpp).
  using fusion_plan = FusionPlan<layers_type, T>;

  // A forward pass with fusion on or off and, at inference, BatchNorm folded or not; remembered
  // for the backward() that follows.
  void run_forward(const Tensor<T>& x, Mode mode, bool fuse, bool fold_batchnorm) {
    input_ = &x;
    fused_pass_ = fuse;
    folded_pass_ = fold_batchnorm;
    forward_from<0>(x, mode);
  }

  // The chain. Layer I reads x (the output of layer I - 1, or the network's input) and writes
  // acts_[I]; then layer I + 1 runs on acts_[I].
  template <std::size_t I>
  void forward_from(const Tensor<T>& x, Mode mode) {
    if constexpr (fusion_plan::template conv_bn_relu<I>())
      if (folded_pass_) return forward_folded<I>(x, mode);  // Conv2D+BatchNorm+ReLU(+MaxPool), inference
    if constexpr (fusion_plan::template conv_relu<I>())
      if (fused_pass_) return forward_fused<I>(x, mode);  // Conv2D+ReLU(+MaxPool) as one pass
    std::get<I>(layers_).forward(x, acts_[I], mode);
    forward_after<I>(mode);
  }
  template <std::size_t I>
  void forward_after(Mode mode) {
    if constexpr (I + 1 < layer_count) forward_from<I + 1>(acts_[I], mode);
  }

  // dy = dLoss/d acts_[I]. Layer I gets its input, its output and dy, writes its parameter
  // gradients and grads_[I - 1] = dLoss/d acts_[I - 1]; then layer I - 1 runs on that.
  template <std::size_t I>
  void backward_from(const Tensor<T>& dy) {
    auto& layer = std::get<I>(layers_);
    if constexpr (I == 0) {
      layer.backward(*input_, acts_[0], dy, nullptr);  // no one needs dLoss/d(input)
      if (backward_hook_) backward_hook_(I);
    } else {
      if constexpr (fusion_plan::template relu_pool_backward<I>())
        if (fused_pass_) return backward_fused<I>(dy);  // ReLU+MaxPool as one pass
      // A ReLU after a fused Conv2D has no stored input: its output has the same shape, and
      // ReLU's gradient reads only the output.
      const Tensor<T>& x = fusion_plan::template conv_relu<I - 1>() && fused_pass_ ? acts_[I] : acts_[I - 1];
      layer.backward(x, acts_[I], dy, &grads_[I - 1]);
      if (backward_hook_) backward_hook_(I);
      backward_from<I - 1>(grads_[I - 1]);
    }
  }

  // The fused steps: layers I, I + 1 (and I + 2 when the pool joins) in one pass, then the chain
  // continues after the last of them.
  template <std::size_t I>
  void forward_fused(const Tensor<T>& x, Mode mode) {
    const std::size_t last = fused::forward_conv_relu<fusion_plan, I>(layers_, x, acts_);
    if (last == I + 2) forward_after<I + 2>(mode);
    else forward_after<I + 1>(mode);
  }
  template <std::size_t I>
  void forward_folded(const Tensor<T>& x, Mode mode) {
    const std::size_t last = fused::forward_conv_bn_relu<fusion_plan, I>(layers_, x, acts_);
    if (last == I + 3) forward_after<I + 3>(mode);
    else forward_after<I + 2>(mode);
  }
  // The ReLU at I - 1 runs inside layer I's backward: straight to grads_[I - 2].
  template <std::size_t I>
  void backward_fused(const Tensor<T>& dy) {
    fused::backward_relu_pool<fusion_plan, I>(layers_, acts_, dy, grads_);
    if (backward_hook_) backward_hook_(I);
    backward_from<I - 2>(grads_[I - 2]);
  }

  layers_type layers_;
  std::array<Tensor<T>, layer_count> acts_;   // acts_[i]: output of layer i
  std::array<Tensor<T>, layer_count> grads_;  // grads_[i]: dLoss/d acts_[i]
  Tensor<T> dlogits_;
  const Tensor<T>* input_ = nullptr;
  bool fuse_ = true;        // set_fusion
  bool fused_pass_ = true;  // what the last forward() did, for its backward()
  bool folded_pass_ = false;  // ... and whether it folded BatchNorm (inference)
  std::function<void(std::size_t)> backward_hook_;  // set_backward_hook
};

template <class... Specs>
using Sequential = Network<float, Specs...>;

}  // namespace hubble

#include "hubble/network/summary.hpp"
