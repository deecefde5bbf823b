#pragma once
// Which instruction family runs the int8 kernels (int8_gemm.hpp, int8_conv.hpp), chosen at run
// time from CPUID (kernels/cpu_features.hpp), so one binary built with -mavx2 -mfma runs the
// fastest path each machine has:
//   amx_int8     TDPBUSD tiles  16 x 16 x 64 u8 x s8 products per instruction (kernels/amx.hpp)
//   avx512_vnni  VPDPBUSD zmm   64 u8 x s8 products per instruction, summed 4 at a time into int32
//   avx_vnni     VPDPBUSD ymm   the same on 256-bit registers (VEX encoding)
//   avx2         VPMADDWD       bytes widened to 16 bits, pairs summed into int32 (exact)
//   generic      scalar C++     the reference the others are checked against
// Every path computes the same int32 sums exactly, so they give bit-identical results.
//
//   lowp::chosen_int8_path()                        // "avx512_vnni"
//   lowp::ForcedInt8Path scope(lowp::Int8Path::avx2);  // a lower path, until scope ends
// HUBBLE_CPU_LIMIT=avx2 in the environment hides the higher families from the whole process.
#include <atomic>
#include <string>
#include <string_view>

#include "hubble/core/error.hpp"
#include "hubble/kernels/cpu_features.hpp"

namespace hubble::kernels::lowp {

enum class Int8Path { generic, avx2, avx_vnni, avx512_vnni, amx_int8 };
inline constexpr Int8Path all_int8_paths[] = {Int8Path::generic, Int8Path::avx2, Int8Path::avx_vnni,
                                              Int8Path::avx512_vnni, Int8Path::amx_int8};

constexpr const char* name_of(Int8Path p) {
  switch (p) {
    case Int8Path::generic:
      return "generic";
    case Int8Path::avx2:
      return "avx2";
    case Int8Path::avx_vnni:
      return "avx_vnni";
    case Int8Path::avx512_vnni:
      return "avx512_vnni";
    case Int8Path::amx_int8:
      return "amx_int8";
  }
  return "?";
}

// The CPU family a path needs.
constexpr cpu::Isa isa_of(Int8Path p) {
  switch (p) {
    case Int8Path::generic:
      return cpu::Isa::generic;
    case Int8Path::avx2:
      return cpu::Isa::avx2;
    case Int8Path::avx_vnni:
      return cpu::Isa::avx_vnni;
    case Int8Path::avx512_vnni:
      return cpu::Isa::avx512_vnni;
    case Int8Path::amx_int8:
      return cpu::Isa::amx_int8;
  }
  return cpu::Isa::generic;
}

// True when this process may run path p (the CPU has it and HUBBLE_CPU_LIMIT does not hide it).
inline bool available(Int8Path p) { return cpu::features().has(isa_of(p)); }

// The fastest path this process may run.
inline Int8Path best_int8_path() {
  for (auto it = std::rbegin(all_int8_paths); it != std::rend(all_int8_paths); ++it)
    if (available(*it)) return *it;
  return Int8Path::generic;
}

inline Int8Path parse_int8_path(std::string_view s) {
  std::string known;
  for (Int8Path p : all_int8_paths) {
    if (s == name_of(p)) return p;
    known += known.empty() ? "" : ", ";
    known += name_of(p);
  }
  throw Error("unknown int8 path '" + std::string(s) + "' (known: " + known + ")");
}

namespace detail {
inline std::atomic<int>& forced_int8_path() {  // -1: none
  static std::atomic<int> forced{-1};
  return forced;
}
}  // namespace detail

// The path the kernels use when none is named: the forced one, else the best available.
inline Int8Path int8_path() {
  const int forced = detail::forced_int8_path().load();
  if (forced >= 0) return Int8Path(forced);
  return best_int8_path();
}
inline const char* chosen_int8_path() { return name_of(int8_path()); }

// Forces path p (for tests and benchmarks) until the object is destroyed; a path this process
// cannot run is refused with a hubble::Error.
class ForcedInt8Path {
 public:
  explicit ForcedInt8Path(Int8Path p) : previous_(detail::forced_int8_path().load()) {
    HUBBLE_CHECK(available(p), "int8 path ", name_of(p), " cannot run here: ",
                 cpu::features().hidden_by_limit(isa_of(p)) ? "HUBBLE_CPU_LIMIT hides it" : "this CPU lacks it", " (",
                 cpu::describe(), ")");
    detail::forced_int8_path().store(int(p));
  }
  ~ForcedInt8Path() { detail::forced_int8_path().store(previous_); }
  ForcedInt8Path(const ForcedInt8Path&) = delete;
  ForcedInt8Path& operator=(const ForcedInt8Path&) = delete;

 private:
  int previous_;
};

// Throws unless this process can run path p (for functions that take a path explicitly).
inline void check_available(Int8Path p, const char* where) {
  HUBBLE_CHECK(available(p), where, ": int8 path ", name_of(p), " cannot run here: ",
               cpu::features().hidden_by_limit(isa_of(p)) ? "HUBBLE_CPU_LIMIT hides it" : "this CPU lacks it", " (",
               cpu::describe(), ")");
}

}  // namespace hubble::kernels::lowp
