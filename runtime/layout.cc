#include "runtime/layout.hpp"

#include <cstdint>

namespace tconv3d {

void channels_first_to_last(const Shape5& s, const float* in, float* out) {
  const int64_t batch = s[0], channels = s[1], spatial = s[2] * s[3] * s[4];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t v = 0; v < spatial; ++v)
      for (int64_t c = 0; c < channels; ++c)
        out[(n * spatial + v) * channels + c] = in[(n * channels + c) * spatial + v];
}

void channels_last_to_first(const Shape5& s, const float* in, float* out) {
  const int64_t batch = s[0], channels = s[1], spatial = s[2] * s[3] * s[4];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t v = 0; v < spatial; ++v)
        out[(n * channels + c) * spatial + v] = in[(n * spatial + v) * channels + c];
}

}  // namespace tconv3d
