#include "plan/bf16_weight_pack.hpp"

#include <cstring>
#include <vector>

#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

// One block of the layout: [ci][W tap][VL lanes] in float32, the same
// elements in bf16 as [ci / 2][W tap][VL][ci % 2]; both start at `base`
// (counted in float32 or bf16 elements: every block offset is linear in the
// contraction channels, and the float32 plan has Cin rounded up to even).
void repack_block(const float* f32, uint16_t* out, int64_t base, int64_t cin_even, int64_t taps, int64_t vl) {
  for (int64_t ci = 0; ci < cin_even; ++ci)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t lane = 0; lane < vl; ++lane)
        out[base + ((ci / 2) * taps + t) * 2 * vl + 2 * lane + ci % 2] =
            float_to_bf16(f32[base + (ci * taps + t) * vl + lane]);
}

}  // namespace

AlignedFloats pack_weights_bf16(const codegen::KernelPlan& plan, const float* kernel) {
  if (!plan.bf16()) throw Error("dtype", "pack_weights_bf16 needs a bf16 plan");
  const ConvGeometry& g = plan.geometry;
  // The float32 plan of the same layer with an even contraction (a zero
  // channel appended when odd: an input channel forward, a filter for the
  // input gradient): its packing, pair by pair, is the bf16 packing.
  codegen::KernelPlan f32 = plan;
  f32.dtype = DataType::kFloat32;
  const int64_t cin = g.in_channels, cin_even = (cin + 1) / 2 * 2;
  f32.geometry.in_channels = cin_even;
  const int64_t taps_dh = g.axes[0].kernel * g.axes[1].kernel, kw = g.axes[2].kernel;
  std::vector<float> padded(static_cast<size_t>(taps_dh * kw * g.out_channels * cin_even), 0.0f);
  if (plan.pass == codegen::PlanPass::kInputGradient) {
    // The Keras kernel seen from the input gradient: [tap][contraction
    // channel (a filter)][lane (an input channel)]; a zero filter row per tap.
    const int64_t block = cin * g.out_channels;
    for (int64_t t = 0; t < taps_dh * kw; ++t)
      std::memcpy(&padded[static_cast<size_t>(t * cin_even * g.out_channels)], kernel + t * block,
                  sizeof(float) * size_t(block));
  } else {
    for (int64_t i = 0; i < taps_dh * kw * g.out_channels; ++i)
      std::memcpy(&padded[static_cast<size_t>(i * cin_even)], kernel + i * cin, sizeof(float) * size_t(cin));
  }
  const AlignedFloats packed32 = pack_weights(f32, padded.data());

  AlignedFloats packed(static_cast<size_t>(plan.packed_weight_count()));
  if (packed32.size() != 2 * packed.size()) throw Error("dtype", "bf16 packing: inconsistent layout sizes");
  uint16_t* out = reinterpret_cast<uint16_t*>(packed.data());
  for (int64_t dh = 0; dh < taps_dh; ++dh) {
    const int64_t dh_base = dh * f32.weights_per_dh_tap();
    if (plan.w_pack > 1) {
      repack_block(packed32.data(), out, dh_base, cin_even, f32.w_taps(0), f32.padded_out_channels());
      continue;
    }
    for (int rw = 0; rw < static_cast<int>(plan.phases[2].size()); ++rw) {
      for (int group = 0; group < plan.oc_groups; ++group) {
        const int64_t vectors = group + 1 == plan.oc_groups ? plan.last_group_vectors : plan.oc_block;
        const int64_t base = dh_base + f32.weights_phase_offset(rw) + group * f32.weights_group_stride(rw);
        repack_block(packed32.data(), out, base, cin_even, f32.w_taps(rw), vectors * plan.lanes);
      }
    }
  }
  return packed;
}

}  // namespace tconv3d
