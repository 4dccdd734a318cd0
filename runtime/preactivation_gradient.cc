#include "runtime/preactivation_gradient.hpp"

#include <algorithm>

#include "core/activation_gradient.hpp"

namespace tconv3d {

namespace {

// Output voxels per partial sum of the bias gradient under channels_last: a
// fixed size, so the order of the sums does not depend on the thread count.
constexpr int64_t kBiasChunkRows = 256;

}  // namespace

const float* preactivation_gradient(const ConvGeometry& g, const Activation& act, const float* z, const float* y,
                                    const float* dy, float* db, std::vector<float>& dz_storage, int threads) {
  // dz = dy * act'(z) in the layer's format, fused with the bias gradient:
  // each work item computes its rows of dz and sums them while they are in
  // the cache. The rows are the activation's last axis: the channels under
  // channels_last, W under channels_first (where a plane (n, c) is one item).
  const bool last = g.data_format == DataFormat::kChannelsLast;
  const bool linear = act.kind == ActivationKind::kLinear;
  const int64_t pre_elems = g.output_elements(), filters = g.out_channels;
  const int64_t spatial_out = pre_elems / (g.batch * filters);
  const float* dz_fmt = dy;
  if (!linear) {
    dz_storage.resize(static_cast<size_t>(pre_elems));
    dz_fmt = dz_storage.data();
  }
  const Shape5 pre = g.output_shape();
  const int64_t length = pre[4];
  const int64_t out_length = act.kind == ActivationKind::kGlu ? length / 2 : length;
  const int64_t items = last ? (pre_elems / length + kBiasChunkRows - 1) / kBiasChunkRows : g.batch * filters;
  const int64_t item_rows = last ? kBiasChunkRows : spatial_out / length;
  std::vector<double> partial(db ? static_cast<size_t>(last ? items * filters : items) : 0);
  const int64_t total_rows = pre_elems / length;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t row0 = item * item_rows, rows = std::min(item_rows, total_rows - row0);
    float* dz_rows = dz_storage.empty() ? nullptr : dz_storage.data() + row0 * length;
    if (dz_rows) {
      activation_gradient_rows(act, z ? z + row0 * length : nullptr, y ? y + row0 * out_length : nullptr,
                               dy + row0 * out_length, dz_rows, rows, length);
    }
    if (!db) continue;
    const float* done = dz_fmt + row0 * length;
    if (last) {
      double* sums = partial.data() + item * filters;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < filters; ++c) sums[c] += double(done[r * filters + c]);
    } else {
      double sum = 0.0;
      for (int64_t k = 0; k < rows * length; ++k) sum += double(done[k]);
      partial[item] = sum;
    }
  }
  if (db) {
    for (int64_t c = 0; c < filters; ++c) {
      double sum = 0.0;
      if (last) {
        for (int64_t item = 0; item < items; ++item) sum += partial[item * filters + c];
      } else {
        for (int64_t n = 0; n < g.batch; ++n) sum += partial[n * filters + c];
      }
      db[c] = static_cast<float>(sum);
    }
  }
  return dz_fmt;
}

}  // namespace tconv3d
