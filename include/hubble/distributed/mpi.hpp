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
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
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

// MPI_Init_thread for the lifetime of the object. MPI_THREAD_SERIALIZED: MpiExchange's sending
// thread and the main thread call MPI, never at the same time.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    serialized_ = provided >= MPI_THREAD_SERIALIZED;
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
  // Whether another thread may call MPI (so MpiExchange may overlap its sums with computing).
  bool threads_may_call() const { return serialized_; }
  // Ends every rank of the job at once (after an error on this one), with `code` as exit status.
  [[noreturn]] static void abort_all(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  int rank_ = 0, size_ = 1;
  bool serialized_ = false;
};

// Overlap (train::Exchange::start_sum): a sending thread sums the buffers it is handed, in the
// order they come (the same on every rank: the layers' backward order), while the main thread
// goes on back-propagating; wait() blocks until it is done. Off by default: measured on 2-16 cores
// over shared memory it made training 25-35% slower (the sending thread, polling for its partner
// while that one still computes, takes a core from the compute threads; docs/distributed.md).
// On with overlap = true or the environment variable HUBBLE_OVERLAP=1, where the network is slow
// and a core is free for it.
class MpiExchange final : public train::Exchange {
 public:
  explicit MpiExchange(MPI_Comm comm = MPI_COMM_WORLD, bool overlap = false) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    const char* env = std::getenv("HUBBLE_OVERLAP");
    if (env) overlap = std::string(env) == "1";
    overlap_ = overlap && size_ > 1;
  }
  MpiExchange(const MpiExchange&) = delete;
  MpiExchange& operator=(const MpiExchange&) = delete;
  ~MpiExchange() override {
    if (!worker_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }
  // Call with MpiSession::threads_may_call(): without it the sums never overlap.
  void allow_overlap(bool allowed) { overlap_ = overlap_ && allowed; }
  bool overlaps() const override { return overlap_; }
  using train::Exchange::start_sum;
  void start_sum(std::span<float> values) override {
    if (!overlap_) return sum(values);
    if (!worker_.joinable()) worker_ = std::thread([this] { send_loop(); });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(values);
      ++pending_;
    }
    changed_.notify_all();
  }
  void wait() override {
    const double t0 = MPI_Wtime();
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return pending_ == 0; });
    seconds_ += MPI_Wtime() - t0;
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
  // Seconds the calling thread spent in sum() and wait() so far (the communication the trainer
  // waits for, including waiting for slower ranks).
  double seconds_in_sum() const { return seconds_; }

 private:
  static constexpr std::size_t chunk_bytes = std::size_t(1) << 30;

  void send_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_
      const std::span<float> values = queue_.front();
      queue_.pop_front();
      lock.unlock();
      pick(values, MPI_FLOAT);
      lock.lock();
      --pending_;
      changed_.notify_all();
    }
  }

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
  bool overlap_ = false;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::span<float>> queue_;
  int pending_ = 0;
  bool stop_ = false;
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
