#include "plan/weight_pack.hpp"

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

// Lane-packed W (plan.w_pack > 1): one vector per (ci, input offset t), lane
// r * Cout + c holding the W tap a with a * dilation = t * stride + r.
void pack_lane_packed(const codegen::KernelPlan& plan, const float* kernel, float* out) {
  const ConvGeometry& g = plan.geometry;
  const AxisGeometry& w = g.axes[2];
  const int64_t kh = g.axes[1].kernel, cin = g.in_channels, cout = g.out_channels;
  const auto& taps = plan.phases[2].front().taps;
  const int64_t wt = static_cast<int64_t>(taps.size());
  for (int64_t a_d = 0; a_d < g.axes[0].kernel; ++a_d) {
    for (int64_t a_h = 0; a_h < kh; ++a_h) {
      float* block = out + (a_d * kh + a_h) * plan.weights_per_dh_tap();
      for (int64_t ci = 0; ci < cin; ++ci) {
        for (int64_t t = 0; t < wt; ++t) {
          float* vec = block + (ci * wt + t) * plan.padded_out_channels();
          for (int64_t lane = 0; lane < plan.vector_channels(); ++lane) {
            const int64_t reach = taps[static_cast<size_t>(t)].offset * w.stride + lane / cout;
            const int64_t a_w = reach / w.dilation;
            if (reach % w.dilation != 0 || a_w >= w.kernel) continue;  // no tap: stays zero
            vec[lane] = kernel[(((a_d * kh + a_h) * w.kernel + a_w) * cout + lane % cout) * cin + ci];
          }
        }
      }
    }
  }
}

}  // namespace

AlignedFloats pack_weights(const codegen::KernelPlan& plan, const float* kernel) {
  if (plan.w_pack > 1) {
    AlignedFloats packed(static_cast<size_t>(plan.packed_weight_count()));
    pack_lane_packed(plan, kernel, packed.data());
    return packed;
  }
  const ConvGeometry& g = plan.geometry;
  const int64_t kh = g.axes[1].kernel, kw = g.axes[2].kernel;
  const int64_t cin = g.in_channels, cout = g.out_channels;
  const int64_t lanes = plan.lanes;
  AlignedFloats packed(static_cast<size_t>(plan.packed_weight_count()));
  float* out = packed.data();
  for (int64_t a_d = 0; a_d < g.axes[0].kernel; ++a_d) {
    for (int64_t a_h = 0; a_h < kh; ++a_h) {
      const int64_t dh_base = (a_d * kh + a_h) * plan.weights_per_dh_tap();
      for (int rw = 0; rw < static_cast<int>(plan.phases[2].size()); ++rw) {
        const auto& taps = plan.phases[2][rw].taps;
        const int64_t wt = static_cast<int64_t>(taps.size());
        for (int group = 0; group < plan.oc_groups; ++group) {
          const int64_t vectors = group + 1 == plan.oc_groups ? plan.last_group_vectors : plan.oc_block;
          const int64_t base = dh_base + plan.weights_phase_offset(rw) + group * plan.weights_group_stride(rw);
          for (int64_t ci = 0; ci < cin; ++ci) {
            for (int64_t t = 0; t < wt; ++t) {
              const int64_t a_w = taps[static_cast<size_t>(t)].tap;
              const float* src = kernel + ((a_d * kh + a_h) * kw + a_w) * cout * cin + ci;
              for (int64_t v = 0; v < vectors; ++v) {
                for (int64_t lane = 0; lane < lanes; ++lane) {
                  const int64_t f = (group * plan.oc_block + v) * lanes + lane;
                  if (f < cout) out[base + ((ci * wt + t) * vectors + v) * lanes + lane] = src[f * cin];
                }
              }
            }
          }
        }
      }
    }
  }
  return packed;
}

AlignedFloats pack_bias(const codegen::KernelPlan& plan, const float* bias) {
  AlignedFloats packed(static_cast<size_t>(plan.padded_out_channels()));
  if (!plan.has_bias || !bias) return packed;
  // Lane-packed W repeats the channels once per voxel the vector holds.
  for (int64_t lane = 0; lane < plan.vector_channels(); ++lane)
    packed.data()[lane] = bias[lane % plan.geometry.out_channels];
  return packed;
}

}  // namespace tconv3d
