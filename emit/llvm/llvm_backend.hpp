// The LLVM backend's entry points, free of LLVM types: compile a plan's row
// kernel for this CPU (JIT); runtime/kernels/llvm_executor runs it. Kernels are
// flattened into position-independent bytes and go through the same
// KernelCache as the Xbyak kernels (W^X, dumps, perf names, LRU); the
// optional on-disk object cache (TCONV3D_CACHE_DIR) lets another process skip
// LLVM entirely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/compiled_code.hpp"
#include "plan/code_backend.hpp"
#include "plan/kernel_gradient_plan.hpp"
#include "plan/plan.hpp"

namespace tconv3d::llvm_backend {

// Bumped whenever the IR emitters change what they generate, so stale
// TCONV3D_CACHE_DIR entries are never used.
inline constexpr int kIrEmitterVersion = 4;  // 3: relu gives +0 below zero; 4: lane-packed NaN/Inf exact
// The same for the kernel-gradient (dK) emitter (ir_kernel_gradient.hpp).
inline constexpr int kIrKernelGradientVersion = 1;

// Process-wide counters of the on-disk object cache and of LLVM compiles.
struct LlvmStats {
  uint64_t compiles = 0;        // modules LLVM optimized and compiled
  uint64_t disk_hits = 0;       // objects loaded from TCONV3D_CACHE_DIR
  uint64_t disk_misses = 0;     // lookups with no usable entry
  uint64_t disk_corrupt = 0;    // entries rejected by the checksum/size check
  uint64_t disk_stores = 0;     // objects written
  double compile_seconds = 0;   // IR emission + optimization + code generation
};
LlvmStats llvm_stats();

// The kernel-cache key of a plan compiled by LLVM for this host: the target
// (LLVM version, triple, CPU name and features), the emitter version and the
// full plan key.
std::string llvm_kernel_key(const codegen::KernelPlan& plan);

// Compiles the plan's row kernel for this CPU (plan.isa picks the vector
// width; a bf16 plan gets the vdpbf16ps kernel of ir_bf16_kernel.hpp, which
// needs AVX512_BF16), or loads it from TCONV3D_CACHE_DIR. Throws tconv3d::Error.
CompiledCode compile_row_kernel(const codegen::KernelPlan& plan);

// The dK kernel of a kernel-gradient plan, float32 or bf16 (voxel pairs,
// vdpbf16ps: needs AVX512_BF16), the same computation in the same order as
// the Xbyak one (ir_kernel_gradient.hpp): its cache key on this host, and its
// code for this CPU, compiled or loaded from TCONV3D_CACHE_DIR, named
// kernel_gradient_name(plan) + "__llvm". Throws tconv3d::Error.
std::string llvm_kernel_gradient_key(const codegen::KernelGradientPlan& plan);
CompiledCode compile_kernel_gradient_kernel(const codegen::KernelGradientPlan& plan);

// The LLVM emitter as a code backend (JIT for this host).
const codegen::CodeBackend& llvm_code_backend();


}  // namespace tconv3d::llvm_backend
