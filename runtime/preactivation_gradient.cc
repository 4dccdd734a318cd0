#include "runtime/preactivation_gradient.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/activation_gradient.hpp"
#include "core/cpu_features.hpp"
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

// dz = dy * act'(.) over `count` values of an elementwise activation. The
// common activations get loops of their own (the general one decides the
// activation per value, several times slower: 3.2 ms of a 12 ms backward on
// head_k4s2_f4's sigmoid); each computes exactly what
// activation_gradient_rows() does, dy * activation_derivative_from_output(y).
// Plain relu: dz = dy * (y > 0 ? 1 : 0), eight values at a time in GCC
// vectors. Written as a loop, GCC keeps dy where y > 0 and multiplies by
// zero elsewhere, a branch per value that it does not vectorize: 5.1 ms for
// k3s2_same's 1 M values, a branch mispredicted on every other random sign.
inline __attribute__((always_inline)) void relu_dz(const float* y, const float* dy, float* dz, int64_t count) {
  typedef float Floats __attribute__((vector_size(32)));
  typedef int32_t Ints __attribute__((vector_size(32)));
  const Floats zero = {}, one = zero + 1.0f;
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    Floats yv, dyv;
    std::memcpy(&yv, y + i, sizeof yv);
    std::memcpy(&dyv, dy + i, sizeof dyv);
    const Floats derivative = reinterpret_cast<Floats>(reinterpret_cast<Ints>(one) & (yv > zero));
    const Floats out = dyv * derivative;
    std::memcpy(dz + i, &out, sizeof out);
  }
  for (; i < count; ++i) dz[i] = dy[i] * (y[i] > 0.0f ? 1.0f : 0.0f);
}

// The arrays never overlap (dz is the layer's scratch).
inline __attribute__((always_inline)) void elementwise_dz_body(const Activation& act, const float* __restrict z,
                                                               const float* __restrict y, const float* __restrict dy,
                                                               float* __restrict dz, int64_t count) {
  switch (act.kind) {
    case ActivationKind::kLinear: std::copy(dy, dy + count, dz); return;
    case ActivationKind::kSigmoid:
      for (int64_t i = 0; i < count; ++i) dz[i] = dy[i] * (y[i] * (1.0f - y[i]));
      return;
    case ActivationKind::kTanh:
      for (int64_t i = 0; i < count; ++i) dz[i] = dy[i] * (1.0f - y[i] * y[i]);
      return;
    case ActivationKind::kRelu:
      if (needs_preactivation(act)) break;  // a slope, threshold or clip
      relu_dz(y, dy, dz, count);
      return;
    default: break;
  }
  activation_gradient_rows(act, z, y, dy, dz, 1, count);
}

// Sum in double over eight interleaved partial sums (a single chain waits on
// the add latency for every value), combined in a fixed order.
inline __attribute__((always_inline)) double sum_floats_body(const float* v, int64_t count) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += double(v[i + j]);
  for (int j = 0; i < count; ++i, ++j) acc[j] += double(v[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// sums[c] = sum over rows r of v[r * channels + c], each channel summed in
// two interleaved row sets (even, odd rows: one chain of adds per channel
// would wait on the add latency when channels are few), combined in a fixed
// order. Row by row, in memory order: going channel group by channel group
// instead read every row a line at a time, 2.0 ms for unet_up_k2s2's 8 MB
// from cold caches. acc: 2 * channels doubles of scratch.
inline __attribute__((always_inline)) void sum_rows_body(const float* v, int64_t rows, int64_t channels, double* sums,
                                                         double* acc) {
  double* even = acc;
  double* odd = acc + channels;
  std::fill(acc, acc + 2 * channels, 0.0);
  int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const float* a = v + r * channels;
    const float* b = a + channels;
    for (int64_t c = 0; c < channels; ++c) even[c] += double(a[c]);
    for (int64_t c = 0; c < channels; ++c) odd[c] += double(b[c]);
  }
  if (r < rows)
    for (int64_t c = 0; c < channels; ++c) even[c] += double(v[r * channels + c]);
  for (int64_t c = 0; c < channels; ++c) sums[c] = even[c] + odd[c];
}

// The loops above compiled once more for AVX2 (wider vectors, the same
// operations per value: every sum keeps its order, and without FMA no
// product is fused, so the results are bitwise the same), picked at run time.
__attribute__((target("avx2"))) void elementwise_dz_avx2(const Activation& act, const float* z, const float* y,
                                                         const float* dy, float* dz, int64_t count) {
  elementwise_dz_body(act, z, y, dy, dz, count);
}
__attribute__((target("avx2"))) double sum_floats_avx2(const float* v, int64_t count) {
  return sum_floats_body(v, count);
}
__attribute__((target("avx2"))) void sum_rows_avx2(const float* v, int64_t rows, int64_t channels, double* sums,
                                                   double* acc) {
  sum_rows_body(v, rows, channels, sums, acc);
}

bool has_avx2() { return cpu_features().avx2_fma || cpu_features().avx512; }

void elementwise_dz(const Activation& act, const float* z, const float* y, const float* dy, float* dz, int64_t count) {
  if (has_avx2()) return elementwise_dz_avx2(act, z, y, dy, dz, count);
  elementwise_dz_body(act, z, y, dy, dz, count);
}

double sum_floats(const float* v, int64_t count) {
  return has_avx2() ? sum_floats_avx2(v, count) : sum_floats_body(v, count);
}

// Fewer channels than a vector of eight, dividing it (a 4-filter head): the
// rows taken 8 / channels at a time as rows of eight values, lane j holding
// channel j % channels; then the rows left over.
void sum_rows(const float* v, int64_t rows, int64_t channels, double* sums) {
  const bool avx2 = has_avx2();
  std::vector<double> acc(static_cast<size_t>(2 * std::max<int64_t>(channels, 8)));
  auto run = [avx2, &acc](const float* p, int64_t r, int64_t c, double* out) {
    if (avx2)
      sum_rows_avx2(p, r, c, out, acc.data());
    else
      sum_rows_body(p, r, c, out, acc.data());
  };
  if (channels >= 8 || 8 % channels != 0) return run(v, rows, channels, sums);
  const int64_t group = 8 / channels, grouped = rows / group;
  double lanes[8];
  run(v, grouped, 8, lanes);
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t k = 0; k < group; ++k) sum += lanes[k * channels + c];
    for (int64_t r = grouped * group; r < rows; ++r) sum += double(v[r * channels + c]);
    sums[c] = sum;
  }
}

}  // namespace

void preactivation_gradient_rows(const Activation& act, const float* z, const float* y, const float* dy, float* dz,
                                 int64_t rows, int64_t length) {
  if (axis_activation(act))
    activation_gradient_rows(act, z, y, dy, dz, rows, length);
  else
    elementwise_dz(act, z, y, dy, dz, rows * length);
}

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
      preactivation_gradient_rows(act, z_rows, y_rows, dy + row0 * out_length, dz_rows_out + row0 * length, rows,
                                  length);
    }
    if (!db) continue;
    const float* done = dz_fmt + row0 * length;
    if (last)
      sum_rows(done, rows, filters, partial.data() + item * filters);
    else
      partial[item] = sum_floats(done, rows * length);
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
  const bool avx = cpu_features().avx2_fma || cpu_features().avx512;
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
          elementwise_dz(act, z ? z + at : nullptr, y ? y + at : nullptr, dy + at, block.get() + c * span, count);
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
            partial[item * channels + c0 + c] = sum_floats(from + c * src_stride, count);
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
