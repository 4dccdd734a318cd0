// The Xbyak row kernel of a bf16 plan (KernelPlan::dtype bf16), AVX-512 with
// AVX512_BF16 only, in zmm or (plan.lanes 8) ymm vectors. The float32
// emitter's template (tconv_emitter.hpp: W phases, channel groups, register
// tiles of tile_w voxels x oc_block vectors, run-time row taps, lane-packed
// super voxels, shared broadcasts) emits it, with the contraction over
// channel pairs: accumulators start from the float32 bias, each pair of
// input channels is broadcast as one dword (two bf16) and vdpbf16ps adds
// both products to the float32 lanes. The elementwise activation runs on the
// float32 accumulators (in zmm vectors: a ymm plan activates two
// accumulators at once), then vcvtneps2bf16 rounds them (nearest even) and
// stores, masked at the tails, write bf16. An odd Cin's last channel is
// broadcast alone with the upper half zeroed, so no byte past a voxel's
// channels is read.
#pragma once

#include "core/compiled_code.hpp"
#include "plan/plan.hpp"

namespace tconv3d::x64 {

// plan.bf16() and plan.isa == kAvx512. The caller checks the CPU.
CompiledCode emit_bf16_kernel(const codegen::KernelPlan& plan);

}  // namespace tconv3d::x64
