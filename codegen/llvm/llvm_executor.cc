// The LLVM backend's executor: the shared row executor
// (runtime/kernels/row_executor.hpp) with the row kernels compiled by LLVM.
// The plan takes only the features the IR emitter implements: the baseline
// plus lane packing of W phases.
#include "codegen/kernel_name.hpp"
#include "codegen/llvm/llvm_backend.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/kernels/row_executor.hpp"

namespace tconv3d::llvm_backend {

std::unique_ptr<Executor> make_llvm_executor(const Problem& problem, const float* kernel, const float* bias, Isa isa) {
  codegen::PlanOptions options = codegen::PlanOptions::baseline();
  options.pack_w_phases = true;
  codegen::KernelPlan plan = codegen::make_plan(problem, isa, options);
  const std::string name = codegen::kernel_name(plan) + "__llvm";
  return make_row_executor(std::move(plan), kernel, bias, Backend::kLlvm, name, [](const codegen::KernelPlan& p) {
    return KernelCache::global().get_or_compile(llvm_kernel_key(p), [&p] { return compile_row_kernel(p); });
  });
}

}  // namespace tconv3d::llvm_backend
