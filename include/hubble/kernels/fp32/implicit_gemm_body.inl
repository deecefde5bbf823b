// implicit_gemm.hpp's kernels (implicit_detail, ImplicitGemm), compiled once per instruction set
// by fp32/instantiate.inl (see fp32/isa.hpp); no include guard. Read implicit_gemm.hpp first.
namespace implicit_detail {

using gemm::APanel;
using gemm::Epilogue;

// Copies x [n][h][w][c] into a zero-padded [n][hp][wp][c] with x's (0,0) at (top, left);
// rows/columns of x outside [0, hp) x [0, wp) after the shift are dropped.
template <class T>
void pad_copy(const T* x, int n, int h, int w, int c, int top, int left, int hp, int wp, T* out) {
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n; ++b)
    for (int y = 0; y < hp; ++y) {
      T* dst = out + ((std::size_t(b) * hp + y) * wp) * c;
      const int sy = y - top;
      if (sy < 0 || sy >= h) { std::fill(dst, dst + std::size_t(wp) * c, T(0)); continue; }
      const int x0 = std::max(0, left), x1 = std::min(wp, left + w);  // destination columns with data
      std::fill(dst, dst + std::size_t(x0) * c, T(0));
      if (x1 > x0) std::memcpy(dst + std::size_t(x0) * c, x + ((std::size_t(b) * h + sy) * w + (x0 - left)) * c,
                               sizeof(T) * std::size_t(x1 - x0) * c);
      std::fill(dst + std::size_t(std::max(x0, x1)) * c, dst + std::size_t(wp) * c, T(0));
    }
}

// A convolution over an input that needs no padding (every window in bounds).
struct Conv {
  int n, hp, wp, c;  // input (already padded)
  int k, s;          // kernel side, stride
  int oh, ow, f;     // output
  int K() const { return k * k * c; }
  long M() const { return long(n) * oh * ow; }
};

// How the forward walks k: each kernel row (k*c contiguous values) is cut into q equal pieces
// so that no piece is longer than KC (when a small q divides the row), and whole pieces are grouped into k blocks of at most KC
// (a packed B panel of kc x NR then stays in L1).
struct SegmentPlan {
  int count = 0, len = 0, per_block = 0, blocks = 0;
  std::vector<std::ptrdiff_t> off;  // offset of each piece from the window's origin
};
template <class T>
SegmentPlan plan_segments(const Conv& cv) {
  constexpr int KC = gemm::Blocking<T>::KC;
  const int row = cv.k * cv.c;
  int q = 1;  // the smallest divisor of row (up to 8) that brings a piece under KC; else whole rows
  for (int d = 2; d <= 8 && row / q > KC; ++d)
    if (row % d == 0 && row / d <= KC) q = d;
  SegmentPlan p;
  p.len = row / q;
  p.count = cv.k * q;
  p.per_block = std::max(1, KC / p.len);
  p.blocks = (p.count + p.per_block - 1) / p.per_block;
  p.off.resize(p.count);
  for (int ky = 0; ky < cv.k; ++ky)
    for (int j = 0; j < q; ++j) p.off[ky * q + j] = std::ptrdiff_t(ky) * cv.wp * cv.c + std::ptrdiff_t(j) * p.len;
  return p;
}

// Packs a K x f matrix (get(kk, j) = B[kk][j]) into the forward layout: for each k block of
// plan_segments, NR-wide panels [kc][NR], zero-padded to a multiple of NR columns.
template <class T, class Get>
void pack_weights(const Conv& cv, Get get, T* dst) {
  constexpr int NR = gemm::Microkernel<T>::NR;
  const SegmentPlan sp = plan_segments<T>(cv);
  const int npan = (cv.f + NR - 1) / NR;
#pragma omp parallel for schedule(static) collapse(2)
  for (int kb = 0; kb < sp.blocks; ++kb)
    for (int jp = 0; jp < npan; ++jp) {
      const int k0 = kb * sp.per_block * sp.len, kc = std::min(sp.count, (kb + 1) * sp.per_block) * sp.len - k0;
      T* d = dst + std::size_t(k0) * npan * NR + std::size_t(jp) * kc * NR;
      for (int p = 0; p < kc; ++p)
        for (int j = 0; j < NR; ++j) {
          const int col = jp * NR + j;
          d[std::size_t(p) * NR + j] = col < cv.f ? get(k0 + p, col) : T(0);
        }
    }
}

// Max-pooling fused into the forward: the P x P windows of the convolution's output are
// computed a block of whole windows at a time into a small per-thread buffer (L1/L2), which
// is then pooled; the full-size output is never written (conv1 at batch 32: 15.7 MB of stores
// become 3.9 MB). Only windows that fit are computed: a leftover row or column of the output,
// which the pool drops, costs nothing.
struct PoolPlan {
  int p = 0;  // window side = stride; 0: no pooling
  std::uint8_t* argmax = nullptr;  // window position (py * p + px) of each pooled maximum
};

// Where the forward's pixel blocks start (and, last, M): blocks of at most MC pixels (a multiple
// of unit), whole units each, spread evenly over a multiple of the thread count, so that no thread
// gets a block more than another (conv1 at batch 1 on 2 threads: 21 blocks of 192 pixels, 11 for
// one thread and 10 for the other, became 22 of 168-180). Each pixel's sum does not depend on its
// block: the results are the same bits either way. Kept out of forward(): a bigger forward stops
// the compiler inlining the micro-kernel into it (callgrind: +66% instructions in conv1).
[[gnu::noinline]] inline std::vector<long> pixel_blocks(long M, int MC, int unit, int threads) {
  const long units = (M + unit - 1) / unit;
  long blocks = (M + MC - 1) / MC;
  if (blocks >= threads) blocks = std::min(units, (blocks + threads - 1) / threads * threads);
  std::vector<long> start(std::size_t(blocks) + 1);
  for (long b = 0; b <= blocks; ++b) start[std::size_t(b)] = std::min(M, b * units / blocks * unit);
  return start;
}

// y = im2col(x) * B (+ bias, relu), [M x f]; with pool.p > 0, y is the pooled output
// [n][oh/p][ow/p][f] instead. B is packed by pack_weights, or (ldb > 0) read in place as a
// row-major K x f matrix with rows ldb apart, which needs f to be a multiple of NR. With a
// scale, each column j is scale[j] * (im2col(x) * B) + bias[j] before the ReLU.
template <class T>
void forward(const Conv& cv, const T* x, const T* bp, T* y, const T* bias, bool relu, std::ptrdiff_t ldb = 0,
             PoolPlan pool = {}, const T* scale = nullptr) {
  using U = gemm::Microkernel<T>;
  constexpr int MR = U::MR, NR = U::NR;
  const int P = pool.p, PP = std::max(1, P * P);
  const int ph = P ? cv.oh / P : cv.oh, pw = P ? cv.ow / P : cv.ow;  // pooled (or plain) output
  // Pixels per task: whole windows and whole MR tiles, about 192.
  const int unit = std::lcm(MR, PP), MC = std::max(1, 192 / unit) * unit;
  const SegmentPlan sp = plan_segments<T>(cv);
  const int npan = (cv.f + NR - 1) / NR;
  const long M = long(cv.n) * ph * pw * PP;  // pixels computed (pooling: window by window)
  const std::vector<long> block_start = pixel_blocks(M, MC, unit, max_threads());
  const long tm = long(block_start.size()) - 1;
  // Split the panels into groups when there are too few pixel blocks to feed every thread.
  int groups = 1;
  while (tm * groups < 8L * max_threads() && groups < npan) ++groups;
  const long tasks = tm * groups;
  const long windows_per_image = long(ph) * pw;

#pragma omp parallel for schedule(static) if (tasks > 1)
  for (long t = 0; t < tasks; ++t) {
    const long m0 = block_start[std::size_t(t / groups)];
    const int g = int(t % groups);
    const int mc = int(block_start[std::size_t(t / groups) + 1] - m0);  // <= MC
    const int jp0 = npan * g / groups, jp1 = npan * (g + 1) / groups;
    thread_local std::vector<const T*> rows;  // one per thread, kept: no allocation per task
    rows.resize(std::size_t(MC + MR));
    {
      // Pixel m0 + i is position (qy, qx) of window (wy, wx) of image b (with no pooling: the
      // pixel itself, a 1 x 1 window). Divide once, then step: divisions per pixel held conv1's
      // single-threaded forward at 72-74% of peak, stepping gives 76-77%.
      const int p1 = P ? P : 1;
      const long win = m0 / PP;
      int b = int(win / windows_per_image), rem = int(win % windows_per_image), wy = rem / pw, wx = rem % pw, qy = 0, qx = 0;
      for (int i = 0; i < mc; ++i) {
        const int oy = wy * p1 + qy, ox = wx * p1 + qx;
        rows[i] = x + ((std::ptrdiff_t(b) * cv.hp + std::ptrdiff_t(oy) * cv.s) * cv.wp + std::ptrdiff_t(ox) * cv.s) * cv.c;
        if (++qx < p1) continue;
        qx = 0;
        if (++qy < p1) continue;
        qy = 0;
        if (++wx < pw) continue;
        wx = 0;
        if (++wy < ph) continue;
        wy = 0;
        ++b;
      }
    }
    for (int i = mc; i < mc + MR; ++i) rows[i] = rows[mc - 1];  // tail rows: computed, not stored
    // Where the tiles go: y itself, or the pooling buffer.
    T* out = P ? thread_scratch<T, Scratch::implicit_pool_tiles>(std::size_t(MC) * cv.f) : y + m0 * cv.f;
    for (int kb = 0; kb < sp.blocks; ++kb) {
      const int s0 = kb * sp.per_block, ns = std::min(sp.count, s0 + sp.per_block) - s0;
      const int kc = ns * sp.len;
      const T* bblock = ldb > 0 ? bp + std::size_t(s0) * sp.len * ldb : bp + std::size_t(s0) * sp.len * npan * NR;
      Epilogue<T> ep;
      ep.accumulate = kb > 0;
      const bool last = kb + 1 == sp.blocks;
      ep.relu = last && relu;
      for (int jp = jp0; jp < jp1; ++jp) {
        ep.bias = last && bias ? bias + jp * NR : nullptr;
        ep.scale = last && scale ? scale + jp * NR : nullptr;
        const T* bpanel = ldb > 0 ? bblock + jp * NR : bblock + std::size_t(jp) * kc * NR;
        for (int ir = 0; ir < mc; ir += MR) {
          const APanel<T> a{rows.data() + ir, sp.off.data() + s0, ns, sp.len, 1};
          U::run(a, bpanel, out + std::ptrdiff_t(ir) * cv.f + jp * NR, cv.f, std::min(MR, mc - ir),
                 std::min(NR, cv.f - jp * NR), ep, ldb > 0 ? ldb : NR);
        }
      }
    }
    if (P) {  // the maximum of each window, first one on ties (as MaxPoolLayer)
      const int f0 = jp0 * NR, f1 = std::min(cv.f, jp1 * NR);
      for (int wi = 0; wi < mc / PP; ++wi) {
        const T* o = out + std::size_t(wi) * PP * cv.f;
        const std::size_t dst = std::size_t(m0 / PP + wi) * cv.f;
        T* yo = y + dst;
        std::uint8_t* ao = pool.argmax + dst;
        int j = f0;
#if HUBBLE_FP32_AVX2
        if constexpr (std::is_same_v<T, float>)  // 8 channels at a time (GCC keeps the scalar loop branchy)
          for (; j + 8 <= f1; j += 8) {
            __m256 best = _mm256_loadu_ps(o + j);
            __m256i arg = _mm256_setzero_si256();
            for (int q = 1; q < PP; ++q) {
              const __m256 v = _mm256_loadu_ps(o + std::size_t(q) * cv.f + j);
              const __m256 more = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
              best = _mm256_blendv_ps(best, v, more);
              arg = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(arg), _mm256_castsi256_ps(_mm256_set1_epi32(q)), more));
            }
            _mm256_storeu_ps(yo + j, best);
            const __m128i a16 = _mm_packus_epi32(_mm256_castsi256_si128(arg), _mm256_extracti128_si256(arg, 1));
            _mm_storel_epi64(reinterpret_cast<__m128i*>(ao + j), _mm_packus_epi16(a16, a16));  // 8 bytes
          }
#endif
        for (; j < f1; ++j) {
          T best = o[j];
          std::uint8_t arg = 0;
          for (int q = 1; q < PP; ++q)
            if (o[std::size_t(q) * cv.f + j] > best) best = o[std::size_t(q) * cv.f + j], arg = std::uint8_t(q);
          yo[j] = best;
          ao[j] = arg;
        }
      }
    }
  }
}

// dw[K x f] = im2col(x)^T * dy and db = column sums of dy.
template <class T>
void weight_gradient(const Conv& cv, const T* x, const T* dy, T* dw, T* db, Workspace<T>& ws) {
  // Short output rows make the segmented walk mostly overhead: then pack A instead.
  const bool pack_a = cv.ow < 8;
  using U = gemm::Microkernel<T>;
  constexpr int MR = U::MR, NR = U::NR;
  const int K = cv.K(), f = cv.f;
  const bool direct_b = f % NR == 0;  // dy rows hold whole panels: B read in place, no copy
  const int npan = (f + NR - 1) / NR, tiles_m = (K + MR - 1) / MR;
  const long out_rows = long(cv.n) * cv.oh;  // reduction runs over output rows of ow pixels
  // About KC/2 pixels per chunk: the B panel (chunk x NR) and the input rows under the chunk
  // then fit L1 together (conv1: 2 output rows, 8 KiB + 11 KiB).
  const int rows_per_chunk = std::max(1, gemm::Blocking<T>::KC / 2 / cv.ow);
  // k parts: a function of the shape only (reproducible sums).
  int parts = 1;
  if (long(tiles_m) * npan < 64) parts = int(std::min<long>(8, std::max<long>(1, out_rows / (4L * rows_per_chunk))));
  int groups = 1;  // tile groups per part, for load balance only
  while (long(parts) * groups < 4L * max_threads() && groups < tiles_m) ++groups;
  const long tasks = long(parts) * groups;

  const std::size_t kf = std::size_t(K) * f;
  T* scratch = parts > 1 ? ws.get_c(std::size_t(parts) * (kf + f)) : nullptr;
  // Patch position offsets for every row of dw (ky, kx, ci), with tail rows repeated.
  std::vector<const T*> patch(std::size_t(tiles_m) * MR);
  for (int i = 0; i < tiles_m * MR; ++i) {
    const int ii = std::min(i, K - 1);
    const int ky = ii / (cv.k * cv.c), rem = ii % (cv.k * cv.c);
    patch[i] = x + (std::ptrdiff_t(ky) * cv.wp) * cv.c + rem;  // rem = kx*c + ci
  }

#pragma omp parallel for schedule(static) if (tasks > 1)
  for (long t = 0; t < tasks; ++t) {
    const int p = int(t / groups), g = int(t % groups);
    const int tile0 = tiles_m * g / groups, tile1 = tiles_m * (g + 1) / groups;
    const long r0 = out_rows * p / parts, r1 = out_rows * (p + 1) / parts;
    T* dwt = parts > 1 ? scratch + std::size_t(p) * kf : dw;
    T* dbt = parts > 1 ? scratch + std::size_t(parts) * kf + std::size_t(p) * f : db;
    const bool do_bias = g == 0;
    if (do_bias) std::fill(dbt, dbt + f, T(0));
    if (r1 <= r0) {  // an empty part still owns its (zero) sums
      for (int tile = tile0; tile < tile1; ++tile)
        for (int r = tile * MR; r < std::min(K, (tile + 1) * MR); ++r) std::fill(dwt + std::size_t(r) * f, dwt + std::size_t(r + 1) * f, T(0));
      continue;
    }
    T* bp = thread_scratch<T, Scratch::implicit_dy_panels>(std::size_t(rows_per_chunk) * cv.ow * npan * NR);
    std::vector<std::ptrdiff_t> seg_off(rows_per_chunk);
    for (long rc = r0; rc < r1; rc += rows_per_chunk) {
      const int nrows = int(std::min<long>(rows_per_chunk, r1 - rc));
      const int kc = nrows * cv.ow;
      // B = dy rows [rc*ow, rc*ow + kc): read in place when every panel is full, else packed.
      const T* src = dy + std::size_t(rc) * cv.ow * f;
      const T* bsrc = direct_b ? src : bp;
      const std::ptrdiff_t ldb = direct_b ? f : NR, pstride = direct_b ? NR : std::ptrdiff_t(kc) * NR;
      for (int jp = 0; jp < npan && !direct_b; ++jp) {
        T* d = bp + std::size_t(jp) * kc * NR;
        const int w = std::min(NR, f - jp * NR);
        for (int q = 0; q < kc; ++q) {
          const T* s = src + std::size_t(q) * f + jp * NR;
          for (int j = 0; j < w; ++j) d[std::size_t(q) * NR + j] = s[j];
          for (int j = w; j < NR; ++j) d[std::size_t(q) * NR + j] = T(0);
        }
      }
      if (do_bias)
        for (int q = 0; q < kc; ++q)
          for (int j = 0; j < f; ++j) dbt[j] += src[std::size_t(q) * f + j];
      for (int i = 0; i < nrows; ++i) {
        const long row = rc + i;
        const int b = int(row / cv.oh), oy = int(row % cv.oh);
        seg_off[i] = (std::ptrdiff_t(b) * cv.hp + std::ptrdiff_t(oy) * cv.s) * cv.wp * cv.c;
      }
      Epilogue<T> ep;
      ep.accumulate = rc > r0;
      if (pack_a) {
        // Pack this tile's rows of im2col^T for the chunk ([pixel][MR], contiguous), then run
        // every B panel past it.
        T* ap = thread_scratch<T, Scratch::implicit_patch_panels>(std::size_t(kc) * MR);
        const std::ptrdiff_t step = std::ptrdiff_t(cv.s) * cv.c;
        const std::ptrdiff_t zero_off = 0;
        for (int tile = tile0; tile < tile1; ++tile) {
          const T* const* pr = patch.data() + std::size_t(tile) * MR;
          T* d = ap;
          for (int i = 0; i < nrows; ++i)
            for (int ox = 0; ox < cv.ow; ++ox, d += MR) {
              const std::ptrdiff_t o = seg_off[i] + ox * step;
              for (int r = 0; r < MR; ++r) d[r] = pr[r][o];
            }
          const T* rows[MR];
          for (int r = 0; r < MR; ++r) rows[r] = ap + r;
          const APanel<T> a{rows, &zero_off, 1, kc, MR};
          for (int jp = 0; jp < npan; ++jp)
            U::run(a, bsrc + jp * pstride, dwt + std::size_t(tile) * MR * f + jp * NR, f, std::min(MR, K - tile * MR),
                   std::min(NR, f - jp * NR), ep, ldb);
        }
      } else {
        for (int jp = 0; jp < npan; ++jp) {
          const T* bpanel = bsrc + jp * pstride;
          for (int tile = tile0; tile < tile1; ++tile) {
            const APanel<T> a{patch.data() + std::size_t(tile) * MR, seg_off.data(), nrows, cv.ow, std::ptrdiff_t(cv.s) * cv.c};
            U::run(a, bpanel, dwt + std::size_t(tile) * MR * f + jp * NR, f, std::min(MR, K - tile * MR), std::min(NR, f - jp * NR),
                   ep, ldb);
          }
        }
      }
    }
  }
  if (parts > 1) {
    const T* part = scratch;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < long(kf); ++i) {
      T s = part[i];
      for (int p = 1; p < parts; ++p) s += part[std::size_t(p) * kf + i];
      dw[i] = s;
    }
    const T* dbp = scratch + std::size_t(parts) * kf;
    for (int j = 0; j < f; ++j) {
      T s = dbp[j];
      for (int p = 1; p < parts; ++p) s += dbp[std::size_t(p) * f + j];
      db[j] = s;
    }
  }
}

// dx = col2im(dy * w^T): the column gradient of a group of samples is computed into a per-thread
// buffer with the micro-kernel (A = rows of dy, B = w^T packed once), then scattered back.
// Samples are never split between threads, so the scatter needs no synchronisation.
template <class T>
void input_gradient_col2im(const ConvGeometry& g, const T* dy, const T* w, T* dx, Workspace<T>& ws) {
  const int P = int(g.patch()), f = g.f;
  T* bp = ws.get_b(gemm::packed_b_size<T>(f, P));
  gemm::pack_b_panels<T>(f, P, [&](int fi, int j) { return w[std::size_t(j) * f + fi]; }, bp);  // B = w^T
  const int rows = g.oh * g.ow;
  // Whole samples per task (about 96 rows, so B panels are reused), about four tasks a thread.
  const int per_task = std::max(1, std::min((96 + rows - 1) / rows, (g.n + 4 * max_threads() - 1) / (4 * max_threads())));
  const int tasks = (g.n + per_task - 1) / per_task;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (int t = 0; t < tasks; ++t) {
    const int b0 = t * per_task, nb = std::min(per_task, g.n - b0);
    const int m = nb * rows;
    T* dcol = thread_scratch<T, Scratch::implicit_dcol>(std::size_t(m) * P);
    gemm::rows_times_packed(m, P, f, dy + std::size_t(b0) * rows * f, f, bp, dcol, P);
    ConvGeometry part = g;
    part.n = nb;
    col2im(part, dcol, dx + std::size_t(b0) * g.h * g.w * g.c);
  }
}

}  // namespace implicit_detail

struct ImplicitGemm {
  static constexpr const char* name = "implicit-gemm";

  // The padded input (or x itself when no padding is needed) and its geometry.
  template <class T>
  static const T* padded_input(const ConvGeometry& g, const T* x, Workspace<T>& ws, implicit_detail::Conv& cv) {
    const int hp = (g.oh - 1) * g.stride + g.k, wp = (g.ow - 1) * g.stride + g.k;
    cv = {g.n, hp, wp, g.c, g.k, g.stride, g.oh, g.ow, g.f};
    if (g.pad_top == 0 && g.pad_left == 0 && hp <= g.h && wp <= g.w) {
      cv.hp = g.h;
      cv.wp = g.w;
      return x;
    }
    T* xp = ws.get_a(std::size_t(g.n) * hp * wp * g.c);
    implicit_detail::pad_copy(x, g.n, g.h, g.w, g.c, g.pad_top, g.pad_left, hp, wp, xp);
    return xp;
  }

  template <class T>
  static void forward(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    forward_impl(g, x, w, b, y, ws, false);
  }
  // y = max(conv(x, w) + b, 0) in one pass: the ReLU is applied in the micro-kernel's store.
  template <class T>
  static void forward_relu(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws) {
    forward_impl(g, x, w, b, y, ws, true);
  }

  // y = maxpool_P(max(conv(x, w) + b, 0)), P x P windows with stride P, and the window position
  // (py * P + px) of each maximum in argmax: Conv2D, ReLU and MaxPool<P> in one pass, the
  // convolution's own output never stored. y is [n][oh/P][ow/P][f]. Returns true (it always
  // applies; Tuned may decline).
  template <class T>
  static bool forward_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* b, int P, T* y,
                                   std::uint8_t* argmax, Workspace<T>& ws) {
    forward_impl(g, x, w, b, y, ws, true, implicit_detail::PoolPlan{P, argmax});
    return true;
  }

  // y = max(scale * conv(x, w) + shift, 0) per output channel: a convolution, the affine map of
  // a BatchNorm at inference and a ReLU in one pass (network/fusion.hpp folds BatchNorm so).
  template <class T>
  static void forward_affine_relu(const ConvGeometry& g, const T* x, const T* w, const T* scale, const T* shift, T* y,
                                  Workspace<T>& ws) {
    forward_impl(g, x, w, shift, y, ws, true, {}, scale);
  }
  // ... and MaxPool<P> in the same pass, as forward_relu_maxpool.
  template <class T>
  static bool forward_affine_relu_maxpool(const ConvGeometry& g, const T* x, const T* w, const T* scale,
                                          const T* shift, int P, T* y, std::uint8_t* argmax, Workspace<T>& ws) {
    forward_impl(g, x, w, shift, y, ws, true, implicit_detail::PoolPlan{P, argmax}, scale);
    return true;
  }

  template <class T>
  static void backward(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* dw, T* db, T* dx,
                       Workspace<T>& ws) {
    if (dw) {
      implicit_detail::Conv cv;
      const T* xp = padded_input(g, x, ws, cv);
      implicit_detail::weight_gradient(cv, xp, dy, dw, db, ws);
    }
    if (!dx) return;
    implicit_detail::input_gradient_col2im(g, dy, w, dx, ws);
  }

 private:
  template <class T>
  static void forward_impl(const ConvGeometry& g, const T* x, const T* w, const T* b, T* y, Workspace<T>& ws, bool relu,
                           implicit_detail::PoolPlan pool = {}, const T* scale = nullptr) {
    implicit_detail::Conv cv;
    const T* xp = padded_input(g, x, ws, cv);
    constexpr int NR = gemm::Microkernel<T>::NR;
    if (g.f % NR == 0) return implicit_detail::forward(cv, xp, w, y, b, relu, g.f, pool, scale);  // w is already NR panels
    const std::size_t nw = std::size_t(cv.K()) * g.f;
    constexpr PreparedWeights kind = PreparedWeights::implicit_gemm_panels;  // kept for inference
    if (!ws.has_prepared(kind, w, nw, NR)) {
      T* bp = ws.prepare(kind, w, nw, std::size_t(cv.K()) * ((g.f + NR - 1) / NR) * NR, NR);
      const int f = g.f;
      implicit_detail::pack_weights<T>(cv, [&](int kk, int j) { return w[std::size_t(kk) * f + j]; }, bp);
    }
    implicit_detail::forward(cv, xp, ws.prepared.data(), y, b, relu, 0, pool, scale);
  }
};
