// The plan of a bf16 layer's input gradient: the float32 input-gradient plan
// (plan/input_gradient_plan.hpp: dx as a strided forward convolution of dz)
// with dtype bf16, so the bf16 row emitter runs it: dz and dx in bf16, the
// contraction over pairs of filters (vdpbf16ps), float32 accumulation, and
// the kernel packed in filter pairs (bf16_weight_pack.hpp).
#pragma once

#include "core/problem.hpp"
#include "plan/plan.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d::codegen {

// AVX-512 only (the bf16 kernels' ISA), in zmm vectors: the plan every code
// backend implements. The problem's bias and activation do not enter.
// Throws tconv3d::Error for shapes the generated code cannot address.
KernelPlan make_bf16_input_gradient_plan(const Problem& problem);

// The plan `backend` (kXbyak or kLlvm) runs: Xbyak's takes 8-lane (ymm)
// vectors where they need at least 1/8 fewer vdpbf16ps halves than zmm ones
// (w_fma_halves, as make_plan: e.g. 24 input channels are 3 full ymm
// vectors against 2 zmm with 8 lanes idle); LLVM's is
// make_bf16_input_gradient_plan's. Throws for other backends.
KernelPlan bf16_input_gradient_plan_for_backend(const Problem& problem, Backend backend);

}  // namespace tconv3d::codegen
