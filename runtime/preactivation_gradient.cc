#include "runtime/preactivation_gradient.hpp"

#include <algorithm>
#include <memory>

#include "core/activation_gradient.hpp"
#include "runtime/dz_loops.hpp"
#include "runtime/kernels/channel_transpose.hpp"

namespace tconv3d {

namespace {

// Output voxels per partial sum of the bias gradient under channels_last: a
// fixed size, so the order of the sums does not depend on the thread count.
constexpr int64_t kBiasChunkRows = 256;
// Values per work item of a channels_first plane (whole activation rows).
constexpr int64_t kPlaneChunkValues = 8192;
// Floats of one block (channels x voxels) of the fused channels_last pass:
// in L2 while it is computed, summed and transposed; at most kFusedRun voxels.
constexpr int64_t kFusedBlockFloats = 65536, kFusedRun = 1024;
constexpr int64_t kStrip = 16;  // channels per transposed strip

bool axis_activation(const Activation& act) {
  return act.kind == ActivationKind::kSoftmax || act.kind == ActivationKind::kLogSoftmax ||
         act.kind == ActivationKind::kSparsemax || act.kind == ActivationKind::kGlu;
}

// dz for `rows` rows of the last axis: the axis activations' products per
// row, the elementwise ones' loops (runtime/dz_loops.hpp: a loop of its own
// for each common activation, several times faster than the general
// per-value one: 3.2 ms of a 12 ms backward on head_k4s2_f4's sigmoid).
void preactivation_gradient_rows(DzIsa isa, const Activation& act, const float* z, const float* y, const float* dy,
                                 float* dz, int64_t rows, int64_t length) {
  if (axis_activation(act))
    activation_gradient_rows(act, z, y, dy, dz, rows, length);
  else
    elementwise_dz(isa, act, z, y, dy, dz, rows * length);
}

}  // namespace

const float* preactivation_gradient(const ConvGeometry& g, const Activation& act, const float* z, const float* y,
                                    const float* dy, float* db, std::vector<float>& dz_storage, int threads) {
  if (act.kind != ActivationKind::kLinear) dz_storage.resize(static_cast<size_t>(g.output_elements()));
  return preactivation_gradient(g, act, z, y, dy, db, dz_storage.empty() ? nullptr : dz_storage.data(), threads);
}

const float* preactivation_gradient(const ConvGeometry& g, const Activation& act, const float* z, const float* y,
                                    const float* dy, float* db, float* dz_buffer, int threads) {
  // dz = dy * act'(z) in the layer's format, fused with the bias gradient:
  // each work item computes its rows of dz and sums them while they are in
  // the cache. The rows are the activation's last axis: the channels under
  // channels_last, W under channels_first (where a work item is a run of
  // whole rows of one plane (n, c)).
  const bool last = g.data_format == DataFormat::kChannelsLast;
  const bool linear = act.kind == ActivationKind::kLinear;
  const int64_t pre_elems = g.output_elements(), filters = g.out_channels;
  if (pre_elems == 0) {
    if (db) std::fill(db, db + filters, 0.0f);
    return linear ? dy : dz_buffer;
  }
  const int64_t spatial_out = pre_elems / (g.batch * filters);
  float* const dz_rows_out = linear ? nullptr : dz_buffer;
  const float* dz_fmt = linear ? dy : dz_buffer;
  const Shape5 pre = g.output_shape();
  const int64_t length = pre[4];
  const int64_t out_length = act.kind == ActivationKind::kGlu ? length / 2 : length;
  const int64_t plane_rows = spatial_out / length;
  const int64_t chunk_rows = last ? kBiasChunkRows : std::clamp<int64_t>(kPlaneChunkValues / length, 1, plane_rows);
  const int64_t plane_chunks = last ? 0 : (plane_rows + chunk_rows - 1) / chunk_rows;
  const int64_t total_rows = pre_elems / length;
  const int64_t items = last ? (total_rows + chunk_rows - 1) / chunk_rows : g.batch * filters * plane_chunks;
  std::vector<double> partial(db ? static_cast<size_t>(last ? items * filters : items) : 0);
  const DzIsa isa = dz_isa();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t item = 0; item < items; ++item) {
    int64_t row0 = 0, rows = 0;
    if (last) {
      row0 = item * chunk_rows;
      rows = std::min(chunk_rows, total_rows - row0);
    } else {
      const int64_t plane = item / plane_chunks, first = item % plane_chunks * chunk_rows;
      row0 = plane * plane_rows + first;
      rows = std::min(chunk_rows, plane_rows - first);
    }
    if (dz_rows_out) {
      const float* z_rows = z ? z + row0 * length : nullptr;
      const float* y_rows = y ? y + row0 * out_length : nullptr;
      preactivation_gradient_rows(isa, act, z_rows, y_rows, dy + row0 * out_length, dz_rows_out + row0 * length, rows,
                                  length);
    }
    if (!db) continue;
    const float* done = dz_fmt + row0 * length;
    if (last)
      sum_rows(isa, done, rows, filters, partial.data() + item * filters);
    else
      partial[item] = sum_floats(isa, done, rows * length);
  }
  if (db) {
    for (int64_t c = 0; c < filters; ++c) {
      double sum = 0.0;
      if (last) {
        for (int64_t item = 0; item < items; ++item) sum += partial[item * filters + c];
      } else {
        for (int64_t n = 0; n < g.batch; ++n)
          for (int64_t k = 0; k < plane_chunks; ++k) sum += partial[(n * filters + c) * plane_chunks + k];
      }
      db[c] = static_cast<float>(sum);
    }
  }
  return dz_fmt;
}

bool fuses_channels_last_dz(const ConvGeometry& g, const Activation& act) {
  return g.data_format == DataFormat::kChannelsFirst && !axis_activation(act);
}

void preactivation_gradient_to_channels_last(const ConvGeometry& g, const Activation& act, const float* z,
                                             const float* y, const float* dy, float* db, float* dz_last, int threads) {
  const bool linear = act.kind == ActivationKind::kLinear;
  const int64_t channels = g.out_channels, pre_elems = g.output_elements();
  if (pre_elems == 0) {
    if (db) std::fill(db, db + channels, 0.0f);
    return;
  }
  const int64_t spatial = pre_elems / (g.batch * channels);
  // Work items: (n, run of `span` voxels), every channel; a fixed span, so
  // db's partial sums do not depend on the thread count.
  const int64_t span = std::min(spatial, std::clamp<int64_t>(kFusedBlockFloats / channels / 16 * 16, 16, kFusedRun));
  const int64_t runs = (spatial + span - 1) / span, items = g.batch * runs;
  const DzIsa isa = dz_isa();
  const bool avx = isa != DzIsa::kGeneric;
  std::vector<double> partial(db ? static_cast<size_t>(items * channels) : 0);
#pragma omp parallel num_threads(threads)
  {
    // A nonlinear activation's dz block, (channels, span), before its transpose.
    std::unique_ptr<float[]> block(linear ? nullptr : new float[static_cast<size_t>(channels * span)]);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t n = item / runs, s0 = item % runs * span, count = std::min(span, spatial - s0);
      const float* src = dy + n * channels * spatial + s0;
      int64_t src_stride = spatial;
      if (!linear) {
        for (int64_t c = 0; c < channels; ++c) {
          const int64_t at = (n * channels + c) * spatial + s0;
          elementwise_dz(isa, act, z ? z + at : nullptr, y ? y + at : nullptr, dy + at, block.get() + c * span, count);
        }
        src = block.get();
        src_stride = span;
      }
      // Strips of 16 channels across the run (transpose_batched's blocking:
      // few far-apart source rows at a time, whole destination lines per
      // run), each strip's rows summed into db while they are in L1/L2.
      float* dst = dz_last + (n * spatial + s0) * channels;
      for (int64_t c0 = 0; c0 < channels; c0 += kStrip) {
        const int64_t rows = std::min(kStrip, channels - c0);
        const float* from = src + c0 * src_stride;
        float* to = dst + c0;
        if (avx) {
          // Plain stores: dx and dK read dz next, from the L3. (Streamed,
          // this pass took 10 % less, and the whole backward no less.)
          transpose_block(from, src_stride, to, channels, rows, count, false);
        } else {
          for (int64_t c = 0; c < rows; ++c)
            for (int64_t t = 0; t < count; ++t) to[t * channels + c] = from[c * src_stride + t];
        }
        if (db)
          for (int64_t c = 0; c < rows; ++c)
            partial[item * channels + c0 + c] = sum_floats(isa, from + c * src_stride, count);
      }
    }
  }
  if (db) {
    for (int64_t c = 0; c < channels; ++c) {
      double sum = 0.0;
      for (int64_t item = 0; item < items; ++item) sum += partial[item * channels + c];
      db[c] = static_cast<float>(sum);
    }
  }
}

}  // namespace tconv3d
