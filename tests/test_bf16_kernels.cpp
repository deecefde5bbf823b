// bfloat16 kernels (kernels/lowp/bf16*.hpp): the conversion, the GEMM on every path this CPU
// runs, and the convolution variant lowp::Bf16 against kernels::Naive, forward and backward.
//
// Tolerances, derived (unit roundoff u = 2^-24 for fp32, 2^-8 for bf16):
//   GEMM on bf16 inputs vs the exact (double) sum of the same bf16 products: k sequential fp32
//     additions plus the bias, |err| <= (k + 1) * 2^-24 * (sum |a b| + |bias|) (first order of gamma_k).
//   Convolution vs fp32 Naive: each operand rounded to bf16 moves by <= 2^-8 relative, a product by
//     <= 2^-7 + 2^-16, and both sides sum in fp32: |err| <= (2^-7 + 2^-15 + 2 (K + 2) 2^-24) * S,
//     S = sum |x w| + |b| (computed by Naive in double on |x|, |w|, |b|); K the terms summed.
//   Convolution vs Naive in double on the bf16-rounded operands: only fp32 summation is left,
//     |err| <= 2 (K + 2) 2^-24 * S: this one also catches a wrong rounding of the operands.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "hubble/hubble.hpp"
#include "hubble/kernels/lowp/bf16_conv.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace hubble;
using namespace hubble::kernels;
using namespace hubble::kernels::lowp;

namespace {

constexpr double fp32_u = 1.0 / (1 << 24);

// Every path in all_bf16_paths that this process can run; a MESSAGE for each one it cannot.
std::vector<Bf16Path> runnable_paths() {
  std::vector<Bf16Path> paths;
  for (Bf16Path p : all_bf16_paths) {
    const std::string why = bf16_path_unavailable(p);
    if (why.empty()) paths.push_back(p);
    else MESSAGE("skipped: " << why);
  }
  return paths;
}

ConvGeometry conv_geometry(int n, int h, int w, int c, int k, int s, bool same, int f) {
  ConvGeometry g;
  g.n = n;
  g.h = h;
  g.w = w;
  g.c = c;
  g.k = k;
  g.stride = s;
  g.f = f;
  if (same) {
    g.oh = (h + s - 1) / s;
    g.ow = (w + s - 1) / s;
    g.pad_top = std::max(0, (g.oh - 1) * s + k - h) / 2;
    g.pad_left = std::max(0, (g.ow - 1) * s + k - w) / 2;
  } else {
    g.oh = (h - k) / s + 1;
    g.ow = (w - k) / s + 1;
  }
  return g;
}
std::string describe(const ConvGeometry& g) {  // a stream: GCC 12 warns (-Wrestrict, falsely) on "n" + std::to_string
  std::ostringstream os;
  os << "n" << g.n << " " << g.h << "x" << g.w << "x" << g.c << " k" << g.k << " s" << g.stride << " pad " << g.pad_top
     << "," << g.pad_left << " f" << g.f;
  return os.str();
}

std::vector<float> random_vector(std::size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& e : v) e = float(rng.uniform(-scale, scale));
  return v;
}
std::vector<double> as_double(const std::vector<float>& v, bool absolute = false, bool bf16 = false) {
  std::vector<double> d(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float x = bf16 ? round_to_bf16(v[i]) : v[i];
    d[i] = absolute ? std::abs(double(x)) : double(x);
  }
  return d;
}

// Largest |got - want| / bound over the elements (<= 1 passes).
double worst_ratio(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale,
                   double rel) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) / (rel * scale[i] + 1e-300));
  return worst;
}

}  // namespace

TEST_CASE("bf16 conversion: round to nearest even, NaN, inf, denormals, zeros") {
  auto bits = [](float x) { return float_to_bf16_bits(x); };
  CHECK(bits(1.0f) == 0x3F80);
  CHECK(bits(-2.0f) == 0xC000);
  // Ties: 1 + 2^-8 lies halfway between 1 (mantissa ...0, even) and 1 + 2^-7 (...1): goes to 1.
  CHECK(bits(float_from_bits(0x3F808000u)) == 0x3F80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): goes up to even.
  CHECK(bits(float_from_bits(0x3F818000u)) == 0x3F82);
  CHECK(bits(float_from_bits(0x3F808001u)) == 0x3F81);       // just above the tie: up
  CHECK(bits(float_from_bits(0x3F807FFFu)) == 0x3F80);       // just below: down
  CHECK(bits(float_from_bits(0x3FFFFFFFu)) == 0x4000);       // carry into the exponent
  CHECK(bits(std::numeric_limits<float>::max()) == 0x7F80);  // rounds to +inf, as RNE must
  CHECK(bits(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(bits(-std::numeric_limits<float>::infinity()) == 0xFF80);
  // NaN stays a NaN, even one whose rounding would carry into the exponent (0x7FFFFFFF).
  for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0x7FFFFFFFu, 0xFF800001u, 0xFFC00000u}) {
    const float back = bf16_bits_to_float(bits(float_from_bits(nan)));
    CHECK(std::isnan(back));
    CHECK(std::signbit(back) == bool(nan >> 31));
  }
  // Denormals (|x| < 2^-126) become a zero of the same sign, as VCVTNEPS2BF16 does.
  CHECK(bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(bits(-float_from_bits(0x007FFFFFu)) == 0x8000);
  CHECK(bits(-0.0f) == 0x8000);
  CHECK(bits(std::numeric_limits<float>::min()) == 0x0080);  // the smallest normal is kept
  // bf16 -> fp32 is exact, and round_to_bf16 is within u = 2^-8 relative on normal numbers.
  CHECK(bf16_to_float(bfloat16{0x4049}) == 3.140625f);
  Rng rng(5);
  for (int i = 0; i < 10000; ++i) {
    const float x = float(rng.uniform(-1e6, 1e6));
    CHECK(std::abs(double(round_to_bf16(x)) - x) <= std::ldexp(std::abs(double(x)), -8));
  }
}

TEST_CASE("bf16 bulk conversion: the avx512_bf16 path and the portable loop give the same bits") {
  if (convert_path() != ConvertPath::avx512_bf16) {
    MESSAGE("skipped: avx512_bf16 conversion: this CPU lacks it (or HUBBLE_CPU_LIMIT hides it); portable only");
    CHECK_THROWS_AS(to_bf16(nullptr, nullptr, 0, ConvertPath::avx512_bf16), Error);
    return;
  }
  // 2^24 bit patterns spread over all 2^32 (every sign, exponent, NaN payload), plus special values,
  // in a length that leaves a tail for the portable remainder.
  std::vector<float> src((1u << 24) + 19);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = float_from_bits(std::uint32_t(i * 256u + (i % 251u)));
  const float specials[] = {0.f,
                            -0.f,
                            1.f,
                            float_from_bits(0x3F808000u),
                            float_from_bits(0x3F818000u),
                            std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            float_from_bits(0x7FFFFFFFu),
                            std::numeric_limits<float>::denorm_min()};
  std::copy(std::begin(specials), std::end(specials), src.begin());
  std::vector<bfloat16> portable(src.size()), vector(src.size());
  to_bf16(src.data(), portable.data(), src.size(), ConvertPath::portable);
  to_bf16(src.data(), vector.data(), src.size(), ConvertPath::avx512_bf16);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < src.size(); ++i) differ += !(portable[i] == vector[i]);
  CHECK(differ == 0);
  std::vector<float> back(src.size());
  to_float(vector.data(), back.data(), 64);
  CHECK(back[2] == 1.f);
}

TEST_CASE("bf16 GEMM: every path this CPU runs against a double reference on the bf16 inputs") {
  Rng rng(11);
  const auto paths = runnable_paths();
  REQUIRE(!paths.empty());
  int amx_outputs_differing = 0;  // of the 150 shapes' C matrices
  for (int m : {1, 7, 9, 70, 130})
    for (int k : {1, 2, 3, 75, 288, 1153})
      for (int n : {1, 31, 32, 33, 70}) {
        std::vector<bfloat16> a(std::size_t(m) * k), b(std::size_t(k) * n);
        for (auto& v : a) v = float_to_bf16(float(rng.uniform(-1, 1)));
        for (auto& v : b) v = float_to_bf16(float(rng.uniform(-1, 1)));
        const std::vector<float> bias = random_vector(std::size_t(n), rng);
        const PackedB packed = pack_b(k, n, b.data(), std::size_t(n));
        std::vector<double> want(std::size_t(m) * n), scale(want.size());
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double s = bias[std::size_t(j)], abs_sum = std::abs(s);
            for (int l = 0; l < k; ++l) {
              const double t =
                  double(bf16_to_float(a[std::size_t(i) * k + l])) * bf16_to_float(b[std::size_t(l) * n + j]);
              s += t;
              abs_sum += std::abs(t);
            }
            want[std::size_t(i) * n + j] = std::max(s, 0.0);  // relu
            scale[std::size_t(i) * n + j] = abs_sum;
          }
        std::vector<float> first;
        for (Bf16Path p : paths) {
          std::vector<float> c(std::size_t(m) * n + 5, -7.f);  // 5 guard values past the end
          gemm_bf16(m, a.data(), std::size_t(k), packed.view(), c.data(), std::size_t(n), {bias.data(), true}, p);
          CAPTURE(m);
          CAPTURE(k);
          CAPTURE(n);
          INFO("path ", std::string(name_of(p)));
          for (int g = 0; g < 5; ++g) CHECK(c[c.size() - 1 - std::size_t(g)] == -7.f);
          c.resize(std::size_t(m) * n);
          CHECK(worst_ratio(c, want, scale, (k + 1) * fp32_u) <= 1.0);
          // The FMA paths do VDPBF16PS's additions in its order: same bits on normal numbers
          // (measured on AMD Zen 4, where avx512_bf16 agrees too; a CPU whose VDPBF16PS rounds
          // otherwise would show here, and stay within the bound above).
          // AMX's TDPBF16PS adds in its own order (16 pairs a step): other bits, same bound.
          if (first.empty()) first = c;
          else if (p == Bf16Path::avx2) CHECK(c == first);
          else if (p == Bf16Path::amx_bf16) amx_outputs_differing += c != first;
          else WARN(c == first);
        }
      }
  if (bf16_path_runs(Bf16Path::amx_bf16))
    MESSAGE("amx_bf16: " << amx_outputs_differing << " of 150 C matrices differ from the first path's bits");
}

TEST_CASE("bf16 B packing: pack_b_rows (row-major fp32, both conversion paths) gives pack_b's words") {
  Rng rng(19);
  for (int k : {1, 2, 7, 64, 600})
    for (int n : {1, 32, 45, 96}) {
      const std::size_t ldb = std::size_t(n) + 3;
      std::vector<float> b(std::size_t(k) * ldb);
      for (auto& v : b) v = float(rng.uniform(-3, 3));
      b[0] = std::numeric_limits<float>::quiet_NaN();
      if (b.size() > 5) b[5] = float_from_bits(0x3F808000u);  // a tie
      std::vector<std::uint32_t> want(packed_b_words(k, n)), got(want.size(), 0xDEADBEEFu);
      pack_b(
          k, n, [&](int l, int j) { return b[std::size_t(l) * ldb + std::size_t(j)]; },
          reinterpret_cast<PairWord*>(want.data()));
      CAPTURE(k);
      CAPTURE(n);
      pack_b_rows(k, n, b.data(), ldb, reinterpret_cast<PairWord*>(got.data()), ConvertPath::portable);
      CHECK(got == want);
      if (convert_path() == ConvertPath::avx512_bf16) {
        std::fill(got.begin(), got.end(), 0xDEADBEEFu);
        pack_b_rows(k, n, b.data(), ldb, reinterpret_cast<PairWord*>(got.data()), ConvertPath::avx512_bf16);
        CHECK(got == want);
      }
    }
  if (convert_path() != ConvertPath::avx512_bf16) MESSAGE("skipped: pack_b_rows on avx512_bf16: this CPU lacks it");
}

TEST_CASE("bf16 GEMM: on all-denormal products, which VDPBF16PS flushes to zero, the paths differ by < k * 2^-126") {
  const auto paths = runnable_paths();
  const int m = 3, k = 64, n = 40;
  std::vector<bfloat16> a(std::size_t(m) * k), b(std::size_t(k) * n);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = float_to_bf16(1e-20f * float(1 + i % 5));
  for (std::size_t i = 0; i < b.size(); ++i)
    b[i] = float_to_bf16(1e-19f * float(1 + i % 3));  // products ~1e-39: denormal
  const PackedB packed = pack_b(k, n, b.data(), std::size_t(n));
  std::vector<float> reference;
  for (Bf16Path p : paths) {
    std::vector<float> c(std::size_t(m) * n);
    gemm_bf16(m, a.data(), std::size_t(k), packed.view(), c.data(), std::size_t(n), {}, p);
    if (reference.empty()) {
      reference = c;
      CHECK(c[0] > 0.f);  // generic keeps the denormal products
      continue;
    }
    INFO("path ", std::string(name_of(p)));
    double worst = 0;
    for (std::size_t i = 0; i < c.size(); ++i) worst = std::max(worst, std::abs(double(c[i]) - reference[i]));
    CHECK(worst <= k * std::ldexp(1.0, -126));
    if (p == Bf16Path::avx512_bf16) MESSAGE("avx512_bf16 vs generic on denormal products: max |diff| " << worst);
  }
}

TEST_CASE("bf16 path choice: names, forcing, refusals") {
  CHECK(std::string(name_of(Bf16Path::avx512_bf16)) == "avx512_bf16");
  CHECK(std::string(name_of(Bf16Path::amx_bf16)) == "amx_bf16");
  const Bf16Path best = best_bf16_path();
  CHECK(std::string(chosen_bf16_path()) == name_of(best));
  {
    ForcedBf16Path forced(Bf16Path::generic);
    CHECK(std::string(chosen_bf16_path()) == "generic");
  }
  CHECK(active_bf16_path() == best);
  // The order of preference: AMX tiles, then VDPBF16PS, then FMA.
  if (cpu::features().has(cpu::Isa::amx_bf16)) CHECK(best == Bf16Path::amx_bf16);
  else {
    MESSAGE("skipped: amx_bf16 as the default: this CPU lacks it (or HUBBLE_CPU_LIMIT hides it)");
    CHECK_THROWS_WITH_AS(force_bf16_path(Bf16Path::amx_bf16), doctest::Contains("amx_bf16"), Error);
  }
  if (cpu::features().has(cpu::Isa::avx512_bf16)) {
    if (!cpu::features().has(cpu::Isa::amx_bf16)) CHECK(best == Bf16Path::avx512_bf16);
  } else {
    MESSAGE("skipped: avx512_bf16 as the default: this CPU lacks it (or HUBBLE_CPU_LIMIT hides it)");
    CHECK_THROWS_AS(force_bf16_path(Bf16Path::avx512_bf16), Error);
  }
  MESSAGE("bf16 path chosen here: " << std::string(chosen_bf16_path()) << " (" << cpu::describe() << ")");
}

TEST_CASE("bf16 GEMM and conv: bad input is a clear hubble::Error") {
  std::vector<bfloat16> a(8);
  CHECK_THROWS_WITH_AS(pack_b(0, 4, a.data(), 4), doctest::Contains("at least 1 x 1"), Error);
  CHECK_THROWS_WITH_AS(pack_b(2, 4, a.data(), 3), doctest::Contains("leading dimension"), Error);
  const PackedB packed = pack_b(2, 4, a.data(), 4);
  std::vector<float> c(8);
  CHECK_THROWS_WITH_AS(gemm_bf16(2, a.data(), 1, packed.view(), c.data(), 4), doctest::Contains("lda"), Error);
  CHECK_THROWS_WITH_AS(gemm_bf16(2, nullptr, 2, packed.view(), c.data(), 4), doctest::Contains("null"), Error);
  ConvGeometry g = conv_geometry(1, 8, 8, 2, 3, 1, false, 4);
  std::vector<float> x(g.in_size()), w(g.patch() * g.f), b(g.f), y(g.out_size());
  Workspace<float> ws;
  ConvGeometry bad = g;
  bad.c = 0;
  CHECK_THROWS_WITH_AS(Bf16::forward(bad, x.data(), w.data(), b.data(), y.data(), ws), doctest::Contains("positive"),
                       Error);
  bad = g;
  bad.pad_top = 3;
  CHECK_THROWS_WITH_AS(Bf16::forward(bad, x.data(), w.data(), b.data(), y.data(), ws), doctest::Contains("padding"),
                       Error);
  bad = g;
  bad.oh = 9;
  CHECK_THROWS_WITH_AS(Bf16::backward(bad, x.data(), w.data(), y.data(), nullptr, nullptr, x.data(), ws),
                       doctest::Contains("reaches past"), Error);
  CHECK_THROWS_WITH_AS(Bf16::forward(g, nullptr, w.data(), b.data(), y.data(), ws), doctest::Contains("null"), Error);
}

namespace {

struct ConvCase {
  ConvGeometry g;
  std::vector<float> x, w, b, dy;
};

struct ConvResult {
  std::vector<float> y, y_relu, dw, db, dx, pooled;  // pooled: Conv2D + ReLU + MaxPool<2> in one pass
  std::vector<std::uint8_t> argmax;
  bool operator==(const ConvResult&) const = default;
};

ConvResult run_bf16(const ConvCase& t) {
  ConvResult r;
  const ConvGeometry& g = t.g;
  r.y.assign(g.out_size(), 0.f);
  r.y_relu.assign(g.out_size(), 0.f);
  r.dw.assign(t.w.size(), 0.f);
  r.db.assign(g.f, 0.f);
  r.dx.assign(g.in_size(), 0.f);
  Workspace<float> ws;
  Bf16::forward(g, t.x.data(), t.w.data(), t.b.data(), r.y.data(), ws);
  Bf16::forward_relu(g, t.x.data(), t.w.data(), t.b.data(), r.y_relu.data(), ws);  // from the cached panels
  Bf16::backward(g, t.x.data(), t.w.data(), t.dy.data(), r.dw.data(), r.db.data(), r.dx.data(), ws);
  r.pooled.assign(std::size_t(g.n) * std::size_t(g.oh / 2) * std::size_t(g.ow / 2) * std::size_t(g.f), -1.f);
  r.argmax.assign(r.pooled.size(), 255);
  if (!r.pooled.empty())
    CHECK(Bf16::forward_relu_maxpool(g, t.x.data(), t.w.data(), t.b.data(), 2, r.pooled.data(), r.argmax.data(), ws));
  return r;
}

// Checks one result against Naive: in fp32 with the bf16 bound, and in double on the
// bf16-rounded operands with the fp32-summation bound.
void check_against_naive(const ConvCase& t, const ConvResult& r) {
  const ConvGeometry& g = t.g;
  Workspace<double> wsd;
  auto dforward = [&](bool absolute, bool rounded) {
    std::vector<double> y(g.out_size());
    const auto x = as_double(t.x, absolute, rounded), w = as_double(t.w, absolute, rounded),
               b = as_double(t.b, absolute);
    Naive::forward(g, x.data(), w.data(), b.data(), y.data(), wsd);
    return y;
  };
  struct Grads {
    std::vector<double> dw, db, dx;
  };
  auto dbackward = [&](bool absolute, bool rounded) {
    Grads d{std::vector<double>(t.w.size()), std::vector<double>(g.f), std::vector<double>(g.in_size())};
    const auto x = as_double(t.x, absolute, rounded), w = as_double(t.w, absolute, rounded),
               dy = as_double(t.dy, absolute, rounded);
    Naive::backward(g, x.data(), w.data(), dy.data(), d.dw.data(), d.db.data(), d.dx.data(), wsd);
    return d;
  };
  // The fp32 reference, as every other variant is checked.
  std::vector<float> y32(g.out_size()), dw32(t.w.size()), db32(g.f), dx32(g.in_size());
  Workspace<float> ws;
  Naive::forward(g, t.x.data(), t.w.data(), t.b.data(), y32.data(), ws);
  Naive::backward(g, t.x.data(), t.w.data(), t.dy.data(), dw32.data(), db32.data(), dx32.data(), ws);
  auto to_d = [](const std::vector<float>& v) { return as_double(v); };
  const auto s_y = dforward(true, false);
  const Grads s = dbackward(true, false);
  // Terms summed per element: forward K = k*k*c, dw P = n*oh*ow, dx f * ceil(k/s)^2, db P.
  const double K_fwd = double(g.patch()), K_dw = double(g.out_pixels()),
               K_dx = double(g.f) * std::ceil(double(g.k) / g.stride) * std::ceil(double(g.k) / g.stride);
  auto bf16_rel = [](double terms) { return std::ldexp(1.0, -7) + std::ldexp(1.0, -15) + 2 * (terms + 2) * fp32_u; };
  auto fp32_rel = [](double terms) { return 2 * (terms + 2) * fp32_u; };
  std::vector<double> y_relu32(y32.size());
  for (std::size_t i = 0; i < y32.size(); ++i) y_relu32[i] = std::max(double(y32[i]), 0.0);
  CHECK(worst_ratio(r.y, to_d(y32), s_y, bf16_rel(K_fwd)) <= 1.0);
  CHECK(worst_ratio(r.y_relu, y_relu32, s_y, bf16_rel(K_fwd)) <= 1.0);
  CHECK(worst_ratio(r.dw, to_d(dw32), s.dw, bf16_rel(K_dw)) <= 1.0);
  CHECK(worst_ratio(r.dx, to_d(dx32), s.dx, bf16_rel(K_dx)) <= 1.0);
  CHECK(worst_ratio(r.db, to_d(db32), s.db, fp32_rel(K_dw)) <= 1.0);  // db is an fp32 sum
  // On the bf16-rounded operands only fp32 summation is left.
  const auto y_rounded = dforward(false, true);
  const Grads d_rounded = dbackward(false, true);
  CHECK(worst_ratio(r.y, y_rounded, s_y, fp32_rel(K_fwd)) <= 1.0);
  CHECK(worst_ratio(r.dw, d_rounded.dw, s.dw, fp32_rel(K_dw)) <= 1.0);
  CHECK(worst_ratio(r.dx, d_rounded.dx, s.dx, fp32_rel(K_dx)) <= 1.0);
  // And bf16 is not fp32 in disguise: the forward differs from Naive's fp32 somewhere.
  CHECK(r.y != y32);
}

ConvCase make_case(const ConvGeometry& g, std::uint64_t seed) {
  Rng rng(seed);
  ConvCase t{g, random_vector(g.in_size(), rng),
             random_vector(g.patch() * g.f, rng, 1.0 / std::sqrt(double(g.patch()))), random_vector(g.f, rng, 0.1),
             random_vector(g.out_size(), rng)};
  return t;
}

}  // namespace

TEST_CASE("bf16 conv matches Naive, forward and backward, on every path this CPU runs") {
  const ConvGeometry shapes[] = {
      conv_geometry(1, 20, 20, 3, 5, 2, true, 32),    // conv1-like: 5x5 stride 2, padding, batch 1
      conv_geometry(3, 17, 15, 3, 5, 2, false, 8),    // 5x5 stride 2 valid, odd sizes, several images
      conv_geometry(2, 13, 13, 32, 3, 1, true, 64),   // 3x3 same
      conv_geometry(4, 9, 9, 7, 3, 1, false, 33),     // odd K = 63 and f = 33 (padding of k and of panels)
      conv_geometry(1, 6, 6, 128, 3, 1, false, 256),  // conv4 at batch 1
      conv_geometry(5, 45, 45, 4, 3, 2, true, 5),     // 3x3 stride 2 same; dw's sum over 2645 pixels split in 2 chunks
      // Rows of 16 output pixels or more: amx_bf16 loads them straight from the input (bf16_conv_amx.hpp)
      conv_geometry(2, 40, 38, 3, 5, 2, false, 32),   // conv1-like: 8-pair blocks, 17 columns (overlapping tiles)
      conv_geometry(2, 20, 19, 32, 3, 1, false, 48),  // conv2-like: 16-pair blocks, f = 48 (a half panel), odd rows
      conv_geometry(3, 61, 62, 3, 5, 2, false, 16),   // dw sums 2,523 pixels (odd) in 2 chunks
      conv_geometry(2, 18, 20, 16, 3, 1, true, 32),   // stride 1: dx as the direct forward of padded dy
      conv_geometry(1, 24, 17, 5, 3, 1, false, 8),    // the same with 12-pair blocks and 5 channels of dx
  };
  const auto paths = runnable_paths();
  for (const ConvGeometry& g : shapes) {
    const ConvCase t = make_case(g, 7);
    ConvResult first;
    for (Bf16Path p : paths) {
      ForcedBf16Path forced(p);
      INFO(describe(g), " path ", std::string(name_of(p)));
      const ConvResult r = run_bf16(t);
      check_against_naive(t, r);
      if (first.y.empty()) first = r;
      else if (p == Bf16Path::avx2) CHECK(r == first);        // FMA paths: the same additions, the same bits
      else if (p == Bf16Path::avx512_bf16) WARN(r == first);  // measured equal on Zen 4 (see bf16_gemm.hpp)
      // amx_bf16 adds in its own order: checked against Naive's bound above, not for bits
    }
  }
}

TEST_CASE("bf16 conv gives the same bits on 1, 2 and 3 threads") {
#ifdef _OPENMP
  for (const ConvGeometry& g :
       {conv_geometry(1, 40, 40, 3, 5, 2, false, 32), conv_geometry(4, 36, 36, 8, 3, 1, true, 16)}) {
    const ConvCase t = make_case(g, 13);
    auto run = [&](int threads) {
      const int before = omp_get_max_threads();
      omp_set_num_threads(threads);
      ConvResult r = run_bf16(t);
      omp_set_num_threads(before);
      return r;
    };
    const ConvResult one = run(1);
    INFO(describe(g));
    CHECK(one == run(2));
    CHECK(one == run(3));
  }
#else
  MESSAGE("skipped: built without OpenMP: nothing to compare");
#endif
}

TEST_CASE(
    "bf16 conv: Conv2D + ReLU + MaxPool<P> in one pass gives the pooled forward_relu, maxima positions included") {
  for (const ConvGeometry& g :
       {conv_geometry(2, 21, 21, 3, 5, 2, true, 32), conv_geometry(3, 13, 12, 5, 3, 1, false, 40),
        conv_geometry(1, 18, 18, 4, 3, 1, true, 9), conv_geometry(1, 40, 40, 3, 5, 2, false, 32),
        conv_geometry(2, 35, 37, 32, 3, 1, false, 48)})
    for (Bf16Path path : runnable_paths())
      for (int P : {2, 4}) {
        ForcedBf16Path forced(path);
        const ConvCase t = make_case(g, 21);
        std::vector<float> y(g.out_size());
        Workspace<float> ws;
        Bf16::forward_relu(g, t.x.data(), t.w.data(), t.b.data(), y.data(), ws);
        // S = sum |x w| + |b| per output (Naive in double on |x|, |w|, |b|), for the bound below.
        std::vector<double> s(g.out_size());
        Workspace<double> wsd;
        const auto ax = as_double(t.x, true), aw = as_double(t.w, true), ab = as_double(t.b, true);
        Naive::forward(g, ax.data(), aw.data(), ab.data(), s.data(), wsd);
        const int ph = g.oh / P, pw = g.ow / P;
        std::vector<float> want(std::size_t(g.n) * ph * pw * g.f), got(want.size(), -1.f);
        std::vector<double> slack(want.size()), gap(want.size());  // bound; margin of the maximum over the rest
        std::vector<std::uint8_t> want_arg(want.size()), got_arg(want.size(), 255);
        for (int n = 0; n < g.n; ++n)
          for (int i = 0; i < ph; ++i)
            for (int j = 0; j < pw; ++j)
              for (int f = 0; f < g.f; ++f) {
                const std::size_t o = ((std::size_t(n) * ph + i) * pw + j) * g.f + f;
                want[o] = -1;
                float second = -1;
                for (int q = 0; q < P * P; ++q) {
                  const std::size_t at = ((std::size_t(n) * g.oh + i * P + q / P) * g.ow + j * P + q % P) * g.f + f;
                  const float v = y[at];
                  slack[o] = std::max(slack[o], 2 * (double(g.patch()) + 2) * fp32_u * s[at]);
                  if (v > want[o]) {
                    second = want[o];
                    want[o] = v;
                    want_arg[o] = std::uint8_t(q);
                  } else {
                    second = std::max(second, v);
                  }
                }
                gap[o] = double(want[o]) - double(second);
              }
        Workspace<float> ws2;
        INFO(describe(g), " P ", P, " path ", std::string(name_of(path)));
        REQUIRE(Bf16::forward_relu_maxpool(g, t.x.data(), t.w.data(), t.b.data(), P, got.data(), got_arg.data(), ws2));
        const int run_k = g.k * g.c + g.k * g.c % 2;
        const bool same_sums = path != Bf16Path::amx_bf16 || bf16_conv_detail::direct_applies(g, run_k, 0) ==
                                                                 bf16_conv_detail::direct_applies(g, run_k, P);
        if (same_sums) {  // the same sums in the same order: the same bits
          CHECK(got == want);
          CHECK(got_arg == want_arg);
        } else {  // on AMX, a strided-tile forward_relu beside a packed pool: the same products, summed in
                  // another order, so within two fp32 summation bounds; maxima clear of that agree
          std::size_t off = 0, moved = 0;
          for (std::size_t o = 0; o < want.size(); ++o) {
            off += std::abs(double(got[o]) - double(want[o])) > 2 * slack[o];
            moved += gap[o] > 4 * slack[o] && got_arg[o] != want_arg[o];
          }
          CHECK(off == 0);
          CHECK(moved == 0);
        }
      }
  const ConvGeometry g = conv_geometry(1, 9, 9, 2, 3, 1, false, 4);
  std::vector<float> x(g.in_size()), w(g.patch() * g.f), b(g.f), y(g.out_size());
  std::vector<std::uint8_t> arg(y.size());
  Workspace<float> ws;
  CHECK_FALSE(Bf16::forward_relu_maxpool(g, x.data(), w.data(), b.data(), 3, y.data(), arg.data(),
                                         ws));  // 9 does not divide 64
}

TEST_CASE("bf16 conv sees weights changed in place (prepared-panel cache)") {
  const ConvGeometry g = conv_geometry(2, 10, 10, 3, 3, 1, false, 6);
  ConvCase t = make_case(g, 3);
  std::vector<float> y0(g.out_size()), y1(g.out_size());
  Workspace<float> ws, ws_fresh;
  Bf16::forward(g, t.x.data(), t.w.data(), t.b.data(), y0.data(), ws);
  t.w[5] += 0.5f;
  Bf16::forward(g, t.x.data(), t.w.data(), t.b.data(), y0.data(), ws);        // must repack
  Bf16::forward(g, t.x.data(), t.w.data(), t.b.data(), y1.data(), ws_fresh);  // packed from scratch
  CHECK(y0 == y1);
}

TEST_CASE("bf16 conv as a Conv2D kernel: a small network trains (loss goes down)") {
  // Conv2D + ReLU + MaxPool<2> runs as one forward_relu_maxpool, Conv2D + ReLU as forward_relu.
  using Net = Sequential<Input<16, 16, 3>, Conv2D<8, 5, 1, Same, lowp::Bf16>, ReLU, MaxPool<2>,
                         Conv2D<16, 3, 1, lowp::Bf16>, ReLU, GlobalAvgPool, Dense<4>, Softmax>;
  Net net(3);
  Rng rng(9);
  Tensor<float> x(16, 16, 16, 3);
  std::vector<int> labels(16);
  for (int n = 0; n < 16; ++n) {  // each class a blob in its own quadrant
    labels[std::size_t(n)] = n % 4;
    const double cy = 4 + 8 * (n % 2), cx = 4 + 8 * (n % 4 / 2);
    for (int y = 0; y < 16; ++y)
      for (int xx = 0; xx < 16; ++xx)
        for (int c = 0; c < 3; ++c)
          x(n, y, xx, c) = float(0.1 * rng.uniform() + std::exp(-((y - cy) * (y - cy) + (xx - cx) * (xx - cx)) / 8.0));
  }
  Adam<float> adam;
  const double first = net.train_step(x, labels, adam).loss;
  double last = first;
  for (int step = 0; step < 60; ++step) last = net.train_step(x, labels, adam).loss;
  INFO("loss ", first, " -> ", last, " on path ", std::string(chosen_bf16_path()));
  CHECK(last < 0.5 * first);
}

TEST_CASE("bf16 GEMM: a batch-1 shape (16 output pixels, conv4) gives work to both threads") {
#ifdef _OPENMP
  // conv4 at batch 1: 16 rows (one row block), K = 1152, 256 columns (8 B panels): the driver
  // splits the panels into groups so that both threads get tiles.
  const int m = 16, k = 1152, n = 256;
  std::vector<bfloat16> b(std::size_t(k) * n, float_to_bf16(0.5f));
  const PackedB packed = pack_b(k, n, b.data(), std::size_t(n));
  std::vector<float> c(std::size_t(m) * n);
  std::vector<int> seen(64, 0);
  const int before = omp_get_max_threads();
  omp_set_num_threads(2);
  gemm_bf16_packed(
      m, packed.view(),
      [&](int, int, int p0, int p1, PairWord* ap) {
        const int t = omp_get_thread_num();
#pragma omp atomic
        seen[std::size_t(t)] += 1;
        for (int p = p0; p < p1; ++p)
          for (int r = 0; r < gemm_mr; ++r)
            ap[std::size_t(p - p0) * gemm_mr + std::size_t(r)] = make_pair_word(0x3F80, 0x3F80);
      },
      c.data(), std::size_t(n), {}, active_bf16_path());
  omp_set_num_threads(before);
  CHECK(seen[0] > 0);
  CHECK(seen[1] > 0);
  CHECK(c[0] == doctest::Approx(0.5 * k));  // sum of 1 x 0.5 over k
#else
  MESSAGE("skipped: built without OpenMP: one thread");
#endif
}
