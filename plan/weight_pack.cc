#include "plan/weight_pack.hpp"

#include "plan/bf16_weight_pack.hpp"
#include "tconv3d/error.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace tconv3d {

AlignedFloats::AlignedFloats(size_t count) : size_(count) {
  const size_t bytes = std::max<size_t>(64, (count * sizeof(float) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  data_.reset(static_cast<float*>(p));
}

namespace {

// Keras index of (kd*kh tap dh, W tap a_w, filter f, input channel ci).
int64_t keras_index(const ConvGeometry& g, int64_t dh, int64_t a_w, int64_t f, int64_t ci) {
  return ((dh * g.axes[2].kernel + a_w) * g.out_channels + f) * g.in_channels + ci;
}

// Lane-packed W (plan.w_pack > 1): one vector per (ci, input offset t); lanes
// r * Cout .. r * Cout + Cout - 1 hold the W tap a with a * dilation =
// t * stride + r, or stay zero when there is no such tap.
void lane_packed_runs(const codegen::KernelPlan& plan, std::vector<PackRun>& runs) {
  const ConvGeometry& g = plan.geometry;
  const AxisGeometry& w = g.axes[2];
  const auto& taps = plan.phases[2].front().taps;
  const int64_t wt = static_cast<int64_t>(taps.size());
  for (int64_t dh = 0; dh < g.axes[0].kernel * g.axes[1].kernel; ++dh) {
    for (int64_t ci = 0; ci < g.in_channels; ++ci) {
      for (int64_t t = 0; t < wt; ++t) {
        const int64_t vector = dh * plan.weights_per_dh_tap() + (ci * wt + t) * plan.padded_out_channels();
        for (int64_t r = 0; r < plan.w_pack; ++r) {
          const int64_t reach = taps[static_cast<size_t>(t)].offset * w.stride + r;
          if (reach % w.dilation != 0 || reach / w.dilation >= w.kernel) continue;
          runs.push_back({vector + r * g.out_channels, keras_index(g, dh, reach / w.dilation, 0, ci), g.out_channels});
        }
      }
    }
  }
}

// The Keras index of a packed vector's first lane: W tap a_w of (kd*kh tap)
// dh, lane0 the first channel the lanes hold, c the contraction channel.
// Forward: lanes are filters, c an input channel. Input gradient (geometry
// seen from the kernel: in_channels = filters, out_channels = the layer's
// input channels): lanes are input channels, c a filter.
int64_t source_index(const codegen::KernelPlan& plan, int64_t dh, int64_t a_w, int64_t lane0, int64_t c) {
  const ConvGeometry& g = plan.geometry;
  if (plan.pass == codegen::PlanPass::kInputGradient)
    return ((dh * g.axes[2].kernel + a_w) * g.in_channels + c) * g.out_channels + lane0;
  return keras_index(g, dh, a_w, lane0, c);
}

// One run per (dh, W phase, channel group, ci, W tap): the group's channels.
void phase_runs(const codegen::KernelPlan& plan, std::vector<PackRun>& runs) {
  const ConvGeometry& g = plan.geometry;
  for (int64_t dh = 0; dh < g.axes[0].kernel * g.axes[1].kernel; ++dh) {
    for (int rw = 0; rw < static_cast<int>(plan.phases[2].size()); ++rw) {
      const auto& taps = plan.phases[2][rw].taps;
      const int64_t wt = static_cast<int64_t>(taps.size());
      for (int group = 0; group < plan.oc_groups; ++group) {
        const int64_t vectors = group + 1 == plan.oc_groups ? plan.last_group_vectors : plan.oc_block;
        const int64_t first_filter = int64_t(group) * plan.oc_block * plan.lanes;
        const int64_t count = std::min(vectors * plan.lanes, g.out_channels - first_filter);
        if (count <= 0) continue;
        const int64_t base = dh * plan.weights_per_dh_tap() + plan.weights_phase_offset(rw) +
                             group * plan.weights_group_stride(rw);
        for (int64_t ci = 0; ci < g.in_channels; ++ci)
          for (int64_t t = 0; t < wt; ++t)
            runs.push_back({base + (ci * wt + t) * vectors * plan.lanes,
                            source_index(plan, dh, taps[static_cast<size_t>(t)].tap, first_filter, ci), count});
      }
    }
  }
}

// Lane-packed W repeats the channels once per voxel the vector holds.
std::vector<PackRun> bias_runs(const codegen::KernelPlan& plan) {
  std::vector<PackRun> runs;
  const int64_t cout = plan.geometry.out_channels;
  if (plan.has_bias)
    for (int64_t r = 0; r < plan.w_pack; ++r) runs.push_back({r * cout, 0, cout});
  return runs;
}

}  // namespace

PackRuns packing_runs(const codegen::KernelPlan& plan) {
  // The runs copy float32; bf16 packs pairs (pack_weights_bf16), and the AOT
  // objects that apply runs have no bf16 kernels yet.
  if (plan.bf16()) throw Error("dtype", "bf16 weights are not packed by runs (no bf16 AOT objects yet)");
  PackRuns runs;
  // Consecutive lanes: consecutive filters (stride in_channels) forward,
  // consecutive input channels (stride 1) for the input gradient.
  runs.weight_stride = plan.pass == codegen::PlanPass::kInputGradient ? 1 : plan.geometry.in_channels;
  if (plan.w_pack > 1)
    lane_packed_runs(plan, runs.weights);
  else
    phase_runs(plan, runs.weights);
  runs.bias = bias_runs(plan);
  return runs;
}

void apply_pack_runs(const std::vector<PackRun>& runs, int64_t stride, const float* source, float* packed) {
  for (const PackRun& run : runs)
    for (int64_t i = 0; i < run.count; ++i) packed[run.dst + i] = source[run.src + i * stride];
}

AlignedFloats pack_weights(const codegen::KernelPlan& plan, const float* kernel) {
  if (plan.bf16()) return pack_weights_bf16(plan, kernel);
  AlignedFloats packed(static_cast<size_t>(plan.packed_weight_count()));
  const PackRuns runs = packing_runs(plan);
  apply_pack_runs(runs.weights, runs.weight_stride, kernel, packed.data());
  return packed;
}

AlignedFloats pack_bias(const codegen::KernelPlan& plan, const float* bias) {
  AlignedFloats packed(static_cast<size_t>(plan.padded_out_channels()));
  if (bias) apply_pack_runs(bias_runs(plan), 1, bias, packed.data());
  return packed;
}

}  // namespace tconv3d
