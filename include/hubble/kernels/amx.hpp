#pragma once
// AMX tiles (Intel Xeon 4th generation and later): the one tile shape hubble's AMX kernels use.
//
// A tile is a 2-D register of up to 16 rows x 64 bytes; eight of them (tmm0..tmm7). Their shapes
// are set per thread by LDTILECFG from a 64-byte table. hubble's AMX kernel (int8_gemm.hpp) uses
// all eight as full 16 x 64-byte tiles:
//   TDPBUSD:  C int32 [16][16] += A u8 [16][64] * B s8 [16 rows of 16 columns x 4 k]
// (B's row g holds k = 4g..4g+3 of each column side by side: int8_gemm.hpp's "quads" layout).
// TDPBF16PS (bf16) takes the same shapes, A being 16 x 32 bf16 and B's rows pairs of k.
//
// configure_tiles() loads that table (once per thread, unless another shape was loaded since); a
// kernel calls it first. A kernel with other shapes (bf16_conv_amx.hpp) loads its own table with
// load_config(). The OS must have granted the process the tile state (cpu_features.hpp asks for
// it when AMX is queried); without it the first tile instruction faults, so callers check
// cpu::features().has(amx_*) first.
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>
#define HUBBLE_AMX 1
#else
#define HUBBLE_AMX 0
#endif

namespace hubble::kernels::amx {

#if HUBBLE_AMX
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;  // palette 1: 8 tiles of up to 16 rows x 64 bytes
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads a 64-byte table");

// The shapes loaded on this thread now (LDTILECFG is not free: a kernel reloads only on a change).
inline const TileConfig*& loaded_config() {
  thread_local const TileConfig* loaded = nullptr;
  return loaded;
}
// Loads `config` unless it is already this thread's; `config` must outlive every later call
// (kernels pass tables with static storage).
__attribute__((target("amx-tile"))) inline void load_config(const TileConfig& config) {
  if (loaded_config() == &config) return;
  _tile_loadconfig(&config);
  loaded_config() = &config;
}

// Eight full 16 x 64-byte tiles: what int8_gemm.hpp and bf16_gemm.hpp run on.
inline const TileConfig& full_tiles() {
  static const TileConfig config;
  return config;
}
__attribute__((target("amx-tile"))) inline void configure_tiles() { load_config(full_tiles()); }
#endif

}  // namespace hubble::kernels::amx
