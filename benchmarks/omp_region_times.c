/* Where a short forward pass loses its threads: the time each thread spends inside every OpenMP
 * parallel region of a repeating cycle (one forward = one cycle), and each region's wall time
 * from fork to join. Loaded into any hubble program with LD_PRELOAD; it wraps libgomp's
 * GOMP_parallel, the entry GCC emits for `#pragma omp parallel [for]` (dynamic and runtime
 * schedules enter elsewhere and are not counted).
 *
 *   gcc -O2 -shared -fPIC -fopenmp -o omp_region_times.so benchmarks/omp_region_times.c -ldl
 *   OMP_REGION_CYCLE=4 LD_PRELOAD=$PWD/omp_region_times.so \
 *       build/benchmarks/infer_throughput calls paper.h5 --path typed --batch 1 --calls 8000 --threads 2
 *
 * OMP_REGION_CYCLE is the number of parallel regions in one cycle (PaperNet and ImprovedNet at
 * batch 1: 4, one per convolution); the first 1000 regions are skipped as warm-up. Per region of
 * the cycle it prints: the serial gap before it (the work between regions), each thread's start
 * after the fork and its busy time, the wall time, and the region's function as an offset into
 * its binary (`addr2line -f -C -e BINARY OFFSET` names it). Up to 4 threads are reported.
 *
 * What it showed on a 2-core Zen 5 VM (docs/kernels.md, "Zen 5: two threads on one image"): a
 * fork and join costs 3-5 us there, and the two threads' busy times in one region told the
 * duplicated work and the imbalance apart. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kMaxCycle = 64, kMaxThreads = 4, kWarmup = 1000 };

typedef void (*gomp_parallel_fn)(void (*)(void*), void*, unsigned, unsigned);

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

struct region_call {
  void (*fn)(void*);
  void* data;
  double start[kMaxThreads], end[kMaxThreads];
};

static void timed_body(void* p) {
  struct region_call* c = p;
  const int id = omp_get_thread_num();
  const double t0 = now_us();
  c->fn(c->data);
  if (id < kMaxThreads) c->start[id] = t0, c->end[id] = now_us();
}

static int cycle = 0;
static long calls = 0, counted[kMaxCycle];
static double last_join = 0, gap[kMaxCycle], wall[kMaxCycle];
static double start_sum[kMaxCycle][kMaxThreads], busy_sum[kMaxCycle][kMaxThreads];
static int threads_seen[kMaxCycle];
static void* body_of[kMaxCycle];

void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) {
  static gomp_parallel_fn real;
  if (!real) real = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
  if (!cycle) {
    const char* s = getenv("OMP_REGION_CYCLE");
    cycle = s ? atoi(s) : 1;
    if (cycle < 1 || cycle > kMaxCycle) cycle = 1;
  }
  struct region_call c = {fn, data, {0}, {0}};
  const double fork = now_us();
  real(timed_body, &c, num_threads, flags);
  const double join = now_us();
  const int k = (int)(calls % cycle);
  if (++calls > kWarmup) {  /* single-threaded here: the master, after the join */
    gap[k] += fork - last_join;
    wall[k] += join - fork;
    for (int t = 0; t < kMaxThreads; ++t)
      if (c.end[t] > 0) {
        start_sum[k][t] += c.start[t] - fork;
        busy_sum[k][t] += c.end[t] - c.start[t];
        if (t + 1 > threads_seen[k]) threads_seen[k] = t + 1;
      }
    body_of[k] = (void*)fn;
    ++counted[k];
  }
  last_join = join;
}

__attribute__((destructor)) static void report(void) {
  for (int k = 0; k < cycle; ++k) {
    if (!counted[k]) continue;
    const double n = (double)counted[k];
    Dl_info info = {0};
    dladdr(body_of[k], &info);
    fprintf(stderr, "region %d (%s+%#lx): gap before %.2f us | wall %.2f us |", k,
            info.dli_fname ? info.dli_fname : "?",
            (unsigned long)((char*)body_of[k] - (char*)info.dli_fbase), gap[k] / n, wall[k] / n);
    for (int t = 0; t < threads_seen[k]; ++t)
      fprintf(stderr, " thread %d: start %.2f busy %.2f |", t, start_sum[k][t] / n, busy_sum[k][t] / n);
    fprintf(stderr, " (%ld calls)\n", counted[k]);
  }
}
