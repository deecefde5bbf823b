// The ISA-dependent half of gemm.hpp: the SIMD micro-kernels, the blocking and packing they
// fix, and the products built on them. Compiled once per instruction set by
// fp32/instantiate.inl (see fp32/isa.hpp); no include guard. Read gemm.hpp first.
namespace gemm {
using ::hubble::kernels::gemm::APanel;
using ::hubble::kernels::gemm::Epilogue;
using ::hubble::kernels::gemm::GenericMicrokernel;
using ::hubble::kernels::gemm::Trans;
namespace detail {
using ::hubble::kernels::gemm::detail::finish;
using ::hubble::kernels::gemm::detail::store_tile;
}  // namespace detail

#if HUBBLE_FP32_AVX2
// AVX2 + FMA, float: a 6 x 16 tile = 12 ymm accumulators, 2 ymm of B, 1 broadcast (15 of 16
// registers); per k: 6 broadcasts, 2 loads, 12 FMAs.
struct Avx2Microkernel {
  static constexpr int MR = 6, NR = 16;
  static constexpr const char* isa = "avx2";
  HUBBLE_MICROKERNEL_INLINE static void run(const APanel<float>& a, const float* b, float* c, std::ptrdiff_t ldc, int mr,
                                            int nr, const Epilogue<float>& ep, std::ptrdiff_t ldb = NR) {
    if (mr < MR) return run_short(a, b, c, ldc, mr, nr, ep, ldb);
    __m256 acc[MR][2];
    accumulate<MR>(a, b, ldb, acc);
    if (nr == NR) {
      const __m256 zero = _mm256_setzero_ps();
      const __m256 bias0 = ep.bias ? _mm256_loadu_ps(ep.bias) : zero, bias1 = ep.bias ? _mm256_loadu_ps(ep.bias + 8) : zero;
      const __m256 s0 = ep.scale ? _mm256_loadu_ps(ep.scale) : zero, s1 = ep.scale ? _mm256_loadu_ps(ep.scale + 8) : zero;
      for (int r = 0; r < MR; ++r) {
        float* cr = c + r * ldc;
        __m256 v0, v1;
        if (ep.scale) {  // scale * (product (+ C)) + bias, as detail::finish
          v0 = acc[r][0], v1 = acc[r][1];
          if (ep.accumulate) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8)); }
          v0 = _mm256_fmadd_ps(v0, s0, bias0), v1 = _mm256_fmadd_ps(v1, s1, bias1);
        } else {
          v0 = _mm256_add_ps(acc[r][0], bias0), v1 = _mm256_add_ps(acc[r][1], bias1);
          if (ep.accumulate) { v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr)); v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8)); }
        }
        if (ep.relu) { v0 = _mm256_max_ps(v0, zero); v1 = _mm256_max_ps(v1, zero); }
        _mm256_storeu_ps(cr, v0);
        _mm256_storeu_ps(cr + 8, v1);
      }
      return;
    }
    store_partial(acc, c, ldc, mr, nr, ep);
  }

 private:
  // Rows [0, R) of the tile: acc[r] += A row r * B over every segment of k.
  template <int R>
  HUBBLE_MICROKERNEL_INLINE static void accumulate(const APanel<float>& a, const float* b, std::ptrdiff_t ldb,
                                                   __m256 (&acc)[MR][2]) {
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int s = 0; s < a.segments; ++s) {
      const float* p[R];
      for (int r = 0; r < R; ++r) p[r] = a.rows[r] + a.seg_off[s];
      const std::ptrdiff_t step = a.step;
      std::ptrdiff_t idx = 0;
      HUBBLE_UNROLL_4
      for (int t = 0; t < a.seg_len; ++t, idx += step, b += ldb) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        for (int r = 0; r < R; ++r) {
          const __m256 av = _mm256_broadcast_ss(p[r] + idx);
          acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
      }
    }
  }
  static void store_partial(const __m256 (&acc)[MR][2], float* c, std::ptrdiff_t ldc, int mr, int nr,
                            const Epilogue<float>& ep) {
    alignas(64) float tmp[MR * NR];
    for (int r = 0; r < mr; ++r) { _mm256_store_ps(tmp + r * NR, acc[r][0]); _mm256_store_ps(tmp + r * NR + 8, acc[r][1]); }
    detail::store_tile<float, MR, NR>(tmp, c, ldc, mr, nr, ep);
  }
  // A tile of mr < MR rows (the last row block of a product): only its rows are computed, each
  // with the same sums in the same order as in a full tile, so the results are the same bits.
  // Out of line: it runs once per product and panel, and inlining every row count would grow
  // every caller.
  [[gnu::noinline]] static void run_short(const APanel<float>& a, const float* b, float* c, std::ptrdiff_t ldc, int mr,
                                          int nr, const Epilogue<float>& ep, std::ptrdiff_t ldb) {
    __m256 acc[MR][2] = {};  // rows past mr stay unused; zeroed so that no compiler sees them unset
    switch (mr) {
      case 1: accumulate<1>(a, b, ldb, acc); break;
      case 2: accumulate<2>(a, b, ldb, acc); break;
      case 3: accumulate<3>(a, b, ldb, acc); break;
      case 4: accumulate<4>(a, b, ldb, acc); break;
      case 5: accumulate<5>(a, b, ldb, acc); break;
      default: return;
    }
    store_partial(acc, c, ldc, mr, nr, ep);
  }
};
#endif

#if HUBBLE_FP32_AVX512
// AVX-512, float: an 8 x 32 tile = 16 zmm accumulators (of 32 registers); per k: 8 broadcasts,
// 2 loads, 16 FMAs. On Zen 4 a zmm FMA is two 256-bit halves, so the gain over AVX2 is fewer
// instructions per flop, not more flops per cycle.
struct Avx512Microkernel {
  static constexpr int MR = 8, NR = 32;
  static constexpr const char* isa = "avx512";
  HUBBLE_MICROKERNEL_INLINE static void run(const APanel<float>& a, const float* b, float* c, std::ptrdiff_t ldc, int mr,
                                            int nr, const Epilogue<float>& ep, std::ptrdiff_t ldb = NR) {
    if (mr < MR) return run_short(a, b, c, ldc, mr, nr, ep, ldb);
    __m512 acc[MR][2];
    accumulate<MR>(a, b, ldb, acc);
    if (nr == NR) {
      const __m512 zero = _mm512_setzero_ps();
      const __m512 bias0 = ep.bias ? _mm512_loadu_ps(ep.bias) : zero, bias1 = ep.bias ? _mm512_loadu_ps(ep.bias + 16) : zero;
      const __m512 s0 = ep.scale ? _mm512_loadu_ps(ep.scale) : zero, s1 = ep.scale ? _mm512_loadu_ps(ep.scale + 16) : zero;
      for (int r = 0; r < MR; ++r) {
        float* cr = c + r * ldc;
        __m512 v0, v1;
        if (ep.scale) {  // scale * (product (+ C)) + bias, as detail::finish
          v0 = acc[r][0], v1 = acc[r][1];
          if (ep.accumulate) { v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr)); v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16)); }
          v0 = _mm512_fmadd_ps(v0, s0, bias0), v1 = _mm512_fmadd_ps(v1, s1, bias1);
        } else {
          v0 = _mm512_add_ps(acc[r][0], bias0), v1 = _mm512_add_ps(acc[r][1], bias1);
          if (ep.accumulate) { v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr)); v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16)); }
        }
        if (ep.relu) {  // the masked form: GCC 12 warns on _mm512_max_ps under a target pragma (_mm512_undefined_ps)
          v0 = _mm512_maskz_max_ps(__mmask16(0xFFFF), v0, zero);
          v1 = _mm512_maskz_max_ps(__mmask16(0xFFFF), v1, zero);
        }
        _mm512_storeu_ps(cr, v0);
        _mm512_storeu_ps(cr + 16, v1);
      }
      return;
    }
    store_partial(acc, c, ldc, mr, nr, ep);
  }

 private:
  // Rows [0, R) of the tile: acc[r] += A row r * B over every segment of k.
  template <int R>
  HUBBLE_MICROKERNEL_INLINE static void accumulate(const APanel<float>& a, const float* b, std::ptrdiff_t ldb,
                                                   __m512 (&acc)[MR][2]) {
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int s = 0; s < a.segments; ++s) {
      const float* p[R];
      for (int r = 0; r < R; ++r) p[r] = a.rows[r] + a.seg_off[s];
      const std::ptrdiff_t step = a.step;
      std::ptrdiff_t idx = 0;
      HUBBLE_UNROLL_4
      for (int t = 0; t < a.seg_len; ++t, idx += step, b += ldb) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        for (int r = 0; r < R; ++r) {
          const __m512 av = _mm512_set1_ps(p[r][idx]);
          acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
      }
    }
  }
  static void store_partial(const __m512 (&acc)[MR][2], float* c, std::ptrdiff_t ldc, int mr, int nr,
                            const Epilogue<float>& ep) {
    alignas(64) float tmp[MR * NR];
    for (int r = 0; r < mr; ++r) { _mm512_store_ps(tmp + r * NR, acc[r][0]); _mm512_store_ps(tmp + r * NR + 16, acc[r][1]); }
    detail::store_tile<float, MR, NR>(tmp, c, ldc, mr, nr, ep);
  }
  // A tile of mr < MR rows (the last row block of a product): only its rows are computed, each
  // with the same sums in the same order as in a full tile, so the results are the same bits.
  // Out of line: it runs once per product and panel, and inlining every row count would grow
  // every caller.
  [[gnu::noinline]] static void run_short(const APanel<float>& a, const float* b, float* c, std::ptrdiff_t ldc, int mr,
                                          int nr, const Epilogue<float>& ep, std::ptrdiff_t ldb) {
    __m512 acc[MR][2] = {};  // rows past mr stay unused; zeroed so that no compiler sees them unset
    switch (mr) {
      case 1: accumulate<1>(a, b, ldb, acc); break;
      case 2: accumulate<2>(a, b, ldb, acc); break;
      case 3: accumulate<3>(a, b, ldb, acc); break;
      case 4: accumulate<4>(a, b, ldb, acc); break;
      case 5: accumulate<5>(a, b, ldb, acc); break;
      case 6: accumulate<6>(a, b, ldb, acc); break;
      case 7: accumulate<7>(a, b, ldb, acc); break;
      default: return;
    }
    store_partial(acc, c, ldc, mr, nr, ep);
  }
};
#endif

// The micro-kernel for T on this build.
template <class T>
struct Microkernel : GenericMicrokernel<T, 4, 8> {};
#if HUBBLE_FP32_AVX512
template <>
struct Microkernel<float> : Avx512Microkernel {};
#elif HUBBLE_FP32_AVX2
template <>
struct Microkernel<float> : Avx2Microkernel {};
#endif

// Cache blocking for Microkernel<T>: a B panel of KC x NR stays in L1 (16 KiB for float), an A
// block of MC x KC in L2 (~120 KiB), a B block of KC x NC in L2/L3.
template <class T>
struct Blocking {
  static constexpr int MR = Microkernel<T>::MR, NR = Microkernel<T>::NR;
  static constexpr int KC = 256 * 4 / int(sizeof(T));
  static constexpr int MC = MR * (120 / MR);
  static constexpr int NC = NR * (384 / NR);
};

// ---- packing -----------------------------------------------------------------------------------
// B block rows [k0, k0+kc) x columns [j0, j0+nc) of op(B) -> NR-wide panels dst[panel][k][NR],
// zero beyond column nc.
template <class T, int NR>
void pack_b(Trans tb, const T* b, std::ptrdiff_t ldb, int k0, int kc, int j0, int nc, T* dst) {
  for (int jp = 0; jp < nc; jp += NR, dst += std::ptrdiff_t(kc) * NR) {
    const int w = std::min(NR, nc - jp);
    if (tb == Trans::no) {
      for (int p = 0; p < kc; ++p) {
        const T* src = b + std::ptrdiff_t(k0 + p) * ldb + j0 + jp;
        T* d = dst + std::ptrdiff_t(p) * NR;
        for (int j = 0; j < w; ++j) d[j] = src[j];
        for (int j = w; j < NR; ++j) d[j] = T(0);
      }
    } else {  // B stored n x k: column j of op(B) is row j of b
      for (int j = 0; j < NR; ++j) {
        T* d = dst + j;
        if (j < w) {
          const T* src = b + std::ptrdiff_t(j0 + jp + j) * ldb + k0;
          for (int p = 0; p < kc; ++p) d[std::ptrdiff_t(p) * NR] = src[p];
        } else {
          for (int p = 0; p < kc; ++p) d[std::ptrdiff_t(p) * NR] = T(0);
        }
      }
    }
  }
}

// A block rows [i0, i0+mc) x columns [k0, k0+kc) of op(A) -> MR-tall panels dst[panel][k][MR],
// zero beyond row mc.
template <class T, int MR>
void pack_a(Trans ta, const T* a, std::ptrdiff_t lda, int i0, int mc, int k0, int kc, T* dst) {
  for (int ip = 0; ip < mc; ip += MR, dst += std::ptrdiff_t(kc) * MR) {
    const int h = std::min(MR, mc - ip);
    if (ta == Trans::no) {
      for (int r = 0; r < MR; ++r) {
        T* d = dst + r;
        if (r < h) {
          const T* src = a + std::ptrdiff_t(i0 + ip + r) * lda + k0;
          for (int p = 0; p < kc; ++p) d[std::ptrdiff_t(p) * MR] = src[p];
        } else {
          for (int p = 0; p < kc; ++p) d[std::ptrdiff_t(p) * MR] = T(0);
        }
      }
    } else {  // A stored k x m: row i of op(A) is column i of a
      for (int p = 0; p < kc; ++p) {
        const T* src = a + std::ptrdiff_t(k0 + p) * lda + i0 + ip;
        T* d = dst + std::ptrdiff_t(p) * MR;
        for (int r = 0; r < h; ++r) d[r] = src[r];
        for (int r = h; r < MR; ++r) d[r] = T(0);
      }
    }
  }
}

// Number of k parts a product is split into so that both cores have work when the output is
// small: a function of the shape only (never of the thread count), which keeps results
// reproducible.
inline int k_parts(int m, int n, int k, int mc, int nc, int kc) {
  const long tasks = long((m + mc - 1) / mc) * long((n + nc - 1) / nc);
  if (tasks >= 8 || k < 4 * kc) return 1;
  return int(std::min<long>({8, (8 + tasks - 1) / tasks, long(k / (2 * kc))}));
}

namespace detail {
// One task: C[i0:i0+mc, j0:j0+nc] over k in [kb, ke), on the calling thread.
template <class T>
void gemm_block(Trans ta, Trans tb, int i0, int mc, int j0, int nc, int kb, int ke, const T* a, std::ptrdiff_t lda,
                const T* b, std::ptrdiff_t ldb, T* c, std::ptrdiff_t ldc, const Epilogue<T>& ep) {
  using U = Microkernel<T>;
  using Bl = Blocking<T>;
  constexpr int MR = U::MR, NR = U::NR, KC = Bl::KC;
  T* bp = thread_scratch<T, Scratch::gemm_b_panels>(std::size_t(KC) * ((nc + NR - 1) / NR) * NR);
  T* ap = thread_scratch<T, Scratch::gemm_a_panels>(std::size_t(KC) * ((mc + MR - 1) / MR) * MR);
  const std::ptrdiff_t zero_off = 0;
  for (int pc = kb; pc < ke; pc += KC) {
    const int kc = std::min(KC, ke - pc);
    pack_b<T, NR>(tb, b, ldb, pc, kc, j0, nc, bp);
    pack_a<T, MR>(ta, a, lda, i0, mc, pc, kc, ap);
    Epilogue<T> e;
    e.accumulate = pc > kb || ep.accumulate;
    const bool last = pc + kc >= ke;
    e.relu = last && ep.relu;
    for (int jr = 0; jr < nc; jr += NR) {
      e.bias = last && ep.bias ? ep.bias + j0 + jr : nullptr;
      e.scale = last && ep.scale ? ep.scale + j0 + jr : nullptr;
      const T* bpanel = bp + std::ptrdiff_t(jr / NR) * kc * NR;
      for (int ir = 0; ir < mc; ir += MR) {
        const T* apanel = ap + std::ptrdiff_t(ir / MR) * kc * MR;
        const T* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = apanel + r;
        const APanel<T> panel{rows, &zero_off, 1, kc, MR};
        U::run(panel, bpanel, c + std::ptrdiff_t(i0 + ir) * ldc + j0 + jr, ldc, std::min(MR, mc - ir),
               std::min(NR, nc - jr), e);
      }
    }
  }
}
}  // namespace detail

// ---- a few rows times a matrix read in place ----------------------------------------------------
// C[m x n] (+)= A[m x k] B[k x n] for a small m (a Dense layer at batch 1): the product is bound by
// reading B once, and packing B would read and write it twice more. So B is read in place, row by
// row: each thread takes a block of FewRows::W columns (schedule static, so at inference a core
// reads the same part of B on every call and keeps it in its own L2; a 1024 x 256 Dense layer is
// 1 MiB), and sweeps k once per pass of up to 4 rows of A with the sums in vector registers: W
// columns for one row, W/2 for two, W/4 for three or four (at least 8 independent FMA chains).
// Every value is summed over k in order, so the result does not depend on the threads.
struct FewRows {
  static constexpr int max_m = 8;  // gemm() sends products of at most this many rows here
#if HUBBLE_FP32_AVX512
  static constexpr int W = 128;  // 8 zmm of sums per pass
#else
  static constexpr int W = 64;  // 8 ymm
#endif
};

namespace detail {
// Rows [0, R) of A times columns [j0, j0 + w) of B, w <= Wr: with w == Wr the loop bounds are
// constants and the compiler keeps the R x Wr sums in vector registers.
template <class T, int R, int Wr>
void few_rows_pass(int w, int j0, int k, const T* a, std::ptrdiff_t lda, const T* b, std::ptrdiff_t ldb, T* c,
                   std::ptrdiff_t ldc, const Epilogue<T>& ep) {
  T acc[R][Wr] = {};
  if (w == Wr) {
    for (int p = 0; p < k; ++p) {
      const T* bp = b + std::ptrdiff_t(p) * ldb + j0;
      for (int i = 0; i < R; ++i) {
        const T av = a[std::ptrdiff_t(i) * lda + p];
        for (int j = 0; j < Wr; ++j) acc[i][j] += av * bp[j];
      }
    }
  } else {
    for (int p = 0; p < k; ++p) {
      const T* bp = b + std::ptrdiff_t(p) * ldb + j0;
      for (int i = 0; i < R; ++i) {
        const T av = a[std::ptrdiff_t(i) * lda + p];
        for (int j = 0; j < w; ++j) acc[i][j] += av * bp[j];
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < w; ++j) {
      T& cij = c[std::ptrdiff_t(i) * ldc + j0 + j];
      cij = finish(acc[i][j], cij, j0 + j, ep);
    }
}
// Rows [0, R) times columns [j0, j0 + w), w <= FewRows::W, in sub-blocks of W / R (R = 3: W / 4).
template <class T, int R>
void few_rows_block(int w, int j0, int k, const T* a, std::ptrdiff_t lda, const T* b, std::ptrdiff_t ldb, T* c,
                    std::ptrdiff_t ldc, const Epilogue<T>& ep) {
  constexpr int Wr = FewRows::W / (R == 3 ? 4 : R);
  for (int j = 0; j < w; j += Wr) few_rows_pass<T, R, Wr>(std::min(Wr, w - j), j0 + j, k, a, lda, b, ldb, c, ldc, ep);
}
}  // namespace detail

// C[m x n] (+)= A B with A stored m x k, B stored k x n, for m <= FewRows::max_m.
template <class T>
void few_rows_gemm(int m, int n, int k, const T* a, std::ptrdiff_t lda, const T* b, std::ptrdiff_t ldb, T* c,
                   std::ptrdiff_t ldc, const Epilogue<T>& ep) {
  constexpr int W = FewRows::W;
  const int blocks = (n + W - 1) / W;
#pragma omp parallel for schedule(static) if (blocks > 1 && long(m) * n * k > 32768)
  for (int jb = 0; jb < blocks; ++jb) {
    const int j0 = jb * W, w = std::min(W, n - j0);
    for (int i0 = 0; i0 < m; i0 += 4) {
      const T* ai = a + std::ptrdiff_t(i0) * lda;
      T* ci = c + std::ptrdiff_t(i0) * ldc;
      switch (std::min(4, m - i0)) {
        case 1: detail::few_rows_block<T, 1>(w, j0, k, ai, lda, b, ldb, ci, ldc, ep); break;
        case 2: detail::few_rows_block<T, 2>(w, j0, k, ai, lda, b, ldb, ci, ldc, ep); break;
        case 3: detail::few_rows_block<T, 3>(w, j0, k, ai, lda, b, ldb, ci, ldc, ep); break;
        default: detail::few_rows_block<T, 4>(w, j0, k, ai, lda, b, ldb, ci, ldc, ep); break;
      }
    }
  }
}

// C[m x n] (+)= op(A) op(B) with the epilogue ep; lda/ldb/ldc are the row strides of the stored
// matrices (A stored m x k when ta == no, k x m when ta == yes; likewise B).
template <class T>
void gemm(Trans ta, Trans tb, int m, int n, int k, const T* a, std::ptrdiff_t lda, const T* b, std::ptrdiff_t ldb,
          T* c, std::ptrdiff_t ldc, const Epilogue<T>& ep = {}) {
  if (m <= 0 || n <= 0) return;
  using Bl = Blocking<T>;
  constexpr int NR = Bl::NR, MC = Bl::MC, KC = Bl::KC, NC = Bl::NC;
  if (k <= 0) {  // empty sum: only the epilogue
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        T& cij = c[std::ptrdiff_t(i) * ldc + j];
        cij = detail::finish(T(0), cij, j, ep);
      }
    return;
  }
  if (m <= FewRows::max_m && ta == Trans::no && tb == Trans::no) return few_rows_gemm(m, n, k, a, lda, b, ldb, c, ldc, ep);
  const int parts = k_parts(m, n, k, MC, NC, KC);
  const int tm = (m + MC - 1) / MC;
  // Column width of a task: narrower when there are too few tasks for the threads (this only
  // changes who computes which tile, never the order of any sum).
  int nct = std::min(NC, (n + NR - 1) / NR * NR);
  const int threads = max_threads();
  while (long(parts) * tm * ((n + nct - 1) / nct) < 4L * threads && nct > NR) nct = (nct / 2 + NR - 1) / NR * NR;
  const int tn = (n + nct - 1) / nct;
  const long tasks = long(parts) * tm * tn;

  std::vector<T> partial;  // parts > 1 only: one m x n sum per k part
  if (parts > 1) partial.resize(std::size_t(parts) * m * n);
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (long t = 0; t < tasks; ++t) {
    const int p = int(t / (long(tm) * tn)), im = int(t / tn % tm), in = int(t % tn);
    const int i0 = im * MC, j0 = in * nct;
    const int kb = int(long(k) * p / parts), ke = int(long(k) * (p + 1) / parts);
    if (parts == 1) {
      detail::gemm_block(ta, tb, i0, std::min(MC, m - i0), j0, std::min(nct, n - j0), kb, ke, a, lda, b, ldb, c, ldc, ep);
    } else {
      detail::gemm_block(ta, tb, i0, std::min(MC, m - i0), j0, std::min(nct, n - j0), kb, ke, a, lda, b, ldb,
                         partial.data() + std::size_t(p) * m * n, std::ptrdiff_t(n), Epilogue<T>{});
    }
  }
  if (parts > 1) {
#pragma omp parallel for schedule(static) if (long(m) * n > 4096)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        T s = partial[std::size_t(i) * n + j];
        for (int p = 1; p < parts; ++p) s += partial[(std::size_t(p) * m + i) * n + j];
        c[std::ptrdiff_t(i) * ldc + j] = detail::finish(s, c[std::ptrdiff_t(i) * ldc + j], j, ep);
      }
  }
}

// out[j] = sum_i a[i * n + j] (the bias gradient). Rows are summed in fixed chunks whose number
// depends on m only, and the chunk sums are added in order: reproducible for any thread count.
template <class T>
void column_sums(const T* a, long m, int n, T* out) {
  const int parts = int(std::clamp<long>(m / 2048, 1, 16));
  std::vector<T> partial(std::size_t(parts) * n, T(0));
#pragma omp parallel for schedule(static) if (parts > 1)
  for (int p = 0; p < parts; ++p) {
    T* s = partial.data() + std::size_t(p) * n;
    for (long i = m * p / parts; i < m * (p + 1) / parts; ++i)
      for (int j = 0; j < n; ++j) s[j] += a[i * n + j];
  }
  for (int j = 0; j < n; ++j) {
    T s = partial[j];
    for (int p = 1; p < parts; ++p) s += partial[std::size_t(p) * n + j];
    out[j] = s;
  }
}

// ---- a product with B packed ahead of time -------------------------------------------------------
// For callers that multiply many row blocks by the same B (convolution weights, Winograd's
// transformed filters): B is packed once, by pack_b_panels, into k blocks of KC rows, each cut
// into NR-wide panels [kc][NR], zero-padded to a multiple of NR columns.
template <class T>
std::size_t packed_b_size(int k, int n) {
  constexpr int NR = Microkernel<T>::NR;
  return std::size_t(k) * std::size_t((n + NR - 1) / NR) * NR;
}
template <class T>
const T* packed_b_panel(const T* bp, int k, int n, int kb, int jp) {
  constexpr int NR = Microkernel<T>::NR, KC = Blocking<T>::KC;
  const int npan = (n + NR - 1) / NR, k0 = kb * KC, kc = std::min(KC, k - k0);
  return bp + std::size_t(k0) * npan * NR + std::size_t(jp) * kc * NR;
}
// get(p, j) returns B[p][j] for p < k, j < n.
template <class T, class Get>
void pack_b_panels(int k, int n, Get get, T* dst) {
  constexpr int NR = Microkernel<T>::NR, KC = Blocking<T>::KC;
  const int npan = (n + NR - 1) / NR, kblocks = (k + KC - 1) / KC;
#pragma omp parallel for schedule(static) collapse(2) if (long(k) * n > 32768)
  for (int kb = 0; kb < kblocks; ++kb)
    for (int jp = 0; jp < npan; ++jp) {
      const int k0 = kb * KC, kc = std::min(KC, k - k0);
      T* d = const_cast<T*>(packed_b_panel(dst, k, n, kb, jp));
      for (int p = 0; p < kc; ++p)
        for (int j = 0; j < NR; ++j) d[std::size_t(p) * NR + j] = jp * NR + j < n ? get(k0 + p, jp * NR + j) : T(0);
    }
}

// C[m x n] (+)= A B on the calling thread; row i of A is a[i*lda .. i*lda + k), B packed by
// pack_b_panels. Loop order k block -> panel -> rows: the B panel stays in L1 while A streams.
// Only the NR-wide column panels [jp_begin, jp_end) are computed when a range is given.
template <class T>
void rows_times_packed(int m, int n, int k, const T* a, std::ptrdiff_t lda, const T* bp, T* c, std::ptrdiff_t ldc,
                       const Epilogue<T>& ep = {}, int jp_begin = 0, int jp_end = -1) {
  using U = Microkernel<T>;
  constexpr int MR = U::MR, NR = U::NR, KC = Blocking<T>::KC;
  const int npan = jp_end < 0 ? (n + NR - 1) / NR : jp_end, kblocks = (k + KC - 1) / KC;
  for (int kb = 0; kb < kblocks; ++kb) {
    const std::ptrdiff_t k0 = std::ptrdiff_t(kb) * KC;
    const int kc = std::min(KC, k - kb * KC);
    Epilogue<T> e;
    e.accumulate = kb > 0 || ep.accumulate;
    const bool last = kb + 1 == kblocks;
    e.relu = last && ep.relu;
    for (int jp = jp_begin; jp < npan; ++jp) {
      e.bias = last && ep.bias ? ep.bias + jp * NR : nullptr;
      e.scale = last && ep.scale ? ep.scale + jp * NR : nullptr;
      const T* panel = packed_b_panel(bp, k, n, kb, jp);
      for (int ir = 0; ir < m; ir += MR) {
        const T* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = a + std::ptrdiff_t(std::min(ir + r, m - 1)) * lda;
        const APanel<T> ap{rows, &k0, 1, kc, 1};
        U::run(ap, panel, c + std::ptrdiff_t(ir) * ldc + jp * NR, ldc, std::min(MR, m - ir), std::min(NR, n - jp * NR), e);
      }
    }
  }
}

}  // namespace gemm
