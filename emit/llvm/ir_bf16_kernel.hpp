// The LLVM IR emitter of the bf16 row kernel (KernelPlan::dtype bf16, AVX-512
// with AVX512_BF16): the same plan, packed weights (plan/bf16_weight_pack.hpp)
// and computation as the Xbyak bf16 kernel (emit/x64/bf16_emitter.hpp), in
// the float32 LLVM kernel's structure (ir_kernel.hpp: W phases, channel
// groups, register tiles, run-time row taps). Accumulators start from the
// float32 bias; each pair of input channels is broadcast as one dword (two
// bf16) into llvm.x86.avx512bf16.dpbf16ps.512 with the weights' dword pairs;
// an odd Cin's last channel is broadcast alone, its upper half zero (no read
// past a voxel's channels). The elementwise activation runs on the float32
// accumulators (ir_activation.hpp), then cvtneps2bf16 rounds them (nearest
// even) and 16-lane stores, masked at the channel tail and for lane-packed
// super voxels at the row ends, write bf16.
#pragma once

#include <string>

#include <llvm/IR/Function.h>
#include <llvm/IR/Module.h>

#include "plan/plan.hpp"

namespace tconv3d::llvm_backend {

// plan.bf16(), plan.isa == kAvx512, 16 lanes and no activation row pass,
// else tconv3d::Error naming what is missing. Forward and input-gradient
// plans (plan.pass) alike. The target must have avx512bf16 (the caller checks the
// CPU). max_cin_unroll caps the plan's channel-pair unrolling (compile time).
llvm::Function* emit_bf16_row_kernel(llvm::Module& module, const codegen::KernelPlan& plan, const std::string& name,
                                     int max_cin_unroll = 64);

}  // namespace tconv3d::llvm_backend
