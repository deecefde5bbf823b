#pragma once
// AlignedVector<T>: std::vector whose storage starts on a 64-byte boundary (a cache line, and
// the widest SIMD register). Every buffer that kernels read is one, for speed and because
// Eigen's vectorised loops peel differently with the start address: equal alignment on every
// run keeps results bit-for-bit reproducible.
#include <cstddef>
#include <new>
#include <vector>

namespace hubble {

template <class T, std::size_t Alignment = 64>
struct AlignedAllocator {
  using value_type = T;
  template <class U>
  struct rebind { using other = AlignedAllocator<U, Alignment>; };
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Alignment>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Alignment))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(Alignment)); }
  template <class U>
  bool operator==(const AlignedAllocator<U, Alignment>&) const noexcept { return true; }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace hubble
