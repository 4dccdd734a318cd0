#include "plan/bf16_input_gradient_plan.hpp"

#include "plan/input_gradient_plan.hpp"
#include "plan/plan_blocking.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::codegen {

KernelPlan make_bf16_input_gradient_plan(const Problem& problem) {
  Problem bf16 = problem;
  bf16.dtype = DataType::kBfloat16;
  return make_input_gradient_plan(bf16, Isa::kAvx512);  // vdpbf16ps needs AVX-512
}

KernelPlan bf16_input_gradient_plan_for_backend(const Problem& problem, Backend backend) {
  if (backend != Backend::kXbyak && backend != Backend::kLlvm)
    throw Error("backend", to_string(backend) + " runs no generated code and has no kernel plan");
  KernelPlan wide = make_bf16_input_gradient_plan(problem);
  if (backend != Backend::kXbyak) return wide;
  // The same plan in ymm vectors: only the lanes differ, finish_plan sizes the rest.
  KernelPlan narrow = wide;
  narrow.lanes = 8;
  finish_plan(narrow);
  return 8 * w_fma_halves(wide) >= 9 * w_fma_halves(narrow) ? narrow : wide;
}

}  // namespace tconv3d::codegen
