#pragma once
// OptimizerState: what every optimiser keeps between steps — a step count and, per parameter
// array, `slots_per_param` arrays of the same size (Adam: m and v; SGD: velocity). Checkpoints
// save and restore it through this interface, so a resumed run continues exactly.
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/parameter.hpp"

namespace hubble {

template <class T>
class OptimizerState {
 public:
  OptimizerState(std::string name, int slots_per_param) : name_(std::move(name)), per_param_(slots_per_param) {}

  const std::string& name() const { return name_; }
  int slots_per_param() const { return per_param_; }
  long long steps = 0;
  // slots[p * slots_per_param + s]: slot s of parameter array p (empty until the first step).
  std::vector<std::vector<T>> slots;

 protected:
  void prepare(const std::vector<ParamRef<T>>& params) {
    if (slots.empty()) {
      for (const auto& p : params)
        for (int s = 0; s < per_param_; ++s) slots.emplace_back(p.size, T(0));
    }
    HUBBLE_CHECK(slots.size() == params.size() * per_param_, name_, ": optimiser state holds ", slots.size(),
                 " arrays, the network has ", params.size(), " parameter arrays");
    for (std::size_t p = 0; p < params.size(); ++p)
      HUBBLE_CHECK(slots[p * per_param_].size() == params[p].size, name_, ": state of ", params[p].name,
                   " has ", slots[p * per_param_].size(), " values, the parameter ", params[p].size);
  }
  T* slot(std::size_t p, int s) { return slots[p * per_param_ + s].data(); }

 private:
  std::string name_;
  int per_param_;
};

}  // namespace hubble
