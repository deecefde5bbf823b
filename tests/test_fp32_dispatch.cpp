// The fp32 kernels' two copies (kernels/fp32/isa.hpp): the path picked at run time is the one the
// build and the CPU allow and is named; each available path matches Naive, forward (with the ReLU,
// the folded BatchNorm and the fused pool) and backward; the two copies agree with each other; and
// weights prepared on one path are never reused by the other. The rest of the suite runs on the
// path this machine picks; ctest's kernels.fp32_portable_path runs the kernel tests again with
// HUBBLE_CPU_LIMIT=avx2 (the portable copy).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "hubble/hubble.hpp"
#include "rel_error.hpp"

using namespace hubble;
using namespace hubble::kernels;
using test_support::rel_error;

namespace {
// Restores the path a test case found.
struct PathGuard {
  Fp32Path saved = fp32_path();
  ~PathGuard() { set_fp32_path(saved); }
};

std::vector<Fp32Path> available_paths() {
  std::vector<Fp32Path> out{Fp32Path::portable};
  if (fp32_path_available(Fp32Path::avx512)) out.push_back(Fp32Path::avx512);
  else {
    const std::string why = HUBBLE_FP32_DISPATCH ? "no AVX-512 on this CPU, or HUBBLE_CPU_LIMIT hides it"
                                                 : "this build has no run-time copy";
    const std::string text = "skipped: the avx512 fp32 path (" + why + ")";
    MESSAGE(text);
  }
  return out;
}

std::vector<float> random(std::size_t n, Rng& r) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.uniform(-1, 1));
  return v;
}

// Everything one variant computes on one geometry, in one vector (outputs of each entry point).
template <class V>
std::vector<float> run_all(const ConvGeometry& g, std::uint64_t seed) {
  Rng r(seed);
  const auto x = random(g.in_size(), r), w = random(g.patch() * g.f, r), b = random(g.f, r),
             dy = random(g.out_size(), r);
  auto scale = random(g.f, r);
  std::vector<float> out, y(g.out_size()), dw(w.size()), db(b.size()), dx(x.size());
  Workspace<float> ws;
  V::forward(g, x.data(), w.data(), b.data(), y.data(), ws);
  out.insert(out.end(), y.begin(), y.end());
  if constexpr (requires { V::forward_affine_relu(g, x.data(), w.data(), scale.data(), b.data(), y.data(), ws); }) {
    V::forward_affine_relu(g, x.data(), w.data(), scale.data(), b.data(), y.data(), ws);
  } else {  // Naive: the definition, scale * conv + shift, then max(., 0)
    std::vector<float> z(g.out_size()), zero(g.f, 0.0f);
    V::forward(g, x.data(), w.data(), zero.data(), z.data(), ws);
    for (std::size_t i = 0; i < z.size(); ++i) y[i] = std::max(0.0f, scale[i % g.f] * z[i] + b[i % g.f]);
  }
  out.insert(out.end(), y.begin(), y.end());
  V::backward(g, x.data(), w.data(), dy.data(), dw.data(), db.data(), dx.data(), ws);
  out.insert(out.end(), dw.begin(), dw.end());
  out.insert(out.end(), db.begin(), db.end());
  out.insert(out.end(), dx.begin(), dx.end());
  return out;
}

const ConvGeometry geometries[] = {
    {1, 29, 29, 3, 5, 2, 0, 0, 13, 13, 32},   // conv1-like, f a multiple of both NRs (weights read in place)
    {2, 13, 13, 20, 3, 1, 1, 1, 13, 13, 40},  // 3x3 same, f = 40: packed panels, Winograd at batch 2
    {3, 6, 6, 24, 3, 1, 0, 0, 4, 4, 72},      // conv4-like
    {2, 7, 9, 16, 1, 1, 0, 0, 7, 9, 24},      // 1x1
};
}  // namespace

TEST_CASE("fp32 kernels: the path is the one the build and the CPU allow, and is named") {
  const std::string path = std::string("fp32 kernels run: ") + fp32_path_name() + "; CPU: " + cpu::describe();
  MESSAGE(path);
  const bool avx512 = HUBBLE_FP32_DISPATCH && cpu::features().has(cpu::Isa::avx512);
  CHECK(fp32_path() == (avx512 ? Fp32Path::avx512 : Fp32Path::portable));
  CHECK(fp32_path_available(Fp32Path::portable));
  CHECK(fp32_path_available(Fp32Path::avx512) == avx512);
  if (!avx512) CHECK_THROWS_AS(set_fp32_path(Fp32Path::avx512), Error);
}

TEST_CASE_TEMPLATE("fp32 kernels: every available path matches Naive, and the copies agree", V, ImplicitGemm,
                   Winograd4x4, Tuned, PackedGemm) {
  PathGuard guard;
  const std::vector<Fp32Path> paths = available_paths();
  for (const ConvGeometry& g : geometries) {
    CAPTURE(g.k);
    CAPTURE(g.c);
    CAPTURE(g.f);
    const std::vector<float> ref = run_all<Naive>(g, 5);
    std::vector<std::vector<float>> by_path;
    for (Fp32Path p : paths) {
      set_fp32_path(p);
      CAPTURE(std::string(fp32_path_name()));
      by_path.push_back(run_all<V>(g, 5));
      CHECK(rel_error(ref, by_path.back()) < 1e-4);
    }
    if (by_path.size() == 2) CHECK(rel_error(by_path[0], by_path[1]) < 1e-5);
  }
}

TEST_CASE("fp32 kernels: weights prepared on one path are packed again on the other") {
  PathGuard guard;
  const ConvGeometry g = geometries[1];  // f = 40: ImplicitGemm and Winograd pack into NR-wide panels
  Rng r(8);
  const auto x = random(g.in_size(), r), w = random(g.patch() * g.f, r), b = random(g.f, r);
  std::vector<float> ref(g.out_size()), y(g.out_size());
  Workspace<float> ws_ref, ws_implicit, ws_winograd;
  Naive::forward(g, x.data(), w.data(), b.data(), ref.data(), ws_ref);
  const std::vector<Fp32Path> paths = available_paths();
  for (int round = 0; round < 2; ++round)
    for (Fp32Path p : paths) {  // portable, avx512, portable, avx512: one workspace each variant
      set_fp32_path(p);
      ImplicitGemm::forward(g, x.data(), w.data(), b.data(), y.data(), ws_implicit);
      CHECK(rel_error(ref, y) < 1e-4);
      Winograd4x4::forward(g, x.data(), w.data(), b.data(), y.data(), ws_winograd);
      CHECK(rel_error(ref, y) < 1e-4);
    }
}
