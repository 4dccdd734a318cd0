// The plan of a bf16 layer's input gradient: the float32 input-gradient plan
// (plan/input_gradient_plan.hpp: dx as a strided forward convolution of dz)
// with dtype bf16, so the bf16 row emitter runs it: dz and dx in bf16, the
// contraction over pairs of filters (vdpbf16ps), float32 accumulation, and
// the kernel packed in filter pairs (bf16_weight_pack.hpp).
#pragma once

#include "core/problem.hpp"
#include "plan/plan.hpp"

namespace tconv3d::codegen {

// AVX-512 only (the bf16 kernels' ISA). The problem's bias and activation do
// not enter. Throws tconv3d::Error for shapes the generated code cannot address.
KernelPlan make_bf16_input_gradient_plan(const Problem& problem);

}  // namespace tconv3d::codegen
