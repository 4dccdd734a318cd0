// Layer::backward: the activation's derivative fused with the bias gradient,
// then the backend's dx and dK kernels (channels_last; channels_first is
// transposed around them, dz in the same pass as the derivative and db).

#include <algorithm>
#include <mutex>
#include <tuple>
#include <utility>

#include "core/activation_gradient.hpp"
#include "core/problem.hpp"
#include "runtime/backward_arguments.hpp"
#include "runtime/backward_factory.hpp"
#include "runtime/backward_scratch.hpp"
#include "runtime/executor_factory.hpp"
#include "runtime/kernels/channel_transpose.hpp"
#include "runtime/layer_state.hpp"
#include "runtime/memory_guard.hpp"
#include "runtime/preactivation_gradient.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d {

void Layer::backward(const float* x, const float* y, const float* dy, float* dx, float* dk, float* db) const {
  const State& s = *state_;
  if (s.options.dtype != DataType::kFloat32)
    throw Error("dtype", "backward is float32 only for now; this layer computes in bf16 (forward_bf16)");
  const ConvGeometry& g = s.geometry;
  const Activation& act = s.config.activation;
  const bool need_z = needs_preactivation(act);
  if (!check_backward_arguments(g, act, s.config.use_bias, output_elements(), 4, x, y, dy, dx, dk, db)) return;
  const int64_t in_elems = g.input_elements(), pre_elems = g.output_elements();
  const int64_t filters = g.out_channels;

  const LayerOptions& options = s.options;
  std::call_once(s.backward_once, [&] {
    s.backward = make_backward_executor(make_problem(g, s.config.use_bias, act), *s.weights, options);
  });
  if (need_z) {
    std::call_once(s.preactivation_once, [&] {
      s.preactivation = make_executor(make_problem(g, s.config.use_bias, Activation{}), *s.weights, options);
    });
  }
  const bool last = g.data_format == DataFormat::kChannelsLast;
  const bool kernels = dx || dk;
  const int64_t spatial_in = in_elems / (g.batch * g.in_channels);
  const int64_t spatial_out = pre_elems / (g.batch * filters);
  // channels_first with an elementwise activation: dz goes straight to
  // channels_last, in the pass that computes it and sums db.
  const bool fused = !last && kernels && fuses_channels_last_dz(g, act);
  const bool linear = act.kind == ActivationKind::kLinear;
  // Scratch, kept by the layer between calls (runtime/backward_scratch.hpp),
  // each part on its own cache lines: z; dz in the layer's format (neither
  // for linear, nor when fused); dz, x and dx in channels_last.
  auto lines = [](int64_t floats) { return (floats + 15) / 16 * 16; };
  const int64_t z_floats = need_z ? lines(pre_elems) : 0;
  const int64_t dz_fmt_floats = !linear && !fused ? lines(pre_elems) : 0;
  const int64_t dz_last_floats = !last && kernels ? lines(pre_elems) : 0;
  const int64_t x_last_floats = !last && dk ? lines(in_elems) : 0;
  const int64_t dx_last_floats = !last && dx ? lines(in_elems) : 0;
  const int64_t scratch_floats = z_floats + dz_fmt_floats + dz_last_floats + x_last_floats + dx_last_floats;
  check_allocatable(4.0 * double(scratch_floats), "backward");
  const BackwardScratch::Lease scratch = s.backward_scratch.acquire(static_cast<size_t>(scratch_floats));
  float* const z = scratch.data();
  float* const dz_fmt_buffer = z + z_floats;
  float* const dz_t = dz_fmt_buffer + dz_fmt_floats;
  float* const x_t = dz_t + dz_last_floats;
  float* const dx_t = x_t + x_last_floats;

  if (need_z) s.preactivation->run(x, z, s.threads);
  const float* dz_last = nullptr;
  if (fused) {
    preactivation_gradient_to_channels_last(g, act, need_z ? z : nullptr, y, dy, db, dz_t, s.threads);
    dz_last = dz_t;
  } else {
    const float* dz_fmt = preactivation_gradient(g, act, need_z ? z : nullptr, y, dy, db, dz_fmt_buffer, s.threads);
    if (!kernels) return;
    // The executors take channels_last.
    dz_last = dz_fmt;
    if (!last) {
      transpose_batched(dz_fmt, dz_t, g.batch, filters, spatial_out, s.threads);
      dz_last = dz_t;
    }
  }
  if (dx) {
    s.backward->input_gradient(dz_last, last ? dx : dx_t, s.threads);
    if (!last) transpose_batched(dx_t, dx, g.batch, spatial_in, g.in_channels, s.threads);
  }
  if (dk) {
    const float* x_last = x;
    if (!last) {
      transpose_batched(x, x_t, g.batch, g.in_channels, spatial_in, s.threads);
      x_last = x_t;
    }
    s.backward->kernel_gradient(x_last, dz_last, dk, s.threads);
  }
}

std::string Layer::backward_kernel_names() const {
  const State& s = *state_;
  if (s.options.dtype == DataType::kBfloat16) return backward_bf16_kernel_names();
  std::call_once(s.backward_once, [&] {
    s.backward =
        make_backward_executor(make_problem(s.geometry, s.config.use_bias, s.config.activation), *s.weights, s.options);
  });
  return s.backward->input_gradient_kernel_name() + " + " + s.backward->kernel_gradient_kernel_name();
}

}  // namespace tconv3d
