#include "runtime/preactivation_gradient_bf16.hpp"

#include <algorithm>

#include "core/activation_gradient.hpp"
#include "runtime/dz_loops.hpp"

namespace tconv3d {

namespace {

// Rows of the last axis per block: a fixed size, so db's partial sums, and
// their order, do not depend on the thread count.
constexpr int64_t kBlockRows = 256;

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
  const DzIsa isa = dz_isa();
  const uint16_t* z_in = needs_preactivation(act) ? z : nullptr;
  const uint16_t* y_in = needs_output(act) ? y : nullptr;
#pragma omp parallel num_threads(threads)
  {
    // The block's float32 dz (dy for a linear activation), summed into db
    // while it is in the cache.
    std::vector<float> dzf(db ? static_cast<size_t>(kBlockRows * length) : 0);
#pragma omp for schedule(dynamic, 4)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t plane = b / blocks_per_plane, in_plane = (b % blocks_per_plane) * kBlockRows;
      const int64_t row0 = plane * plane_rows + in_plane, rows = std::min(kBlockRows, plane_rows - in_plane);
      const int64_t first = row0 * length, count = rows * length;
      if (linear)
        widen_bf16(isa, dy + first, dzf.data(), count);
      else
        elementwise_dz_bf16(isa, act, z_in ? z_in + first : nullptr, y_in ? y_in + first : nullptr, dy + first,
                            db ? dzf.data() : nullptr, dz_storage.data() + first, count);
      if (!db) continue;
      if (last)
        sum_rows(isa, dzf.data(), rows, filters, partial.data() + b * filters);
      else
        partial[b] = sum_floats(isa, dzf.data(), count);
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
