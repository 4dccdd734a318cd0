#include "plan/bf16_input_gradient_plan.hpp"

#include "plan/input_gradient_plan.hpp"

namespace tconv3d::codegen {

KernelPlan make_bf16_input_gradient_plan(const Problem& problem) {
  Problem bf16 = problem;
  bf16.dtype = DataType::kBfloat16;
  return make_input_gradient_plan(bf16, Isa::kAvx512);  // vdpbf16ps needs AVX-512
}

}  // namespace tconv3d::codegen
