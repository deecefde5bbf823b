#pragma once
// The convolution variants, listed once. Tests, benchmarks and docs/kernels.md's tables all go
// through this list and call each variant by its one name, V::name:
//   naive, im2col+eigen, im2col+packed-gemm, implicit-gemm, winograd, winograd-4x4, tuned
// A new variant is added here (and gets every test and benchmark that iterates the list).
//
//   for_each_variant<AllVariants>([]<class V>() { std::cout << V::name << "\n"; });
//   with_variant<AllVariants>("winograd", [&]<class V>() { ... });   // false: no such name
//
// The lists are std::tuple types, so doctest can take them directly:
//   TEST_CASE_TEMPLATE_APPLY(some_test, kernels::FastVariants);
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "hubble/kernels/default.hpp"  // every variant

namespace hubble::kernels {

// Every variant: the reference (Naive) first, then the others in the order the docs' tables use.
using AllVariants = std::tuple<Naive, Im2colEigen, PackedGemm, ImplicitGemm, Winograd, Winograd4x4, Tuned>;
// The reference every other variant is validated against.
using Reference = Naive;

namespace detail {
template <class... V>
consteval bool names_are_unique(std::tuple<V...>*) {
  const std::string_view names[] = {V::name...};
  for (std::size_t i = 0; i < sizeof...(V); ++i)
    for (std::size_t j = i + 1; j < sizeof...(V); ++j)
      if (names[i] == names[j]) return false;
  return true;
}
}  // namespace detail
static_assert(detail::names_are_unique(static_cast<AllVariants*>(nullptr)), "two convolution variants share a name");

// List without the types Ex...: Without<AllVariants, Naive>.
template <class V, class... Ex>
inline constexpr bool is_one_of = (std::is_same_v<V, Ex> || ...);
template <class List, class... Ex>
struct without;
template <class... V, class... Ex>
struct without<std::tuple<V...>, Ex...> {
  using type = decltype(std::tuple_cat(std::declval<std::conditional_t<is_one_of<V, Ex...>, std::tuple<>, std::tuple<V>>>()...));
};
template <class List, class... Ex>
using Without = typename without<List, Ex...>::type;

// Every variant but the reference: the fast ones, the ones that are checked and timed.
using FastVariants = Without<AllVariants, Reference>;

// Calls f.template operator()<V>() for each variant V of List, in order.
template <class List = AllVariants, class F>
void for_each_variant(F&& f) {
  [&]<class... V>(std::tuple<V...>*) { (f.template operator()<V>(), ...); }(static_cast<List*>(nullptr));
}

// Calls f.template operator()<V>() for the variant of List named `name`; false when there is none.
template <class List = AllVariants, class F>
bool with_variant(std::string_view name, F&& f) {
  bool found = false;
  for_each_variant<List>([&]<class V>() {
    if (!found && name == V::name) {
      found = true;
      f.template operator()<V>();
    }
  });
  return found;
}

// The names of List's variants, separated by `sep` (for usage messages).
template <class List = AllVariants>
std::string variant_names(std::string_view sep = ", ") {
  std::string out;
  for_each_variant<List>([&]<class V>() {
    if (!out.empty()) out += sep;
    out += V::name;
  });
  return out;
}

}  // namespace hubble::kernels
