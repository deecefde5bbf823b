#pragma once
// Network::summary(): the Keras-style table. An activation (ReLU, Softmax) is shown in the row
// of the layer it follows, as Keras shows Conv2D(..., activation="relu"), so the paper's
// network prints the 13 rows of its Table I.
#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "hubble/network/sequential.hpp"

namespace hubble {

namespace detail {
// Built by appending (not std::string::insert, which g++ 12 at -O3 flags with a false -Wrestrict).
inline std::string thousands(std::size_t v) {
  const std::string digits = std::to_string(v);
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}
}  // namespace detail

template <class T, class InputSpec, class... Specs>
std::vector<SummaryRow> Network<T, InputSpec, Specs...>::summary_rows() {
  std::vector<SummaryRow> rows;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ([&] {
      using L = layer_type<I>;
      if (L::is_activation && !rows.empty()) { rows.back().type.append("+").append(L::kind); return; }
      rows.push_back({layer_names()[I], L::kind, L::out_shape::str(), L::parameter_count});
    }(), ...);
  }(std::make_index_sequence<layer_count>{});
  return rows;
}

template <class T, class InputSpec, class... Specs>
void Network<T, InputSpec, Specs...>::summary(std::ostream& os) {
  const std::vector<SummaryRow> rows = summary_rows();
  // Columns at least Keras' widths, wider when a name or shape needs it.
  std::size_t name_w = 30, shape_w = 20;
  for (const SummaryRow& r : rows) {
    name_w = std::max(name_w, r.name.size() + r.type.size() + 5);  // "name (type)" and two spaces
    shape_w = std::max(shape_w, r.shape.size() + 2);
  }
  const int nw = int(name_w), sw = int(shape_w), pw = 14;
  const std::string rule(name_w + shape_w + pw, '='), thin(name_w + shape_w + pw, '-');
  os << "Input: " << input_shape::str() << "\n" << rule << "\n"
     << std::left << std::setw(nw) << "Layer (type)" << std::setw(sw) << "Output shape" << std::right << std::setw(pw) << "Param #" << "\n"
     << rule << "\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const SummaryRow& r = rows[i];
    os << std::left << std::setw(nw) << (r.name + " (" + r.type + ")") << std::setw(sw) << r.shape << std::right
       << std::setw(pw) << detail::thousands(r.params) << "\n" << (i + 1 < rows.size() ? thin : rule) << "\n";
  }
  os << "Total params: " << detail::thousands(parameter_count) << "\n";
}

}  // namespace hubble
