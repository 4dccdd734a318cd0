#include "runtime/layout.hpp"

#include <cstdint>

namespace tconv3d {
namespace {

// out[n][j][i] = in[n][i][j] for each of `batch` rows x cols matrices, walking
// `out` in order so that the writes stream.
void transpose_each(int64_t batch, int64_t rows, int64_t cols, const float* in, float* out) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t i = 0; i < rows; ++i) out[(n * cols + j) * rows + i] = in[(n * rows + i) * cols + j];
}

int64_t spatial_size(const Shape5& s) { return s[2] * s[3] * s[4]; }

}  // namespace

void channels_first_to_last(const Shape5& s, const float* in, float* out) {
  transpose_each(s[0], s[1], spatial_size(s), in, out);
}

void channels_last_to_first(const Shape5& s, const float* in, float* out) {
  transpose_each(s[0], spatial_size(s), s[1], in, out);
}

}  // namespace tconv3d
