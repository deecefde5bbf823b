#pragma once
// Weight initialisers. Glorot-uniform is Keras' default (and so the paper's):
//   W ~ U(-a, a),  a = sqrt(6 / (fan_in + fan_out)).
// He-uniform suits ReLU stacks: a = sqrt(6 / fan_in). Biases start at zero.
// For a conv kernel K x K x C_in -> F: fan_in = K*K*C_in, fan_out = K*K*F (Keras' convention).
#include <cmath>
#include <cstddef>

#include "hubble/core/rng.hpp"

namespace hubble {

enum class Init { glorot_uniform, he_uniform };

template <class T>
void init_uniform_weights(T* w, std::size_t n, double fan_in, double fan_out, Init init, Rng& rng) {
  const double a = init == Init::glorot_uniform ? std::sqrt(6.0 / (fan_in + fan_out)) : std::sqrt(6.0 / fan_in);
  for (std::size_t i = 0; i < n; ++i) w[i] = T(rng.uniform(-a, a));
}

}  // namespace hubble
