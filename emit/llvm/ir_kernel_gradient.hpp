// The LLVM IR emitter of the kernel-gradient (dK) kernel: reads the same
// KernelGradientPlan as the Xbyak emitter (emit/x64/kernel_gradient_emitter)
// and defines `void name(const KernelGradientArgs*)` with the same meaning
// (plan/kernel_gradient_plan.hpp): per row-tile class, the tiles of the
// call's range; per tile, its ci blocks (a loop over the uniform ones, then
// the narrower last one, masked); per block, accumulators loaded from dK (or
// zeroed), every pair's W segments (border segments with their valid kw taps
// fixed, loops of w_unroll voxels), and a store back.
//
// Each dK element sums its terms in the same order as the Xbyak kernel (the
// pairs in order, then iw, one fused multiply-add each, no reassociation),
// so for the same plan both give bitwise the same dK.
//
// The bf16 plan (plan.bf16(), AVX-512): the same structure over voxel
// pairs, reading the pair arrays of runtime/kernels/bf16_kernel_gradient.hpp;
// each step is one vdpbf16ps (llvm.x86.avx512bf16.dpbf16ps.512) of 16 ci
// lanes of x pairs with a broadcast dz pair, in the Xbyak kernel's order:
// again bitwise the same dK. The target must have avx512bf16 (the caller
// checks the CPU).
#pragma once

#include <string>

#include <llvm/IR/Function.h>
#include <llvm/IR/Module.h>

#include "plan/kernel_gradient_plan.hpp"

namespace tconv3d::llvm_backend {

// Adds the kernel to `module` as an externally visible function `name`. The
// vectors have plan.lanes floats. Throws tconv3d::Error for a plan whose
// register tile is empty, or a bf16 plan that is not AVX-512 with 16 lanes.
llvm::Function* emit_kernel_gradient_kernel(llvm::Module& module, const codegen::KernelGradientPlan& plan,
                                            const std::string& name);

// The IR type of codegen::KernelGradientArgs (same field order and offsets).
llvm::StructType* kernel_gradient_args_type(llvm::LLVMContext& context);

}  // namespace tconv3d::llvm_backend
