#pragma once
// What a layer is (read this before writing one; docs/extending.md has a worked example).
//
// A layer comes in two halves:
//  * the spec, what users write inside Sequential<...>: Conv2D<32, 5, 2>, ReLU, Dense<10>, ...
//    A spec is an empty type with a member alias template
//        template <class InShape, class T> using bind = SomeLayer<InShape, T, ...>;
//    Sequential binds each spec to the output shape of the layer before it.
//  * the bound layer, SomeLayer<InShape, T, ...>, which requires/ensures:
//        using in_shape = InShape;   using out_shape = Shape<...>;   // computed at compile time
//        static constexpr std::size_t parameter_count;
//        static constexpr bool is_activation;   // folded into the previous row by summary()
//        static constexpr const char* kind;     // "Conv2D": summary() and parameter names
//        static std::string spec();             // "Conv2D<32,5,2,valid>": checkpoints' architecture
//        void initialize(Rng& rng, Init init);  // draws parameters; same rng state -> same weights
//        void forward(const Tensor<T>& x, Tensor<T>& y, Mode mode);
//            requires x of in_shape (any batch n); ensures y resized to n x out_shape.
//        void backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx);
//            x, y: this layer's last forward input/output; dy = dLoss/dy.
//            ensures: parameter gradients = dLoss/dparams (overwritten, not accumulated) and,
//            when dx != nullptr, *dx = dLoss/dx. The first layer of a network gets dx == nullptr.
//        template <class F> void for_each_parameter(F&& f);  // f(suffix, value*, grad*, size)
//    A layer that draws random numbers while running (Dropout) also offers Rng& rng(), so
//    checkpoints can save and restore its stream; a layer with non-trainable state (BatchNorm's
//    moving statistics) offers for_each_buffer(f), f(suffix, value*, size), saved likewise.
// Invalid shape combinations are static_asserts whose message names the layer and the fault;
// the compiler's "required from" line shows the offending Shape<H,W,C>.
#include <cstddef>
#include <string>

#include "hubble/core/init.hpp"
#include "hubble/core/rng.hpp"
#include "hubble/core/shape.hpp"
#include "hubble/core/tensor.hpp"

namespace hubble {

// Base for layers without parameters.
struct ParameterFreeLayer {
  static constexpr std::size_t parameter_count = 0;
  static constexpr bool is_activation = false;
  void initialize(Rng&, Init) {}
  template <class F>
  void for_each_parameter(F&&) {}
};

// Checks a runtime tensor against the compile-time shape a layer expects.
template <class S, class T>
void check_input(const Tensor<T>& x, const char* layer) {
  HUBBLE_CHECK(x.template has_shape<S>(), layer, ": expected input of shape ", S::str(), " per sample, got ", x.height(),
               "x", x.width(), "x", x.channels());
}

}  // namespace hubble
