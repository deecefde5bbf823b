#pragma once
// The sharded schedule: a training order whose gradients are summed in one fixed order, whatever
// the number of processes computing them. train::Trainer uses it when TrainConfig::shards > 0;
// the data-parallel trainer (hubble/distributed/mpi.hpp) runs it on several MPI ranks.
//
//   shards      S (a power of two). Position p of the training list belongs to shard p mod S, so
//               the shards are fixed by the list and S alone, never by the number of ranks.
//   epoch       every shard permutes its own items (image x rotation x repeat) with the stream
//               (seed, epoch, shard); dihedral views likewise come from (seed, epoch, shard).
//   step        a global batch of B = S x m items takes the next m items of every shard (a shard
//               that has run out gives fewer, possibly none); the epoch has as many steps as the
//               largest shard needs.
//   gradient    shard j's micro-batch gradient g_j (the mean over its n_j items) is scaled by
//               n_j / n (n = the step's items), and the S scaled gradients are summed in a binary
//               tree over the shard index: level l adds shard 2^l (k + 1/2)'s partial sum into shard
//               2^(l+1) k's. A rank owning an aligned block of shards reduces its own subtree; the
//               ranks' partial sums then meet by recursive doubling (rank r adds rank r ^ 2^l's at
//               level l), which is the rest of the same tree. IEEE addition is commutative, so a + b
//               and b + a have the same bits: every rank ends with the same sum, and one process
//               computing all S micro-batches gets the same sum too.
//   dropout     the masks of shard j at update t come from streams (seed, t, j, layer), not from one
//               sequential stream, so they do not depend on who computes the micro-batch.
//   BatchNorm   batch statistics are those of the micro-batch (ghost batch norm, m images). The
//               moving statistics start every step from the same values on every shard; the new
//               values are the same weighted tree sum of the shards' updated statistics.
//
// So the weights after any number of steps are bit-identical for 1, 2, 4, ... S ranks. They do
// depend on the number of OpenMP threads per rank, as the unsharded trainer's do (the kernels
// split some sums by thread); docs/distributed.md measures which.
#include <cstdint>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "hubble/core/error.hpp"
#include "hubble/core/rng.hpp"

namespace hubble::train {

// What the sharded trainer needs from the processes it runs on. One process: LocalExchange.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual int rank() const { return 0; }
  virtual int ranks() const { return 1; }
  // Sums `values` across ranks by recursive doubling (the top of the shard tree); every rank ends
  // with the same bits. Nothing to do on one rank.
  virtual void sum(std::span<float>) {}
  virtual void sum(std::span<double>) {}
  // Copies rank 0's bytes to every rank.
  virtual void broadcast(std::span<std::byte>) {}
  // Overlap: start_sum() begins summing `values` like sum() and returns at once; wait() returns
  // when every sum begun has ended. The trainer starts one per layer during the backward pass.
  // Without overlap (one process, or overlaps() false) start_sum() is sum().
  virtual bool overlaps() const { return false; }
  virtual void start_sum(std::span<float> values) { sum(values); }
  virtual void start_sum(std::span<double> values) { sum(values); }
  virtual void wait() {}
};

class LocalExchange final : public Exchange {};

inline bool is_power_of_two(long long v) { return v > 0 && (v & (v - 1)) == 0; }

// Refuses a shard count, batch size and rank count that cannot run the sharded schedule.
inline void check_sharding(int shards, int batch_size, int ranks) {
  HUBBLE_CHECK(is_power_of_two(shards), "train: --shards must be a power of two (1, 2, 4, 8, ...), not ", shards,
               " (the gradients are summed in a binary tree over the shards)");
  HUBBLE_CHECK(batch_size % shards == 0, "train: the batch size (", batch_size, ") must be a multiple of --shards (",
               shards, "): every step takes batch / shards images from each shard");
  HUBBLE_CHECK(is_power_of_two(ranks) && ranks <= shards, "train: ", ranks, " processes cannot share ", shards,
               " shards: the number of processes must be a power of two no larger than --shards (each owns an "
               "aligned block of shards/processes shards)");
}

// The first shard and the number of shards rank `rank` of `ranks` owns.
struct ShardBlock {
  int first = 0, count = 0;
  bool owns(int shard) const { return shard >= first && shard < first + count; }
};
inline ShardBlock shard_block(int shards, int rank, int ranks) { return {rank * (shards / ranks), shards / ranks}; }

// The positions of the training list that belong to shard j of S.
inline std::vector<int> shard_positions(int train_size, int shards, int shard) {
  std::vector<int> out;
  for (int p = shard; p < train_size; p += shards) out.push_back(p);
  return out;
}

// The streams of the sharded schedule; all depend on the seed and the shard, never on the rank.
inline Rng shard_order_stream(std::uint64_t seed, int epoch, int shard) {
  return Rng(seed).split(0x5EED).split(std::uint64_t(epoch) * 16 + 3).split(std::uint64_t(shard) + 1);
}
inline Rng shard_view_stream(std::uint64_t seed, int epoch, int shard) {
  return Rng(seed).split(0x5EED).split(std::uint64_t(epoch) * 16 + 4).split(std::uint64_t(shard) + 1);
}
inline Rng shard_dropout_stream(std::uint64_t seed, long long update, int shard, int layer) {
  return Rng(seed).split(0xD20).split(std::uint64_t(update) + 1).split(std::uint64_t(shard) + 1).split(std::uint64_t(layer) + 1);
}

// The items of shard j in epoch `epoch`: positions*per_image + rotation, `repeats` times, in the
// shard's own order.
inline std::vector<int> shard_epoch_order(int train_size, int per_image, int repeats, int shards, int shard,
                                          std::uint64_t seed, int epoch) {
  std::vector<int> items;
  for (int r = 0; r < repeats; ++r)
    for (int p = shard; p < train_size; p += shards)
      for (int k = 0; k < per_image; ++k) items.push_back(p * per_image + k);
  Rng rng = shard_order_stream(seed, epoch, shard);
  for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[std::size_t(rng.below(i))]);  // Fisher-Yates
  return items;
}

// Sums buffers[0..count) into buffers[0] in the binary tree over their (aligned) shard indices.
template <class T>
void tree_sum(std::vector<std::vector<T>>& buffers, int count) {
  for (int stride = 1; stride < count; stride *= 2)
    for (int j = 0; j + stride < count; j += 2 * stride) {
      T* a = buffers[std::size_t(j)].data();
      const T* b = buffers[std::size_t(j + stride)].data();
      const std::size_t n = buffers[std::size_t(j)].size();
      for (std::size_t i = 0; i < n; ++i) a[i] += b[i];
    }
}

// The same tree as tree_sum, on the values [lo, hi) only: the tree is per value, so summing a
// buffer in slices (one per layer, as they become ready) gives the same bits as all at once.
template <class T>
void tree_sum_range(std::vector<std::vector<T>>& buffers, int count, std::size_t lo, std::size_t hi) {
  for (int stride = 1; stride < count; stride *= 2)
    for (int j = 0; j + stride < count; j += 2 * stride) {
      T* a = buffers[std::size_t(j)].data();
      const T* b = buffers[std::size_t(j + stride)].data();
      for (std::size_t i = lo; i < hi; ++i) a[i] += b[i];
    }
}

}  // namespace hubble::train
