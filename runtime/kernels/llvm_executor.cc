#include "runtime/kernels/llvm_executor.hpp"

#ifdef TCONV3D_HAVE_LLVM

#include "emit/llvm/llvm_backend.hpp"
#include "plan/kernel_name.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/kernels/row_executor.hpp"

namespace tconv3d {

std::unique_ptr<Executor> make_llvm_executor(const Problem& problem, const float* kernel, const float* bias, Isa isa) {
  codegen::KernelPlan plan = codegen::plan_for_backend(problem, isa, Backend::kLlvm);
  const std::string name = codegen::kernel_name(plan) + "__llvm";
  return make_row_executor(std::move(plan), kernel, bias, Backend::kLlvm, name, [](const codegen::KernelPlan& p) {
    return KernelCache::global().get_or_compile(llvm_backend::llvm_kernel_key(p),
                                                [&p] { return llvm_backend::compile_row_kernel(p); });
  });
}

}  // namespace tconv3d

#endif  // TCONV3D_HAVE_LLVM
