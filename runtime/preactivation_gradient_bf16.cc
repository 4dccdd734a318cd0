#include "runtime/preactivation_gradient_bf16.hpp"

#include <algorithm>

#include "core/activation_gradient.hpp"
#include "runtime/preactivation_gradient.hpp"
#include "tconv3d/bfloat16.hpp"

namespace tconv3d {

namespace {

// Rows of the last axis per block: a fixed size, so db's partial sums, and
// their order, do not depend on the thread count.
constexpr int64_t kBlockRows = 256;

void widen(const uint16_t* in, float* out, int64_t count) {
  for (int64_t k = 0; k < count; ++k) out[k] = bf16_to_float(in[k]);
}

}  // namespace

const uint16_t* preactivation_gradient_bf16(const ConvGeometry& g, const Activation& act, const uint16_t* z,
                                            const uint16_t* y, const uint16_t* dy, float* db,
                                            std::vector<uint16_t>& dz_storage, int threads) {
  const bool last = g.data_format == DataFormat::kChannelsLast;
  const bool linear = act.kind == ActivationKind::kLinear;
  const int64_t elems = g.output_elements(), filters = g.out_channels;
  const int64_t length = g.output_shape()[4];  // the rows: channels (channels_last) or W
  const int64_t total_rows = elems / length;
  if (!linear) dz_storage.resize(static_cast<size_t>(elems));
  if (elems == 0) {
    if (db) std::fill(db, db + filters, 0.0f);
    return linear ? dy : dz_storage.data();
  }
  if (!db && linear) return dy;
  // Blocks never straddle a plane (n, c) under channels_first, whose sum is one filter's.
  const int64_t plane_rows = last ? total_rows : elems / (g.batch * filters) / length;
  const int64_t blocks_per_plane = (plane_rows + kBlockRows - 1) / kBlockRows;
  const int64_t planes = total_rows / plane_rows, blocks = planes * blocks_per_plane;
  // channels_last: a partial sum per (block, filter); channels_first: per block.
  std::vector<double> partial(db ? static_cast<size_t>(last ? blocks * filters : blocks) : 0, 0.0);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> zf, yf, dyf(static_cast<size_t>(kBlockRows * length)), dzf(dyf.size());
    if (z) zf.resize(dyf.size());
    if (y && needs_output(act)) yf.resize(dyf.size());
#pragma omp for schedule(dynamic, 4)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t plane = b / blocks_per_plane, in_plane = (b % blocks_per_plane) * kBlockRows;
      const int64_t row0 = plane * plane_rows + in_plane, rows = std::min(kBlockRows, plane_rows - in_plane);
      const int64_t first = row0 * length, count = rows * length;
      widen(dy + first, dyf.data(), count);
      const float* done = dyf.data();
      if (!linear) {
        if (!zf.empty()) widen(z + first, zf.data(), count);
        if (!yf.empty()) widen(y + first, yf.data(), count);
        activation_gradient_rows(act, zf.empty() ? nullptr : zf.data(), yf.empty() ? nullptr : yf.data(), dyf.data(),
                                 dzf.data(), rows, length);
        uint16_t* out = dz_storage.data() + first;
        for (int64_t k = 0; k < count; ++k) out[k] = float_to_bf16(dzf[k]);
        done = dzf.data();
      }
      if (!db) continue;
      if (last) {
        double* sums = partial.data() + b * filters;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < filters; ++c) sums[c] += double(done[r * filters + c]);
      } else {
        double sum = 0.0;
        for (int64_t k = 0; k < count; ++k) sum += double(done[k]);
        partial[b] = sum;
      }
    }
  }
  if (db) {
    std::vector<double> sums(static_cast<size_t>(filters), 0.0);
    for (int64_t b = 0; b < blocks; ++b) {
      if (last) {
        for (int64_t c = 0; c < filters; ++c) sums[c] += partial[b * filters + c];
      } else {
        sums[(b / blocks_per_plane) % filters] += partial[b];
      }
    }
    for (int64_t c = 0; c < filters; ++c) db[c] = static_cast<float>(sums[c]);
  }
  return linear ? dy : dz_storage.data();
}

}  // namespace tconv3d
