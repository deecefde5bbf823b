// mpi_allreduce — what one sum of PaperNet's gradients across the ranks costs (docs/distributed.md).
//
//   mpirun -np N --mca btl self,vader mpi_allreduce [repeats]   # shared memory
//   mpirun -np N --mca btl self,tcp   mpi_allreduce [repeats]   # TCP (loopback on one machine)
//
// Times hubble's two reproducible sums (MpiExchange: recursive doubling, log2(N) messages of the
// whole buffer; recursive halving + allgather, 2 (N-1)/N of it), which give the same bits, and,
// for comparison, MPI_Allreduce (whose order MPI chooses), on PaperNet's
// 654,922 float gradients (2.6 MB), and on 1 float for the latency. Each repetition starts after
// a barrier and counts the slowest rank; rank 0 prints the median and the minimum. Not a test.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "hubble/distributed/mpi.hpp"
#include "hubble/paper_net.hpp"

namespace {

struct Timing {
  double median = 0, best = 0;
};

Timing time_it(int repeats, const std::function<void()>& f) {
  for (int i = 0; i < 3; ++i) f();  // warm-up: connections, buffers
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    f();
    double mine = MPI_Wtime() - t0, slowest = 0;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    t.push_back(slowest);
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front()};
}

}  // namespace

int main(int argc, char** argv) {
  hubble::distributed::MpiSession mpi(argc, argv);
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 50;
  hubble::distributed::MpiExchange exchange;
  const std::size_t n = hubble::PaperNet::parameter_count;
  std::vector<float> grads(n), out(n), one(1, 1.0f);
  for (std::size_t i = 0; i < n; ++i) grads[i] = float(i % 1000) * 1e-6f;
  const Timing doubling = time_it(repeats, [&] { exchange.sum_doubling(std::span<float>(grads)); });
  const Timing halving = time_it(repeats, [&] { exchange.sum_halving(std::span<float>(grads)); });
  const Timing library = time_it(repeats, [&] {
    MPI_Allreduce(grads.data(), out.data(), int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  });
  const Timing latency = time_it(repeats, [&] { exchange.sum_doubling(std::span<float>(one)); });
  // Both fixed-order sums must give the same bits (they add in the same tree).
  std::vector<float> a(n), b(n);
  for (std::size_t i = 0; i < n; ++i) a[i] = b[i] = float(std::sin(double(i) * 0.37 + mpi.rank())) * 1e-3f;
  exchange.sum_doubling(std::span<float>(a));
  exchange.sum_halving(std::span<float>(b));
  const int same_here = std::equal(a.begin(), a.end(), b.begin()) ? 1 : 0;
  int same = 0;
  MPI_Allreduce(&same_here, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (mpi.rank() == 0) {
    std::printf("ranks %d, PaperNet gradients %zu floats (%.2f MB), %d repetitions\n", mpi.size(), n,
                double(n * sizeof(float)) / 1e6, repeats);
    std::printf("  hubble sum (recursive doubling, fixed order): median %8.3f ms   best %8.3f ms\n", doubling.median * 1e3,
                doubling.best * 1e3);
    std::printf("  hubble sum (halving + allgather, fixed order): median %8.3f ms   best %8.3f ms\n", halving.median * 1e3,
                halving.best * 1e3);
    std::printf("  MPI_Allreduce (MPI's order):                  median %8.3f ms   best %8.3f ms\n", library.median * 1e3,
                library.best * 1e3);
    std::printf("  doubling and halving give the same bits: %s\n", same ? "yes" : "NO");
    std::printf("  hubble sum of 1 float (latency):              median %8.3f us   best %8.3f us\n", latency.median * 1e6,
                latency.best * 1e6);
  }
  return 0;
}
