// The channels_first layout change for bf16 (16-bit) tensors around the
// channels_last bf16 kernels: plain cache-blocked loops (the float32 path's
// AVX tiles are 32-bit), shared among threads.
#pragma once

#include <cstdint>

namespace tconv3d {

// [batch][rows][cols] -> [batch][cols][rows].
void transpose_batched_u16(const uint16_t* in, uint16_t* out, int64_t batch, int64_t rows, int64_t cols, int threads);

}  // namespace tconv3d
