// The bf16 packed weights (KernelPlan::dtype bf16): the float32 layout of
// weight_pack.hpp with the contraction taken in channel pairs. Each dword of
// the float32 layout's [ci][W tap][vector][lane] becomes a pair
// [ci pair][W tap][vector][lane][2]: the bf16 weights of channels 2k (low
// half) and 2k+1 (high half), the operand order of vdpbf16ps. An odd Cin's
// last pair holds a zero high half (the contraction: input channels forward,
// filters for the input gradient, plan.pass). Weights are rounded to bf16 (nearest,
// ties to even, as Keras's cast) once here.
#pragma once

#include "plan/weight_pack.hpp"

namespace tconv3d {

// kernel: Keras layout (kd, kh, kw, filters, in_channels), float32. The
// result holds plan.packed_weight_count() dwords.
AlignedFloats pack_weights_bf16(const codegen::KernelPlan& plan, const float* kernel);

}  // namespace tconv3d
