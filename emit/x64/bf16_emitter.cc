#include "emit/x64/bf16_emitter.hpp"

#include "emit/x64/tconv_emitter.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::x64 {

CompiledCode emit_bf16_kernel(const codegen::KernelPlan& plan) {
  if (!plan.bf16() || plan.isa != Isa::kAvx512 || plan.vector_registers != 32 || (plan.lanes != 16 && plan.lanes != 8))
    throw Error("dtype", "the bf16 emitter needs a bf16 plan for avx512 (16 or 8 lanes)");
  return emit_tconv_template_kernel(plan);
}

}  // namespace tconv3d::x64
