// Cache-friendly 2-D transposes for the channels_first layout change around
// the channels_last generated kernels.
#pragma once

#include <cstdint>

namespace tconv3d {

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols.
// Uses AVX 8x8 register transposes; the caller guarantees the CPU has AVX
// (every generated-kernel ISA does). stream: write whole destination cache
// lines with non-temporal stores where the alignment allows (for large
// destinations that would only evict the working set).
void transpose_block(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                     int64_t cols, bool stream);

// [batch][rows][cols] -> [batch][cols][rows] in square blocks shared among
// `threads`: AVX tiles where the CPU runs AVX, plain loops elsewhere (the
// generic kernel's SSE2 baseline).
void transpose_batched(const float* in, float* out, int64_t batch, int64_t rows, int64_t cols, int threads);

}  // namespace tconv3d
