// Included by exactly one .cc per instruction set, each compiled with its own
// -m flags. Everything here has internal linkage and uses no inline function
// from a shared header, so no code built for a wider ISA can leak into the
// rest of the program through the linker's choice of one inline copy.
#pragma once

#include "runtime/kernels/generic_microkernel.hpp"

namespace tconv3d::generic {
namespace {

typedef float Vec4 __attribute__((vector_size(16)));
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec16 __attribute__((vector_size(64)));

template <typename V>
inline V load_vec(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
inline void store_vec(float* p, V v) {
  __builtin_memcpy(p, &v, sizeof(V));
}

// acc[r][v] += x[r][ci] * w[ci][v]: the accumulators stay in registers because
// every loop over r and v has a compile-time trip count and is unrolled.
// Compiled with -ffp-contract=fast so each update is one FMA where the ISA has it.
template <typename V, int FV, int R>
void tile_kernel(const MicroKernelArgs& args) {
  constexpr int VL = sizeof(V) / sizeof(float);
  V acc[R][FV];
#pragma GCC unroll 4
  for (int v = 0; v < FV; ++v) {
    const V b = load_vec<V>(args.bias + v * VL);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r][v] = b;
  }
  const int64_t cin = args.in_channels;
  for (int64_t t = 0; t < args.taps; ++t) {
    const float* const* rows = args.x_rows + t * R;
    const float* x[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) x[r] = rows[r];
    const float* w = args.w_panels[t];
    for (int64_t ci = 0; ci < cin; ++ci) {
      V wv[FV];
#pragma GCC unroll 4
      for (int v = 0; v < FV; ++v) wv[v] = load_vec<V>(w + v * VL);
      w += FV * VL;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const float xs = x[r][ci];
#pragma GCC unroll 4
        for (int v = 0; v < FV; ++v) acc[r][v] += wv[v] * xs;
      }
    }
  }
  float* const tile = args.tile;  // a local copy: the stores may not alias it
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < FV; ++v) store_vec(tile + (r * FV + v) * VL, acc[r][v]);
}

template <typename V, int FV, int R>
constexpr MicroKernel entry() {
  return MicroKernel{int(sizeof(V) / sizeof(float)), FV, R, &tile_kernel<V, FV, R>};
}

}  // namespace
}  // namespace tconv3d::generic
