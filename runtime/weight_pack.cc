#include "runtime/weight_pack.hpp"

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

AlignedFloats pack_weights(const codegen::KernelPlan& plan, const float* kernel) {
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
  if (plan.has_bias && bias) std::copy(bias, bias + plan.geometry.out_channels, packed.data());
  return packed;
}

}  // namespace tconv3d
