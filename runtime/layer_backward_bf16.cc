// Layer::backward_bf16: the backward pass of a bf16 layer as Keras's
// mixed_bfloat16 policy computes it. x, y, dy and dx are bf16; the kernel
// is the float32 variable rounded to bf16; dK and db reach the float32
// variables as float32.
//
//   z  = the bf16 forward with a linear activation (bf16, as the layer's
//        forward computes it), where act' needs it;
//   dz = dy * act'(z) in float32, db = float32 sums of dz (both in
//        preactivation_gradient_bf16.*); dz is rounded to bf16 once, and
//   dx = bf16(conv(dz, bf16(K))) and dK = correlation(x, dz) are computed
//        from it with float32 accumulation.
// channels_first is transposed (16-bit tiles) around the channels_last kernels.

#include <algorithm>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/activation_gradient.hpp"
#include "core/problem.hpp"
#include "runtime/backward_arguments.hpp"
#include "runtime/bf16_backward_executor.hpp"
#include "runtime/executor_factory.hpp"
#include "runtime/kernels/bf16_transpose.hpp"
#include "runtime/layer_state.hpp"
#include "runtime/memory_guard.hpp"
#include "runtime/preactivation_gradient_bf16.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d {

namespace {

// [batch][rows][cols] -> [batch][cols][rows], 16-bit, in 64 x 64 tiles shared among threads.
void transpose_batched_u16(const uint16_t* in, uint16_t* out, int64_t batch, int64_t rows, int64_t cols, int threads) {
  constexpr int64_t kTile = 64;
  const int64_t row_tiles = (rows + kTile - 1) / kTile, col_tiles = (cols + kTile - 1) / kTile;
  const int64_t items = batch * row_tiles * col_tiles;
#pragma omp parallel for schedule(static) num_threads(threads) if (items > 4)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t n = item / (row_tiles * col_tiles), t = item % (row_tiles * col_tiles);
    const int64_t r0 = t / col_tiles * kTile, c0 = t % col_tiles * kTile;
    const uint16_t* src = in + n * rows * cols;
    uint16_t* dst = out + n * rows * cols;
    transpose_block_u16(src + r0 * cols + c0, cols, dst + c0 * rows + r0, rows, std::min(kTile, rows - r0),
                        std::min(kTile, cols - c0));
  }
}

// Built once, by whichever call gets there first. (A template: Layer::State is private.)
template <typename State>
const Bf16BackwardExecutor& bf16_backward_of(const State& s) {
  std::call_once(s.bf16_backward_once, [&] {
    Problem problem = make_problem(s.geometry, s.config.use_bias, s.config.activation);
    problem.dtype = DataType::kBfloat16;
    s.bf16_backward = make_bf16_backward_executor(problem, *s.weights, s.options);
  });
  return *s.bf16_backward;
}

}  // namespace

void Layer::backward_bf16(const uint16_t* x, const uint16_t* y, const uint16_t* dy, uint16_t* dx, float* dk,
                          float* db) const {
  const State& s = *state_;
  if (s.options.dtype != DataType::kBfloat16)
    throw Error("dtype",
                "backward_bf16 on a float32 layer: use backward, or create the layer with "
                "LayerOptions::dtype = bf16");
  const ConvGeometry& g = s.geometry;
  const Activation& act = s.config.activation;
  const bool need_z = needs_preactivation(act);
  if (!check_backward_arguments(g, act, s.config.use_bias, output_elements(), 2, x, y, dy, dx, dk, db)) return;
  const int64_t in_elems = g.input_elements(), pre_elems = g.output_elements();
  const int64_t filters = g.out_channels;

  // Build (and so validate: CPU, backend) the executors before any work.
  const Bf16BackwardExecutor* kernels = (dx || dk) ? &bf16_backward_of(s) : nullptr;
  if (need_z) {
    std::call_once(s.preactivation_once, [&] {
      Problem linear = make_problem(g, s.config.use_bias, Activation{});
      linear.dtype = DataType::kBfloat16;
      s.preactivation = make_executor(linear, *s.weights, s.options);
    });
  }
  const int threads = s.threads;
  const bool last = g.data_format == DataFormat::kChannelsLast;
  const int64_t spatial_in = in_elems / (g.batch * g.in_channels);
  const int64_t spatial_out = pre_elems / (g.batch * filters);
  // Scratch (bytes): z and dz in bf16, the channels_last copies of dz, x and
  // dx, and dK's voxel-pair copies of x (W rounded up to even) and dz (each
  // value twice, rows stride longer): see runtime/kernels/bf16_kernel_gradient.hpp.
  const AxisGeometry& wa = g.axes[2];
  const double dk_scratch = 2.0 * double(in_elems) * double(wa.in + 1) / double(wa.in) +
                            4.0 * double(pre_elems) * double(wa.out + wa.stride) / double(wa.out);
  check_allocatable(2.0 * double(pre_elems) * (need_z ? 1 : 0) + 2.0 * double(pre_elems) * (last ? 1 : 2) +
                        2.0 * double(in_elems) * (last ? 0 : 2) + (dk ? dk_scratch : 0.0),
                    "backward");

  std::vector<uint16_t> z;
  if (need_z) {
    z.resize(static_cast<size_t>(pre_elems));
    s.preactivation->run_bf16(x, z.data(), threads);
  }
  std::vector<uint16_t> dz_storage;
  const uint16_t* dz_fmt =
      preactivation_gradient_bf16(g, act, need_z ? z.data() : nullptr, y, dy, db, dz_storage, threads);
  if (!dx && !dk) return;

  // The kernels take channels_last.
  const uint16_t* dz_last = dz_fmt;
  std::vector<uint16_t> dz_t;
  if (!last) {
    dz_t.resize(static_cast<size_t>(pre_elems));
    transpose_batched_u16(dz_fmt, dz_t.data(), g.batch, filters, spatial_out, threads);
    dz_last = dz_t.data();
  }
  if (dx) {
    if (last) {
      kernels->input_gradient(dz_last, dx, threads);
    } else {
      std::vector<uint16_t> dx_t(static_cast<size_t>(in_elems));
      kernels->input_gradient(dz_last, dx_t.data(), threads);
      transpose_batched_u16(dx_t.data(), dx, g.batch, spatial_in, g.in_channels, threads);
    }
  }
  if (dk) {
    if (last) {
      kernels->kernel_gradient(x, dz_last, dk, threads);
    } else {
      std::vector<uint16_t> x_t(static_cast<size_t>(in_elems));
      transpose_batched_u16(x, x_t.data(), g.batch, g.in_channels, spatial_in, threads);
      kernels->kernel_gradient(x_t.data(), dz_last, dk, threads);
    }
  }
}

std::string Layer::backward_bf16_kernel_names() const {
  const State& s = *state_;
  if (s.options.dtype != DataType::kBfloat16)
    throw Error("dtype", "backward_bf16_kernel_names on a float32 layer: use backward_kernel_names");
  const Bf16BackwardExecutor& k = bf16_backward_of(s);
  return k.input_gradient_kernel_name() + " + " + k.kernel_gradient_kernel_name();
}

}  // namespace tconv3d
