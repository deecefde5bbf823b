// winograd.hpp's kernels (winograd_detail, WinogradT), compiled once per instruction set by
// fp32/instantiate.inl (see fp32/isa.hpp); no include guard. Read winograd.hpp first.
namespace winograd_detail {

template <int M>
struct Basis;
template <>
struct Basis<2> {  // F(2x2, 3x3)
  static constexpr int m = 2, a = 4;
  static constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
template <>
struct Basis<4> {  // F(4x4, 3x3), interpolation points 0, +-1, +-2, infinity
  static constexpr int m = 4, a = 6;
  static constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                      {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},          {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  static constexpr double AT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// ---- products with a constant matrix, unrolled at compile time --------------------------------
enum class Mat { BT, G, AT };
// Coefficient (i, j) of the matrix, or of its transpose when Tr.
template <class B, Mat W, bool Tr>
constexpr double coef(int i, int j) {
  if (Tr) std::swap(i, j);
  if constexpr (W == Mat::BT) return B::BT[i][j];
  else if constexpr (W == Mat::G) return B::G[i][j];
  else return B::AT[i][j];
}
template <class B, Mat W, bool Tr, int I, int N>
constexpr int first_nonzero() {
  for (int j = 0; j < N; ++j)
    if (coef<B, W, Tr>(I, j) != 0.0) return j;
  return -1;
}
// The coefficient is named by its indices, not passed as a `double` template argument (a C++20
// feature Clang only gained in version 18); constexpr inside, so the generated code is the same.
// Vectors go in and out by reference: a 32-byte vector passed by value has a different ABI with
// and without AVX (GCC's -Wpsabi warning, an error for consumers building with -Werror).
template <class B, Mat W, bool Tr, int I, int J, class S, class L>
inline void scaled(L& out, const L& x) {
  constexpr double C = coef<B, W, Tr>(I, J);
  if constexpr (C == 1.0) out = x;
  else if constexpr (C == -1.0) out = -x;
  else out = x * S(C);
}
template <bool On, class B, Mat W, bool Tr, int I, int J, class S, class L>
inline void add_term(L& acc, const L& x) {
  constexpr double C = coef<B, W, Tr>(I, J);
  if constexpr (On && C == 1.0) acc += x;
  else if constexpr (On && C == -1.0) acc -= x;
  else if constexpr (On && C != 0.0) acc += x * S(C);
}
template <class B, Mat W, bool Tr, int I, int N, class S, class L, int... J>
inline void dot(L& acc, const L* in, std::integer_sequence<int, J...>) {
  constexpr int f = first_nonzero<B, W, Tr, I, N>();
  static_assert(f >= 0, "a transform matrix row is all zeros");
  scaled<B, W, Tr, I, f, S>(acc, in[f]);
  (add_term<(J != f), B, W, Tr, I, J, S>(acc, in[J]), ...);
}
// out[i] = sum_j coef(i, j) in[j] for i < R, j < N.
template <class B, Mat W, bool Tr, int R, int N, class S, class L>
inline void apply(const L* in, L* out) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    (dot<B, W, Tr, I, N, S>(out[I], in, std::make_integer_sequence<int, N>{}), ...);
  }(std::make_integer_sequence<int, R>{});
}

// A "lane": a vector of channels (GCC/Clang vector extension: 64 bytes in the AVX-512 copy, whose
// units are that wide on Zen 5 and Intel, 32 bytes otherwise; a 32-byte lane then takes a
// 32-byte tail) or, for the last channels, one scalar. Every lane computes each channel with the
// same operations, so the results are the same bits whatever the width. Compilers without the
// extension (MSVC) take every channel as a scalar lane.
#if defined(__GNUC__)  // GCC, and Clang, which defines it too
template <class T, int Bytes = (HUBBLE_FP32_AVX512 ? 64 : 32)>
struct Lane {
  typedef T vec __attribute__((vector_size(Bytes)));
  static constexpr int width = Bytes / int(sizeof(T));
};
#else
template <class T, int Bytes = 0>
struct Lane {
  using vec = T;
  static constexpr int width = 1;
};
#endif
template <class L, class T>
inline void load(L& v, const T* p) {
  std::memcpy(&v, p, sizeof(L));
}
template <class L, class T>
inline void store(T* p, const L& v) {
  std::memcpy(p, &v, sizeof(L));
}

// Runs body.template operator()<L>(c) over channels [c0, c1): vector lanes (wide, then one
// 32-byte lane where the wide ones leave 32 bytes or more), then scalar lanes.
template <class T, class Body>
inline void for_lanes(int c0, int c1, Body&& body) {
  using V = typename Lane<T>::vec;
  constexpr int W = Lane<T>::width;
  int c = c0;
  for (; c + W <= c1; c += W) body.template operator()<V>(c);
  if constexpr (W > Lane<T, 32>::width) {
    constexpr int W32 = Lane<T, 32>::width;
    for (; c + W32 <= c1; c += W32) body.template operator()<typename Lane<T, 32>::vec>(c);
  }
  for (; c < c1; ++c) body.template operator()<T>(c);
}

// V = B^T d B for one tile and channels [c, c + lane): d[i*a + j] points at the tile's pixel (i, j).
template <class B, class T, class L>
inline void input_tile(const T* const* d, int c, T* const* v, std::ptrdiff_t voff) {
  constexpr int a = B::a;
  L t[a][a];
  for (int j = 0; j < a; ++j) {  // t = B^T d, a column at a time
    L col[a], out[a];
    for (int k = 0; k < a; ++k) load(col[k], d[k * a + j] + c);
    apply<B, Mat::BT, false, a, a, T>(col, out);
    for (int i = 0; i < a; ++i) t[i][j] = out[i];
  }
  for (int i = 0; i < a; ++i) {  // V = t B: row i of V is B^T applied to row i of t
    L out[a];
    apply<B, Mat::BT, false, a, a, T>(t[i], out);
    for (int j = 0; j < a; ++j) store(v[i * a + j] + voff + c, out[j]);
  }
}

// Y = A^T M A (+ bias, then max(., 0) when relu) for one tile and filters [f, f + lane): mt[xi]
// points at M_xi of the tile. With a scale: Y = scale * A^T M A + bias.
template <class B, class T, class L>
inline void output_values(const T* const* mt, int f, const T* bias, bool relu, const T* scale, L (&y)[B::m][B::m]) {
  constexpr int a = B::a, m = B::m;
  L r[m][a];
  for (int j = 0; j < a; ++j) {  // r = A^T M
    L col[a], o[m];
    for (int k = 0; k < a; ++k) load(col[k], mt[k * a + j] + f);
    apply<B, Mat::AT, false, m, a, T>(col, o);
    for (int i = 0; i < m; ++i) r[i][j] = o[i];
  }
  L bv = L{} + T(0), sv = L{} + T(1);
  if (bias) load(bv, bias + f);
  if (scale) load(sv, scale + f);
  for (int i = 0; i < m; ++i) {  // Y = r A
    L o[m];
    apply<B, Mat::AT, false, m, a, T>(r[i], o);
    for (int j = 0; j < m; ++j) {
      const L v = scale ? o[j] * sv + bv : o[j] + bv;
      y[i][j] = relu ? (v > T(0) ? v : L{} + T(0)) : v;
    }
  }
}
// ... stored at out[i * m + j] + f.
template <class B, class T, class L>
inline void output_tile(const T* const* mt, int f, const T* bias, bool relu, T* const* out, const T* scale = nullptr) {
  constexpr int m = B::m;
  L y[m][m];
  output_values<B, T, L>(mt, f, bias, relu, scale, y);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) store(out[i * m + j] + f, y[i][j]);
}

// Where a lane keeps its windows' positions: for a vector lane, the integer vector its comparisons
// give (same width, -1 where true); for a scalar lane, whose comparison is a bool, an int.
template <class L>
struct PoolIndex {
  using type = decltype(L{} > L{});
};
template <>
struct PoolIndex<float> {
  using type = int;
};
template <>
struct PoolIndex<double> {
  using type = int;
};

// ... or max-pooled in P x P windows (P divides m, so a window never leaves its tile): window
// (wy, wx) of the tile goes to pooled[wy * (m / P) + wx] + f, the position (py * P + px) of its
// maximum, the first one on ties as MaxPool's forward takes it, to arg[...] + f.
template <class B, class T, class L>
inline void output_tile_pooled(const T* const* mt, int f, const T* bias, const T* scale, int P, T* const* pooled,
                               std::uint8_t* const* arg) {
  constexpr int m = B::m;
  using I = typename PoolIndex<L>::type;
  L y[m][m];
  output_values<B, T, L>(mt, f, bias, true, scale, y);
  const int per_side = m / P;
  for (int wy = 0; wy < per_side; ++wy)
    for (int wx = 0; wx < per_side; ++wx) {
      L best = y[wy * P][wx * P];
      I at = I{} + 0;
      for (int q = 1; q < P * P; ++q) {
        const L v = y[wy * P + q / P][wx * P + q % P];
        const auto more = v > best;
        best = more ? v : best;
        at = more ? I{} + q : at;
      }
      const int w = wy * per_side + wx;
      store(pooled[w] + f, best);
      if constexpr (std::is_same_v<I, int>) arg[w][f] = std::uint8_t(at);
      else
        for (int e = 0; e < int(sizeof(L) / sizeof(T)); ++e) arg[w][f + e] = std::uint8_t(at[e]);
    }
}

// dY~ = A dY A^T for one tile and filters [f, f + lane): g[p*m + q] points at dY(p, q).
template <class B, class T, class L>
inline void gradient_tile(const T* const* g, int f, T* const* dst, std::ptrdiff_t doff) {
  constexpr int a = B::a, m = B::m;
  L s[a][m];
  for (int q = 0; q < m; ++q) {  // s = A dY, A = (A^T)^T
    L col[m], o[a];
    for (int p = 0; p < m; ++p) load(col[p], g[p * m + q] + f);
    apply<B, Mat::AT, true, a, m, T>(col, o);
    for (int i = 0; i < a; ++i) s[i][q] = o[i];
  }
  for (int i = 0; i < a; ++i) {  // dY~ = s A^T
    L o[a];
    apply<B, Mat::AT, true, a, m, T>(s[i], o);
    for (int j = 0; j < a; ++j) store(dst[i * a + j] + doff, o[j]);
  }
}

// A 3x3 stride-1 correlation: input [n][h][w][cin] read at (m*ty + i - pad_top, m*tx + j - pad_left)
// for tile (ty, tx), zero outside; output [n][oh][ow][cout].
struct Problem {
  int n, h, w, cin;
  int pad_top, pad_left;
  int oh, ow, cout;
};

template <int M>
struct Tiling {
  const Problem& p;
  int th, tw;
  // Tiles covering the output's first oh x ow pixels (all of it by default).
  explicit Tiling(const Problem& pr) : Tiling(pr, pr.oh, pr.ow) {}
  Tiling(const Problem& pr, int oh, int ow) : p(pr), th((oh + M - 1) / M), tw((ow + M - 1) / M) {}
  long tiles() const { return long(p.n) * th * tw; }
  void locate(long t, int& b, int& ty, int& tx) const {
    b = int(t / (long(th) * tw));
    const int rem = int(t % (long(th) * tw));
    ty = rem / tw;
    tx = rem % tw;
  }
};

// Tiles per block: V (a^2 x tb x cin) and M or dY~ (a^2 x tb x cout) within ~512 KiB, a multiple
// of MR, at most KC (the weight gradient reduces over a block in one k block).
template <int M, class T>
int tiles_per_block(const Problem& p, long budget = 512L * 1024) {
  constexpr int MR = gemm::Microkernel<T>::MR, KC = gemm::Blocking<T>::KC, a = M + 2;
  const long per_tile = long(a * a) * (p.cin + p.cout) * long(sizeof(T));
  const int tb = int(std::clamp<long>(budget / per_tile, MR, std::min(192, KC)));
  return std::max(MR, tb / MR * MR);
}

// Distance between consecutive xi matrices of a block: rounded up to an odd number of cache
// lines. The a*a matrices are read and written together, and a power-of-two-ish stride would put
// all of them in the same few L1 sets (measured: 3-5x slower transforms).
template <class T>
std::size_t xi_stride(std::size_t elements) {
  constexpr std::size_t line = 64 / sizeof(T);
  std::size_t lines = (elements + line - 1) / line;
  if (lines % 2 == 0) ++lines;
  return lines * line;
}

// The a*a input pointers of tile t (zeros where the tile hangs over the border).
template <int M, class T>
void tile_pointers(const Tiling<M>& tl, const T* x, long t, const T* zeros, const T** ptr) {
  constexpr int a = M + 2;
  const Problem& p = tl.p;
  int b, ty, tx;
  tl.locate(t, b, ty, tx);
  for (int i = 0; i < a; ++i)
    for (int j = 0; j < a; ++j) {
      const int iy = M * ty + i - p.pad_top, ix = M * tx + j - p.pad_left;
      ptr[i * a + j] = (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) ? zeros
                                                                     : x + ((std::ptrdiff_t(b) * p.h + iy) * p.w + ix) * p.cin;
    }
}

// U = G g G^T for one input channel and filters [f, f + lane): g points at w[0][0][c][f], cf is
// the distance between kernel positions; dst[xi] + f gets U_xi's lane.
template <class B, class T, class L>
inline void weight_lane(const T* g, std::size_t cf, T* const* dst, int f) {
  constexpr int a = B::a;
  L w[3][3], gg[a][3];
  for (int k = 0; k < 9; ++k) load(w[k / 3][k % 3], g + k * cf + f);
  for (int j = 0; j < 3; ++j) {  // G g, a column at a time
    const L col[3] = {w[0][j], w[1][j], w[2][j]};
    L o[a];
    apply<B, Mat::G, false, a, 3, T>(col, o);
    for (int r = 0; r < a; ++r) gg[r][j] = o[r];
  }
  for (int r = 0; r < a; ++r) {  // (G g) G^T
    L o[a];
    apply<B, Mat::G, false, a, 3, T>(gg[r], o);
    for (int j = 0; j < a; ++j) store(dst[r * a + j] + f, o[j]);
  }
}

// U = G g G^T for every (c, f), written straight into gemm's packed-B layout, one matrix per xi
// (vectorised over f: a lane of filters never straddles an NR panel).
template <int M, class T>
void transform_weights(int cin, int cout, const T* g /* [3][3][cin][cout] */, T* packed /* a^2 x packed_b_size */) {
  using B = Basis<M>;
  constexpr int a = B::a, A2 = a * a, NR = gemm::Microkernel<T>::NR, KC = gemm::Blocking<T>::KC;
  static_assert(NR % Lane<T>::width == 0, "a lane must not straddle a packed panel");
  const std::size_t per = gemm::packed_b_size<T>(cin, cout);
  const std::size_t cf = std::size_t(cin) * cout;
  const int npan = (cout + NR - 1) / NR;
#pragma omp parallel for schedule(static) if (cf > 4096)
  for (int c = 0; c < cin; ++c) {
    const int kb = c / KC, kc = std::min(KC, cin - kb * KC);
    for (int jp = 0; jp < npan; ++jp) {
      // Row c of panel jp in every xi matrix; dst[xi] + f addresses filter f of that row.
      T* dst[A2];
      for (int xi = 0; xi < A2; ++xi)
        dst[xi] = const_cast<T*>(gemm::packed_b_panel(packed + xi * per, cin, cout, kb, jp)) + std::size_t(c - kb * KC) * NR - jp * NR;
      (void)kc;
      const int f1 = std::min(cout, (jp + 1) * NR);
      for_lanes<T>(jp * NR, f1, [&]<class L>(int f) { weight_lane<B, T, L>(g + std::size_t(c) * cout, cf, dst, f); });
      for (int f = f1; f < (jp + 1) * NR; ++f)  // zero padding of the last panel
        for (int xi = 0; xi < A2; ++xi) dst[xi][f] = T(0);
    }
  }
}

// y = winograd(x, U) + bias (then max(., 0) when relu), U from transform_weights; with a scale,
// y = scale * winograd(x, U) + bias per output channel. With pool = P (P divides M, relu on),
// y is maxpool_P of that instead, [n][oh/P][ow/P][cout], each window's position in argmax.
template <int M, class T>
void convolve(const Problem& p, const T* x, const T* u, const T* bias, T* y, bool relu = false, const T* scale = nullptr,
              int pool = 0, std::uint8_t* argmax = nullptr) {
  using B = Basis<M>;
  constexpr int a = B::a, A2 = a * a;
  // Pooling keeps whole windows only (as MaxPool does), so only the tiles under them are
  // computed: conv2's 29 x 29 output pools to 14 x 14 from rows and columns 0-27, 7 x 7 tiles
  // of 4 x 4 instead of 8 x 8.
  const Tiling<M> tl(p, pool ? p.oh / pool * pool : p.oh, pool ? p.ow / pool * pool : p.ow);
  const int tb = tiles_per_block<M, T>(p);
  const long tiles = tl.tiles(), blocks = (tiles + tb - 1) / tb;
  const std::size_t per_u = gemm::packed_b_size<T>(p.cin, p.cout);
  // Few tiles (small images, batch 1): also split the output channels between tasks, but only
  // until every thread has one. Each group repeats its block's input transform, and at batch 1
  // that costs more than the balance of two tasks a thread buys (docs/kernels.md: conv2's two
  // blocks as 2 tasks, not 4, made PaperNet's batch-1 forward 6.5% faster).
  constexpr int MR = gemm::Microkernel<T>::MR, NR = gemm::Microkernel<T>::NR;
  const long mr_units = (tiles + MR - 1) / MR;
  const int npan = (p.cout + NR - 1) / NR;
  int groups = 1;
  while (blocks * groups < max_threads() && groups < npan) ++groups;
  const long tasks = blocks * groups;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (long task = 0; task < tasks; ++task) {
    const long blk = task / groups;
    const int grp = int(task % groups), jp0 = npan * grp / groups, jp1 = npan * (grp + 1) / groups;
    const int f0 = jp0 * NR, f1 = std::min(p.cout, jp1 * NR);
    // Blocks of whole MR tiles, as even as that allows (at most tb tiles).
    const long t0 = std::min(tiles, blk * mr_units / blocks * MR);
    const int nt = int(std::min(tiles, (blk + 1) * mr_units / blocks * MR) - t0);
    const std::size_t ldv = xi_stride<T>(std::size_t(tb) * p.cin), ldm = xi_stride<T>(std::size_t(tb) * p.cout);
    T* v = thread_scratch<T, Scratch::winograd_v>(A2 * ldv);
    T* mm = thread_scratch<T, Scratch::winograd_m>(A2 * ldm);
    T* zeros = thread_scratch<T, Scratch::winograd_zeros>(std::size_t(p.cin) + p.cout);
    std::fill(zeros, zeros + p.cin + p.cout, T(0));
    T* junk = zeros + p.cin;  // where outputs beyond the image are written
    T* vx[A2];
    for (int xi = 0; xi < A2; ++xi) vx[xi] = v + xi * ldv;
    for (int t = 0; t < nt; ++t) {
      const T* d[A2];
      tile_pointers(tl, x, t0 + t, zeros, d);
      const std::ptrdiff_t voff = std::ptrdiff_t(t) * p.cin;
      for_lanes<T>(0, p.cin, [&]<class L>(int c) { input_tile<B, T, L>(d, c, vx, voff); });
    }
    for (int xi = 0; xi < A2; ++xi)
      gemm::rows_times_packed(nt, p.cout, p.cin, vx[xi], p.cin, u + xi * per_u, mm + xi * ldm,
                              p.cout, gemm::Epilogue<T>{}, jp0, jp1);
    for (int t = 0; t < nt; ++t) {
      int b, ty, tx;
      tl.locate(t0 + t, b, ty, tx);
      const T* mt[A2];
      for (int xi = 0; xi < A2; ++xi) mt[xi] = mm + xi * ldm + std::size_t(t) * p.cout;
      if (pool) {  // the tile's windows; those past the pooled output (a leftover row) go to junk
        const int per_side = M / pool, ph = p.oh / pool, pw = p.ow / pool;
        T* out[M * M];
        std::uint8_t* arg[M * M];
        for (int wy = 0; wy < per_side; ++wy)
          for (int wx = 0; wx < per_side; ++wx) {
            const int py = per_side * ty + wy, px = per_side * tx + wx, w = wy * per_side + wx;
            const std::ptrdiff_t at = ((std::ptrdiff_t(b) * ph + py) * pw + px) * p.cout;
            const bool inside = py < ph && px < pw;
            out[w] = inside ? y + at : junk;
            arg[w] = inside ? argmax + at : reinterpret_cast<std::uint8_t*>(junk);
          }
        for_lanes<T>(f0, f1, [&]<class L>(int f) { output_tile_pooled<B, T, L>(mt, f, bias, scale, pool, out, arg); });
        continue;
      }
      T* out[M * M];
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < M; ++j) {
          const int oy = M * ty + i, ox = M * tx + j;
          out[i * M + j] = oy < p.oh && ox < p.ow ? y + ((std::ptrdiff_t(b) * p.oh + oy) * p.ow + ox) * p.cout : junk;
        }
      for_lanes<T>(f0, f1, [&]<class L>(int f) { output_tile<B, T, L>(mt, f, bias, relu, out, scale); });
    }
  }
}

// dg = G^T M G for weights [i, i + lane) of every (c, f), M = the sum of the parts' a x a
// accumulators (added in part order); acc is [part][xi][cin*cout], dw is [3][3][cin*cout].
template <class B, class T, class L>
inline void finish_lane(const T* acc, int parts, std::size_t cf, T* dw, int i) {
  constexpr int a = B::a, A2 = a * a;
  L mt[a][a], q[3][a];
  for (int xi = 0; xi < A2; ++xi) {
    L sum, part;
    load(sum, acc + xi * cf + i);
    for (int pp = 1; pp < parts; ++pp) {
      load(part, acc + (std::size_t(pp) * A2 + xi) * cf + i);
      sum += part;
    }
    mt[xi / a][xi % a] = sum;
  }
  for (int j = 0; j < a; ++j) {  // q = G^T M, a column at a time
    L col[a], o[3];
    for (int k = 0; k < a; ++k) col[k] = mt[k][j];
    apply<B, Mat::G, true, 3, a, T>(col, o);
    for (int r = 0; r < 3; ++r) q[r][j] = o[r];
  }
  for (int r = 0; r < 3; ++r) {  // dg = q G
    L o[3];
    apply<B, Mat::G, true, 3, a, T>(q[r], o);
    for (int j = 0; j < 3; ++j) store(dw + (r * 3 + j) * cf + i, o[j]);
  }
}

// dw = G^T [ sum_tiles V .* (A dY A^T) ] G over the tiles of x and dy; db is not computed here.
template <int M, class T>
void weight_gradient(const Problem& p, const T* x, const T* dy, T* dw, Workspace<T>& ws) {
  using B = Basis<M>;
  using U = gemm::Microkernel<T>;
  constexpr int MR = U::MR, NR = U::NR, a = B::a, A2 = a * a;
  const Tiling<M> tl(p);
  // The block is also the k of each product (the C tile is reloaded once per block): at least
  // 36 tiles, even if that overflows L2 a little (conv3 with F(4x4): 18 -> 36 tiles, 1.4x faster).
  const int tb = std::min(gemm::Blocking<T>::KC, std::max(tiles_per_block<M, T>(p), MR * ((36 + MR - 1) / MR)));
  const long tiles = tl.tiles(), blocks = (tiles + tb - 1) / tb;
  const int cin = p.cin, cout = p.cout, npan = (cout + NR - 1) / NR, mtiles = (cin + MR - 1) / MR;
  const int cpad = npan * NR;  // dY rows are copied zero-padded to whole panels
  const std::size_t cf = std::size_t(cin) * cout;
  // Parts: a function of the shape only (reproducible sums); more threads than parts share a
  // part by splitting its xi matrices (below).
  const int parts = int(std::clamp<long>(blocks / 4, 1, 2));
  T* acc = ws.get_c(std::size_t(parts) * A2 * cf);  // [part][xi][cin][cout]
  int groups = 1;  // xi groups per part, for load balance only (the sums keep their order)
  while (parts * groups < max_threads() && groups < A2) groups *= 2;  // (each group redoes the transforms)
#pragma omp parallel for schedule(static) if (parts * groups > 1)
  for (int task = 0; task < parts * groups; ++task) {
    const int part = task / groups, grp = task % groups;
    const int xi0 = A2 * grp / groups, xi1 = A2 * (grp + 1) / groups;
    const long b0 = blocks * part / parts, b1 = blocks * (part + 1) / parts;
    const std::size_t ldv = xi_stride<T>(std::size_t(tb) * cin), ldy = xi_stride<T>(std::size_t(tb) * cpad);
    T* v = thread_scratch<T, Scratch::winograd_v>(A2 * ldv);
    T* yp = thread_scratch<T, Scratch::winograd_m>(A2 * ldy);  // dY~ in packed-B layout [xi][jp][t][NR]
    T* zeros = thread_scratch<T, Scratch::winograd_zeros>(std::size_t(cin) + std::size_t(M * M + 1) * cpad);
    std::fill(zeros, zeros + cin, T(0));
    T* dyt = zeros + cin;  // the tile's dY rows, zero-padded to cpad, then one row of zeros
    std::fill(dyt + std::size_t(M * M) * cpad, dyt + std::size_t(M * M + 1) * cpad, T(0));
    T* vx[A2];
    for (int xi = 0; xi < A2; ++xi) vx[xi] = v + xi * ldv;
    T* accp = acc + std::size_t(part) * A2 * cf;
    for (long blk = b0; blk < b1; ++blk) {
      const long t0 = blk * tb;
      const int nt = int(std::min<long>(tb, tiles - t0));
      for (int t = 0; t < nt; ++t) {
        const T* d[A2];
        tile_pointers(tl, x, t0 + t, zeros, d);
        const std::ptrdiff_t voff = std::ptrdiff_t(t) * cin;
        for_lanes<T>(0, cin, [&]<class L>(int c) { input_tile<B, T, L>(d, c, vx, voff); });
        int b, ty, tx;
        tl.locate(t0 + t, b, ty, tx);
        // dY rows of the tile: read in place when they are whole panels, else copied zero-padded;
        // positions beyond the image read a row of zeros.
        const T* g[M * M];
        T* zero_row = dyt + std::size_t(M * M) * cpad;
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < M; ++j) {
            const int oy = M * ty + i, ox = M * tx + j;
            if (oy >= p.oh || ox >= p.ow) { g[i * M + j] = zero_row; continue; }
            const T* src = dy + ((std::ptrdiff_t(b) * p.oh + oy) * p.ow + ox) * cout;
            if (cpad == cout) { g[i * M + j] = src; continue; }
            T* row = dyt + std::size_t(i * M + j) * cpad;
            std::memcpy(row, src, sizeof(T) * cout);
            std::fill(row + cout, row + cpad, T(0));
            g[i * M + j] = row;
          }
        // Row t of each xi's packed panels: element f goes to panel f / NR, column f % NR.
        for (int jp = 0; jp < npan; ++jp) {
          T* dst[A2];
          for (int xi = 0; xi < A2; ++xi) dst[xi] = yp + xi * ldy + (std::size_t(jp) * tb + t) * NR;
          for_lanes<T>(jp * NR, (jp + 1) * NR, [&]<class L>(int f) { gradient_tile<B, T, L>(g, f, dst, f - jp * NR); });
        }
      }
      // acc_xi[c][f] += sum_t V_xi[t][c] dY~_xi[t][f]: A = V_xi^T read in place (step cin).
      gemm::Epilogue<T> ep;
      ep.accumulate = blk > b0;
      const std::ptrdiff_t zero_off = 0;
      for (int xi = xi0; xi < xi1; ++xi) {
        const T* panel0 = yp + xi * ldy;
        for (int it = 0; it < mtiles; ++it) {
          const T* rows[MR];
          for (int r = 0; r < MR; ++r) rows[r] = vx[xi] + std::min(it * MR + r, cin - 1);
          const gemm::APanel<T> ap{rows, &zero_off, 1, nt, cin};
          for (int jp = 0; jp < npan; ++jp)
            U::run(ap, panel0 + std::size_t(jp) * tb * NR, accp + std::size_t(xi) * cf + std::size_t(it) * MR * cout + jp * NR,
                   cout, std::min(MR, cin - it * MR), std::min(NR, cout - jp * NR), ep);
        }
      }
    }
  }
  // Sum the parts in order, then dg = G^T M G, vectorised over (c, f).
  const long lanes_total = long(cf);
  const long chunk = 256;
#pragma omp parallel for schedule(static) if (cf > 4096)
  for (long i0 = 0; i0 < lanes_total; i0 += chunk)
    for_lanes<T>(int(i0), int(std::min(lanes_total, i0 + chunk)), [&]<class L>(int i) { finish_lane<B, T, L>(acc, parts, cf, dw, i); });
}

}  // namespace winograd_detail

// F(M x M, 3 x 3); M = 2 or 4.
template <int M>
struct WinogradT {
  static constexpr const char* name = M == 2 ? "winograd" : "winograd-4x4";
  static constexpr int A2 = (M + 2) * (M + 2);

  static bool applies(const ConvGeometry& g) { return g.k == 3 && g.stride == 1; }
  // The input gradient multiplies the zero border of dy too; past this ratio col2im is cheaper.
  static bool input_gradient_applies(const ConvGeometry& g) {
    return applies(g) && double(g.h) * g.w <= 1.6 * double(g.oh) * g.ow;
  }

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    forward_impl(g, x, w, b, y, ws, false);
  }
  // y = max(conv(x, w) + b, 0) in one pass: the ReLU is applied in the output transform.
  template <class T>
  static void forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    forward_impl(g, x, w, b, y, ws, true);
  }

  // y = maxpool_P(max(conv(x, w) + b, 0)) with each window's position (py * P + px) in argmax:
  // Conv2D, ReLU and MaxPool<P> in one pass, pooled in the output transform, where P divides
  // the tile side M (a window then never leaves its tile). Returns false, having computed
  // nothing, for other P.
  template <class T>
  static bool forward_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* b, int P, T* y,
                                   std::uint8_t* argmax, Workspace<T>& ws) {
    if (!applies(g)) return ImplicitGemm::forward_relu_maxpool(g, x, w, b, P, y, argmax, ws);
    if (P < 1 || M % P != 0) return false;
    forward_impl(g, x, w, b, y, ws, true, static_cast<const T*>(nullptr), P, argmax);
    return true;
  }

  // y = max(scale * conv(x, w) + shift, 0) per output channel (BatchNorm folded at inference),
  // the affine map and the ReLU in the output transform.
  template <class T>
  static void forward_affine_relu(const ConvGeometry& g, const T* x, const T* w, const T* scale, const T* shift, T* y,
                                  Workspace<T>& ws) {
    forward_impl(g, x, w, shift, y, ws, true, scale);
  }
  // ... and MaxPool<P> in the same pass, as forward_relu_maxpool.
  template <class T>
  static bool forward_affine_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* scale,
                                          const T* shift, int P, T* y, std::uint8_t* argmax, Workspace<T>& ws) {
    if (!applies(g)) return ImplicitGemm::forward_affine_relu_maxpool(g, x, w, scale, shift, P, y, argmax, ws);
    if (P < 1 || M % P != 0) return false;
    forward_impl(g, x, w, shift, y, ws, true, scale, P, argmax);
    return true;
  }

  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    if (!applies(g)) return ImplicitGemm::backward(g, x, w, dy, dw, db, dx, ws);
    if (dw) {
      const winograd_detail::Problem p{g.n, g.h, g.w, g.c, g.pad_top, g.pad_left, g.oh, g.ow, g.f};
      winograd_detail::weight_gradient<M>(p, x, dy, dw, ws);
      gemm::column_sums(dy, long(g.out_pixels()), g.f, db);
    }
    if (!dx) return;
    if (!input_gradient_applies(g)) return ImplicitGemm::backward(g, x, w, dy, (T*)nullptr, (T*)nullptr, dx, ws);
    // dx = correlation of dy (padded by 2 - pad) with w rotated 180 degrees, c and f swapped.
    T* u = ws.get_b(A2 * gemm::packed_b_size<T>(g.f, g.c));
    const std::size_t cf = std::size_t(g.c) * g.f;
    T* wr = ws.get_a(9 * cf);  // [ky][kx][f][c]
    for (int ky = 0; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx)
        for (int c = 0; c < g.c; ++c)
          for (int f = 0; f < g.f; ++f)
            wr[(ky * 3 + kx) * cf + std::size_t(f) * g.c + c] = w[((2 - ky) * 3 + (2 - kx)) * cf + std::size_t(c) * g.f + f];
    winograd_detail::transform_weights<M>(g.f, g.c, wr, u);
    const winograd_detail::Problem p{g.n, g.oh, g.ow, g.f, 2 - g.pad_top, 2 - g.pad_left, g.h, g.w, g.c};
    winograd_detail::convolve<M>(p, dy, u, (const T*)nullptr, dx);
  }

 private:
  template <class T>
  static void forward_impl(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws, bool relu,
                           const T* scale = nullptr, int pool = 0, std::uint8_t* argmax = nullptr) {
    if (!applies(g)) {
      if (scale) return ImplicitGemm::forward_affine_relu(g, x, w, scale, b, y, ws);
      return relu ? ImplicitGemm::forward_relu(g, x, w, b, y, ws) : ImplicitGemm::forward(g, x, w, b, y, ws);
    }
    const std::size_t nw = 9 * std::size_t(g.c) * g.f;
    constexpr PreparedWeights kind = M == 2 ? PreparedWeights::winograd_2x2 : PreparedWeights::winograd_4x4;  // kept for inference
    constexpr int NR = gemm::Microkernel<T>::NR;  // the packing's layout
    if (!ws.has_prepared(kind, w, nw, NR))
      winograd_detail::transform_weights<M>(g.c, g.f, w, ws.prepare(kind, w, nw, A2 * gemm::packed_b_size<T>(g.c, g.f), NR));
    const winograd_detail::Problem p{g.n, g.h, g.w, g.c, g.pad_top, g.pad_left, g.oh, g.ow, g.f};
    winograd_detail::convolve<M>(p, x, ws.prepared.data(), b, y, relu, scale, pool, argmax);
  }
};

using Winograd = WinogradT<2>;
using Winograd4x4 = WinogradT<4>;
