// The LLVM IR emitter of the row kernel: reads the same KernelPlan as the
// Xbyak emitter and defines `void name(const KernelArgs*)` with the same
// meaning (core/kernel_args.hpp), the same packed weights
// (plan/weight_pack.hpp) and the same loop structure: per W phase, channel
// group and W tile, a register tile of tile_w x oc_block vectors accumulates
// the row taps x Cin x W taps; border tiles with their valid taps fixed,
// interior tiles in a loop; masked stores for the channel tail and for
// lane-packed super voxels at the row ends (plan.w_pack); one channel group
// only for per-group plans (plan.only_group); the fused activation in a pass
// over the finished row (over the group's own channels for a per-group plan).
// Input-gradient plans (plan.pass) differ only in their phases and W steps.
#pragma once

#include <string>

#include <llvm/IR/Function.h>
#include <llvm/IR/Module.h>

#include "plan/plan.hpp"

namespace tconv3d::llvm_backend {

// Adds the kernel to `module` as an externally visible function `name`. The
// vectors have plan.lanes floats; LLVM splits them where the target's
// registers are narrower (NEON: 4 lanes).
// max_cin_unroll caps the plan's Cin unrolling (code size, hence compile time).
llvm::Function* emit_row_kernel(llvm::Module& module, const codegen::KernelPlan& plan, const std::string& name,
                                int max_cin_unroll = 64);

// The IR type of codegen::KernelArgs (same field order and offsets).
llvm::StructType* kernel_args_type(llvm::LLVMContext& context);

}  // namespace tconv3d::llvm_backend
