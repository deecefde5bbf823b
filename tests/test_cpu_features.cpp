// Run-time CPU detection (kernels/cpu_features.hpp): the answers agree with the kernel's own view
// in /proc/cpuinfo, and HUBBLE_CPU_LIMIT hides the families above the one it names.
#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "hubble/kernels/cpu_features.hpp"
#include "support.hpp"

using namespace hubble;

namespace {
// The first "flags" line of /proc/cpuinfo, as a set; empty where there is none.
std::set<std::string> linux_cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> flags;
      for (std::string w; words >> w;) flags.insert(w);
      return flags;
    }
  return {};
}
}  // namespace

TEST_CASE("cpu features: CPUID agrees with /proc/cpuinfo on every family the kernels dispatch on") {
  const auto flags = linux_cpu_flags();
  if (flags.empty()) {
    MESSAGE("skipped: no /proc/cpuinfo flags line on this system");
    return;
  }
  const cpu::Detected d = cpu::detail::detect();
  const auto linux_has = [&](const char* f) { return flags.count(f) > 0; };
  CHECK(d.avx2 == linux_has("avx2"));
  CHECK(d.fma == linux_has("fma"));
  CHECK(d.avx512f == linux_has("avx512f"));
  CHECK(d.avx512bw == linux_has("avx512bw"));
  CHECK(d.avx512_vnni == linux_has("avx512_vnni"));
  CHECK(d.avx_vnni == linux_has("avx_vnni"));
  CHECK(d.avx512_bf16 == linux_has("avx512_bf16"));
  CHECK(d.amx_int8 == linux_has("amx_int8"));
  CHECK(d.amx_bf16 == linux_has("amx_bf16"));
  MESSAGE("this CPU: " << cpu::describe(cpu::Features(d)));
}

TEST_CASE("cpu features: a limit hides the families above it, and generic is always there") {
  const cpu::Detected d = cpu::detail::detect();
  const cpu::Features all(d), avx2_only(d, cpu::Isa::avx2), none(d, cpu::Isa::generic);
  CHECK(none.has(cpu::Isa::generic));
  for (cpu::Isa i : cpu::all_isas) {
    if (i == cpu::Isa::generic) continue;
    CHECK_FALSE(none.has(i));
    CHECK(none.hidden_by_limit(i) == cpu::detail::hardware_has(d, i));
  }
  CHECK(avx2_only.has(cpu::Isa::avx2) == cpu::detail::hardware_has(d, cpu::Isa::avx2));
  CHECK_FALSE(avx2_only.has(cpu::Isa::avx512_vnni));
  if (cpu::detail::hardware_has(d, cpu::Isa::avx512_vnni)) {
    CHECK(all.has(cpu::Isa::avx512_vnni));
    CHECK(cpu::describe(avx2_only).find("hidden by HUBBLE_CPU_LIMIT=avx2: avx512") != std::string::npos);
  }
  // A family implies what it is built on.
  if (all.has(cpu::Isa::avx512_vnni)) CHECK(all.has(cpu::Isa::avx512));
  if (all.has(cpu::Isa::avx512)) CHECK(all.has(cpu::Isa::avx2));
}

TEST_CASE("cpu features: an unknown HUBBLE_CPU_LIMIT name is refused with the known ones") {
  const std::string e = test_support::error_of([] { cpu::detail::parse_isa("avx1024"); });
  CHECK(e.find("unknown instruction family 'avx1024'") != std::string::npos);
  CHECK(e.find("avx512_vnni") != std::string::npos);
  CHECK(cpu::detail::parse_isa("avx_vnni") == cpu::Isa::avx_vnni);
}
