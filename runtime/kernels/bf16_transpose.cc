#include "runtime/kernels/bf16_transpose.hpp"

#include <algorithm>

namespace tconv3d {

void transpose_batched_u16(const uint16_t* in, uint16_t* out, int64_t batch, int64_t rows, int64_t cols,
                           int threads) {
  // 64 x 64 blocks: 8 KB of source and of destination, both in L1.
  constexpr int64_t kBlock = 64;
#pragma omp parallel for collapse(3) schedule(static) num_threads(threads)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
      for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
        const uint16_t* src = in + n * rows * cols;
        uint16_t* dst = out + n * rows * cols;
        const int64_t r1 = std::min(rows, r0 + kBlock), c1 = std::min(cols, c0 + kBlock);
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
      }
}

}  // namespace tconv3d
