// Deterministic kernel names that say what a kernel computes and how, in the
// XNNPACK style "what__how": the same name is used for the cache entry, the
// TCONV3D_DUMP_DIR file and the perf symbol. Example:
//   tconv3d_f32_k3x3x3_s2x2x2_d1x1x1_c64to32_w16to32c1_cl_relu__avx2_4x3
// and the same layer's input gradient (dx from dz, plan/input_gradient_plan.hpp):
//   tconv3d_dx_f32_k3x3x3_s2x2x2_d1x1x1_c64to32_w16to32c1__avx2_4x3
#pragma once

#include <string>

namespace tconv3d::codegen {

struct KernelPlan;
struct KernelGradientPlan;

std::string kernel_name(const KernelPlan& plan);

// The dK kernel's name, e.g.
//   tconv3d_dk_f32_k3x3x3_s2x2x2_d1x1x1_c64to32_w16to32c1__avx512_7x2
// (tile rows x ci vectors after the ISA).
std::string kernel_gradient_name(const KernelGradientPlan& plan);

}  // namespace tconv3d::codegen
