// The ahead-of-time object from LLVM: the plan's row kernel (internal), plus a
// whole-layer driver and helpers with a plain C ABI, compiled by the target's
// TargetMachine into a relocatable ELF object. Exported symbols (NAME is the
// caller's C identifier):
//   size_t NAME_workspace_size(void)      bytes of scratch NAME needs (0 for channels_last)
//   baked weights:  void NAME(const float* input, float* output, void* workspace)
//   runtime weights: void NAME(const float* input, float* output, const float* packed, void* workspace)
//                    size_t NAME_packed_size(void)   floats of `packed`
//                    void NAME_pack(const float* kernel, const float* bias, float* packed)
// The driver runs every output row on the calling thread, in the same order
// as the JIT executor; transcendental activations are expanded in IR, so the
// object needs no libm and no other library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "emit/llvm/llvm_target.hpp"
#include "plan/plan.hpp"

namespace tconv3d::llvm_backend {

struct AotModuleRequest {
  const codegen::KernelPlan* plan = nullptr;
  LlvmTarget target;
  std::string symbol;
  // Packed weights and bias (plan/weight_pack.hpp) to bake into read-only
  // data; empty: the object exports NAME_pack / NAME_packed_size instead.
  std::vector<float> packed_weights;
  std::vector<float> packed_bias;
  // Machine code of the row kernel(s) from the Xbyak emitter (same plan, same
  // KernelArgs ABI; one per channel group when plan->split_groups), embedded
  // verbatim in .text; empty: LLVM emits the kernels.
  std::vector<std::vector<uint8_t>> row_kernel_bytes;
};

// Object file bytes. Throws tconv3d::Error.
std::vector<uint8_t> build_aot_object(const AotModuleRequest& request);

}  // namespace tconv3d::llvm_backend
