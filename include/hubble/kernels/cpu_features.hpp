#pragma once
// What this CPU can run, read at run time from CPUID (and XGETBV: the operating system must also
// save the wider registers), so that one binary built with the project's usual flags can pick the
// fastest kernel the machine has. The low-precision kernels (kernels/lowp/) dispatch on it.
//
//   const auto& f = hubble::cpu::features();
//   if (f.has(hubble::cpu::Isa::avx512_vnni)) ...
//   std::puts(hubble::cpu::describe().c_str());   // "AMD EPYC ...: avx2 fma avx512 avx512_vnni ..."
//
// The instruction families, fastest to slowest for 8-bit integer products:
//   amx_int8     AMX tiles, TDPBUSD: 16x64 u8 x 64x16 s8 per instruction (Intel Xeon 4th gen+)
//   avx512_vnni  VPDPBUSD zmm: 64 u8 x s8 products summed 4 at a time into 16 int32
//   avx_vnni     VPDPBUSD ymm (VEX): the same on 256-bit registers (Alder Lake, Zen 5, ...)
//   avx2         VPMADDWD on bytes widened to 16 bits: the path every x86-64-v3 CPU has
// and for bfloat16: amx_bf16 (TDPBF16PS), avx512_bf16 (VDPBF16PS: pairs of bf16 into fp32).
//
// HUBBLE_CPU_LIMIT=<family> in the environment hides every family above the one named (for
// example HUBBLE_CPU_LIMIT=avx2 runs the AVX2 paths on an AVX-512 machine), so each path can be
// tested and timed on one machine. An unknown name is refused with the list of known ones.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include "hubble/core/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace hubble::cpu {

// The families, in the order HUBBLE_CPU_LIMIT reads them: each one includes those before it
// (a limit of avx512_vnni keeps generic .. avx512_vnni).
enum class Isa { generic, avx2, avx512, avx_vnni, avx512_vnni, avx512_bf16, amx_int8, amx_bf16 };
inline constexpr Isa all_isas[] = {Isa::generic,     Isa::avx2,        Isa::avx512,   Isa::avx_vnni,
                                   Isa::avx512_vnni, Isa::avx512_bf16, Isa::amx_int8, Isa::amx_bf16};

constexpr const char* name_of(Isa i) {
  switch (i) {
    case Isa::generic:
      return "generic";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx_vnni:
      return "avx_vnni";
    case Isa::avx512_vnni:
      return "avx512_vnni";
    case Isa::avx512_bf16:
      return "avx512_bf16";
    case Isa::amx_int8:
      return "amx_int8";
    case Isa::amx_bf16:
      return "amx_bf16";
  }
  return "?";
}

// The raw answers, before any limit.
struct Detected {
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx_vnni = false, avx512_bf16 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool os_avx = false, os_avx512 = false, os_amx = false;  // XCR0: the OS saves those registers
  std::string brand;                                       // "AMD EPYC ...", "Intel(R) Xeon(R) ..."
};

namespace detail {

#if defined(__x86_64__) || defined(__i386__)
inline std::uint64_t xgetbv0() {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (std::uint64_t(hi) << 32) | lo;
}

// Linux hands out the AMX tile state only to a process that asks for it (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); without it the first tile instruction faults.
inline bool request_amx_permission() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
  return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
  return false;
#endif
}
#endif

inline Detected detect() {
  Detected d;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, e = 0;
  if (!__get_cpuid(0, &a, &b, &c, &e)) return d;
  const unsigned max_leaf = a;
  __get_cpuid(1, &a, &b, &c, &e);
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  d.fma = (c >> 12) & 1;
  const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  d.os_avx = avx && (xcr0 & 0x6) == 0x6;            // SSE and AVX state
  d.os_avx512 = d.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  d.os_amx = (xcr0 & 0x60000) == 0x60000;           // XTILECFG, XTILEDATA
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &e);
    const unsigned max_sub = a;
    d.avx2 = (b >> 5) & 1;
    d.avx512f = (b >> 16) & 1;
    d.avx512dq = (b >> 17) & 1;
    d.avx512bw = (b >> 30) & 1;
    d.avx512vl = (b >> 31) & 1;
    d.avx512_vnni = (c >> 11) & 1;
    d.amx_bf16 = (e >> 22) & 1;
    d.amx_tile = (e >> 24) & 1;
    d.amx_int8 = (e >> 25) & 1;
    if (max_sub >= 1) {
      __get_cpuid_count(7, 1, &a, &b, &c, &e);
      d.avx_vnni = (a >> 4) & 1;
      d.avx512_bf16 = (a >> 5) & 1;
    }
  }
  unsigned ext = 0;
  __get_cpuid(0x80000000u, &ext, &b, &c, &e);
  if (ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      unsigned r[4] = {};
      __get_cpuid(0x80000002u + i, &r[0], &r[1], &r[2], &r[3]);
      for (int k = 0; k < 4; ++k)
        for (int byte = 0; byte < 4; ++byte)
          brand[i * 16 + unsigned(k) * 4 + unsigned(byte)] = char(r[k] >> (8 * byte));
    }
    d.brand = brand;
    while (!d.brand.empty() && (d.brand.back() == ' ' || d.brand.back() == '\0')) d.brand.pop_back();
    while (!d.brand.empty() && d.brand.front() == ' ') d.brand.erase(d.brand.begin());
  }
#endif
  return d;
}

// What the hardware and the OS allow, before the limit.
inline bool hardware_has(const Detected& d, Isa i) {
  const bool avx2 = d.os_avx && d.avx2 && d.fma;
  const bool avx512 = avx2 && d.os_avx512 && d.avx512f && d.avx512bw && d.avx512vl && d.avx512dq;
  switch (i) {
    case Isa::generic:
      return true;
    case Isa::avx2:
      return avx2;
    case Isa::avx512:
      return avx512;
    case Isa::avx_vnni:
      return avx2 && d.avx_vnni;
    case Isa::avx512_vnni:
      return avx512 && d.avx512_vnni;
    case Isa::avx512_bf16:
      return avx512 && d.avx512_bf16;
    case Isa::amx_int8:
      return avx512 && d.os_amx && d.amx_tile && d.amx_int8;
    case Isa::amx_bf16:
      return avx512 && d.os_amx && d.amx_tile && d.amx_bf16;
  }
  return false;
}

inline Isa parse_isa(std::string_view s) {
  std::string known;
  for (Isa i : all_isas) {
    if (s == name_of(i)) return i;
    known += known.empty() ? "" : ", ";
    known += name_of(i);
  }
  throw Error("HUBBLE_CPU_LIMIT: unknown instruction family '" + std::string(s) + "' (known: " + known + ")");
}

}  // namespace detail

// The machine's families after HUBBLE_CPU_LIMIT, read once per process.
class Features {
 public:
  explicit Features(Detected d, Isa limit = Isa::amx_bf16) : d_(std::move(d)), limit_(limit) {}

  // True when this process may run kernels of family i (the hardware, the OS and the limit agree).
  bool has(Isa i) const {
    if (int(i) > int(limit_) || !detail::hardware_has(d_, i)) return false;
#if defined(__x86_64__) || defined(__i386__)
    if (i == Isa::amx_int8 || i == Isa::amx_bf16) {
      static const bool granted = detail::request_amx_permission();
      return granted;
    }
#endif
    return true;
  }
  // True when the hardware has family i but HUBBLE_CPU_LIMIT hides it.
  bool hidden_by_limit(Isa i) const { return int(i) > int(limit_) && detail::hardware_has(d_, i); }
  Isa limit() const { return limit_; }
  const Detected& detected() const { return d_; }

 private:
  Detected d_;
  Isa limit_;
};

inline const Features& features() {
  static const Features f = [] {
    const char* env = std::getenv("HUBBLE_CPU_LIMIT");
    return Features(detail::detect(), env && *env ? detail::parse_isa(env) : Isa::amx_bf16);
  }();
  return f;
}

// One line for logs and benchmark headers: the CPU's name, the families this process may use,
// and those HUBBLE_CPU_LIMIT hides.
inline std::string describe(const Features& f = features()) {
  std::string s = f.detected().brand.empty() ? std::string("unknown CPU") : f.detected().brand;
  s += ":";
  std::string hidden;
  for (Isa i : all_isas) {
    if (i == Isa::generic) continue;
    if (f.has(i)) s += std::string(" ") + name_of(i);
    else if (f.hidden_by_limit(i)) hidden += std::string(" ") + name_of(i);
  }
  if (!hidden.empty()) s += " (hidden by HUBBLE_CPU_LIMIT=" + std::string(name_of(f.limit())) + ":" + hidden + ")";
  return s;
}

}  // namespace hubble::cpu
