#pragma once
// Data-parallel training on MPI (optional: needs <mpi.h>; link the hubble::mpi target).
//
//   distributed::MpiSession mpi(argc, argv);          // MPI_Init ... MPI_Finalize
//   distributed::MpiExchange exchange;                // MPI_COMM_WORLD
//   distributed::require_same_settings(exchange, settings);   // refuses a rank that differs
//   trainer.set_exchange(exchange);                   // with TrainConfig::shards > 0
//
// The sums are the library's, not MPI's: MPI_Allreduce may add in any order and so is
// reproducible only at a fixed process count. Both of MpiExchange's sums add, for every value, in
// the same tree: at level l = 0, 1, ... rank r's partial sum meets that of rank r ^ 2^l. With the
// ranks owning aligned blocks of shards, that is the top of the fixed binary tree over the shards
// (train/sharded.hpp), and since IEEE addition is commutative (a + b and b + a have the same bits)
// every rank gets the same bits.
//   sum_doubling: recursive doubling, every rank adds the whole buffer at every level:
//                 log2(N) messages of M bytes.
//   sum_halving:  reduce-scatter by recursive halving with the levels in the same ascending order
//                 (each rank keeps and adds half of what it held), then an allgather that only
//                 copies: 2 log2(N) messages, 2 M (N - 1) / N bytes (Rabenseifner's algorithm).
// sum() takes halving for buffers of at least 4096 values per rank, doubling below (latency).
// docs/distributed.md measures both against MPI_Allreduce.
#include <mpi.h>

#include <cstddef>
#include <algorithm>
#include <cstdlib>
#include <map>
#include <span>
#include <type_traits>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/train/sharded.hpp"

namespace hubble::distributed {

// Was this process started by an MPI launcher (mpirun, mpiexec, srun)? Programs built with MPI
// run as a plain single process otherwise, without initialising MPI.
inline bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

// MPI_Init_thread for the lifetime of the object. Only the main thread calls MPI.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ends every rank of the job at once (after an error on this one), with `code` as exit status.
  [[noreturn]] static void abort_all(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  int rank_ = 0, size_ = 1;
};

class MpiExchange final : public train::Exchange {
 public:
  explicit MpiExchange(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int ranks() const override { return size_; }
  void sum(std::span<float> values) override { timed([&] { pick(values, MPI_FLOAT); }); }
  void sum(std::span<double> values) override { timed([&] { pick(values, MPI_DOUBLE); }); }
  void sum_doubling(std::span<float> values) { timed([&] { doubling_sum(values, MPI_FLOAT); }); }
  void sum_halving(std::span<float> values) { timed([&] { halving_sum(values, MPI_FLOAT); }); }
  void broadcast(std::span<std::byte> bytes) override {
    for (std::size_t at = 0; at < bytes.size(); at += chunk_bytes) {
      const int n = int(std::min(chunk_bytes, bytes.size() - at));
      MPI_Bcast(bytes.data() + at, n, MPI_BYTE, 0, comm_);
    }
  }
  // Seconds spent in sum() so far (the communication the trainer waits for).
  double seconds_in_sum() const { return seconds_; }

 private:
  static constexpr std::size_t chunk_bytes = std::size_t(1) << 30;

  template <class F>
  void timed(F&& f) {
    const double t0 = MPI_Wtime();
    f();
    seconds_ += MPI_Wtime() - t0;
  }
  template <class V>
  void pick(std::span<V> values, MPI_Datatype type) {
    if (values.size() >= std::size_t(size_) * 4096) halving_sum(values, type);
    else doubling_sum(values, type);
  }
  void check(std::size_t values) const {
    HUBBLE_CHECK(train::is_power_of_two(size_), "MpiExchange: the fixed-order sum needs a power-of-two number of ranks, not ",
                 size_);
    HUBBLE_CHECK(values < std::size_t(1) << 31, "MpiExchange: ", values, " values are too many for one message");
  }

  template <class V>
  void doubling_sum(std::span<V> values, MPI_Datatype type) {
    check(values.size());
    if (size_ == 1) return;
    std::vector<V>& other = scratch<V>();
    other.resize(values.size());
    for (int bit = 1; bit < size_; bit <<= 1) {
      const int partner = rank_ ^ bit;
      MPI_Sendrecv(values.data(), int(values.size()), type, partner, bit, other.data(), int(values.size()), type, partner,
                   bit, comm_, MPI_STATUS_IGNORE);
      for (std::size_t i = 0; i < values.size(); ++i) values[i] += other[i];
    }
  }

  // Reduce-scatter by recursive halving (levels ascending, so every value is added in the same
  // tree as doubling_sum), then allgather by recursive doubling (copies only).
  template <class V>
  void halving_sum(std::span<V> values, MPI_Datatype type) {
    check(values.size());
    if (size_ == 1) return;
    std::vector<V>& other = scratch<V>();
    other.resize(values.size() / 2 + 1);
    struct Segment {
      std::size_t lo, hi;
    };
    std::vector<Segment> held;  // the segment held before each level
    Segment seg{0, values.size()};
    for (int bit = 1; bit < size_; bit <<= 1) {
      held.push_back(seg);
      const int partner = rank_ ^ bit;
      const std::size_t mid = seg.lo + (seg.hi - seg.lo) / 2;
      const bool upper = (rank_ & bit) != 0;
      const Segment keep = upper ? Segment{mid, seg.hi} : Segment{seg.lo, mid};
      const Segment give = upper ? Segment{seg.lo, mid} : Segment{mid, seg.hi};
      MPI_Sendrecv(values.data() + give.lo, int(give.hi - give.lo), type, partner, bit, other.data(),
                   int(keep.hi - keep.lo), type, partner, bit, comm_, MPI_STATUS_IGNORE);
      for (std::size_t i = keep.lo; i < keep.hi; ++i) values[i] += other[i - keep.lo];
      seg = keep;
    }
    for (int bit = size_ >> 1, level = int(held.size()) - 1; bit >= 1; bit >>= 1, --level) {
      const int partner = rank_ ^ bit;
      const Segment parent = held[std::size_t(level)];
      const bool upper = (rank_ & bit) != 0;  // kept the upper half of `parent` at this level
      const Segment theirs = upper ? Segment{parent.lo, seg.lo} : Segment{seg.hi, parent.hi};
      MPI_Sendrecv(values.data() + seg.lo, int(seg.hi - seg.lo), type, partner, size_ + bit, values.data() + theirs.lo,
                   int(theirs.hi - theirs.lo), type, partner, size_ + bit, comm_, MPI_STATUS_IGNORE);
      seg = parent;
    }
  }
  template <class V>
  std::vector<V>& scratch() {
    if constexpr (std::is_same_v<V, float>) return scratch_f_;
    else return scratch_d_;
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<float> scratch_f_;
  std::vector<double> scratch_d_;
  double seconds_ = 0;
};

// The job refused on every rank at once (each throws it): no rank needs MPI_Abort to end the others.
class JobRefused : public Error {
 public:
  using Error::Error;
};

// Every rank must train the same run: rank 0's `settings` (name -> value: the command line's
// resolved values, the data file's identity) go to every rank, and a rank whose own differ is
// refused with an Error naming each difference; the other ranks get an Error saying which rank
// differs. All ranks throw, so the job ends with a message everywhere and no rank waits.
inline void require_same_settings(train::Exchange& ex, const std::map<std::string, std::string>& settings) {
  if (ex.ranks() == 1) return;
  std::string text;
  for (const auto& [k, v] : settings) text += k + '\x1f' + v + '\x1e';
  long long length = (long long)text.size();
  ex.broadcast(std::as_writable_bytes(std::span<long long>(&length, 1)));
  std::string root(std::size_t(length), '\0');
  if (ex.rank() == 0) root = text;
  ex.broadcast(std::as_writable_bytes(std::span<char>(root.data(), root.size())));
  std::map<std::string, std::string> theirs;
  for (std::size_t at = 0; at < root.size();) {
    const std::size_t unit = root.find('\x1f', at), record = root.find('\x1e', at);
    theirs[root.substr(at, unit - at)] = root.substr(unit + 1, record - unit - 1);
    at = record + 1;
  }
  std::string differences;
  for (const auto& [k, v] : theirs) {
    const auto mine = settings.find(k);
    const std::string own = mine == settings.end() ? "(unset)" : mine->second;
    if (own != v) differences += "\n  " + k + ": rank 0 has '" + v + "', rank " + std::to_string(ex.rank()) + " has '" + own + "'";
  }
  for (const auto& [k, v] : settings)
    if (!theirs.count(k)) differences += "\n  " + k + ": rank 0 has (unset), rank " + std::to_string(ex.rank()) + " has '" + v + "'";
  // Which ranks differ, known to all: sum of 2^rank would overflow for big jobs; the count and the
  // lowest such rank suffice for the others' message.
  std::vector<double> flags(std::size_t(ex.ranks()), 0.0);
  flags[std::size_t(ex.rank())] = differences.empty() ? 0.0 : 1.0;
  ex.sum(std::span<double>(flags));
  int first = -1, count = 0;
  for (int r = 0; r < ex.ranks(); ++r)
    if (flags[std::size_t(r)] > 0) {
      if (first < 0) first = r;
      ++count;
    }
  if (!differences.empty())
    throw JobRefused("rank " + std::to_string(ex.rank()) + " refused: its settings or data differ from rank 0's:" + differences +
                "\n(every rank must run the same command on the same data file)");
  if (count > 0)
    throw JobRefused("rank " + std::to_string(ex.rank()) + ": the job is refused: " + std::to_string(count) + " rank(s), the first rank " +
                std::to_string(first) + ", have settings or data different from rank 0's (see rank " + std::to_string(first) +
                "'s message)");
}

}  // namespace hubble::distributed
