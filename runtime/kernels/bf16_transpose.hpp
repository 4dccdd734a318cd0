// The channels_first layout change for bf16 (16-bit) tensors around the
// channels_last bf16 kernels: SSE2 8x8 tiles of 16-bit values (the float32
// path's AVX tiles are 32-bit).
#pragma once

#include <cstdint>

namespace tconv3d {

// dst[j * ds + i] = src[i * ss + j] for i < rows, j < cols (SSE2 8x8 tiles).
void transpose_block_u16(const uint16_t* src, int64_t ss, uint16_t* dst, int64_t ds, int64_t rows, int64_t cols);

}  // namespace tconv3d
