#include "plan/bf16_input_gradient_plan.hpp"

#include "plan/input_gradient_plan.hpp"
#include "plan/plan_blocking.hpp"

namespace tconv3d::codegen {

KernelPlan make_bf16_input_gradient_plan(const Problem& problem) {
  Problem f32 = problem;
  f32.dtype = DataType::kFloat32;
  KernelPlan plan = make_input_gradient_plan(f32, Isa::kAvx512);
  // The geometry and phases stay; the blocking is re-derived for bf16 (the
  // contraction steps are filter pairs, so the Cin unrolling and the weight
  // sizes differ). finish_plan appends the W segments: start them afresh.
  plan.dtype = DataType::kBfloat16;
  plan.w_segments.clear();
  finish_plan(plan);
  return plan;
}

}  // namespace tconv3d::codegen
