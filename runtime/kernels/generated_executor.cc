#include "runtime/kernels/generated_executor.hpp"

#include "plan/kernel_name.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/kernels/row_executor.hpp"
#ifdef TCONV3D_HAVE_XBYAK
#include "emit/x64/tconv_emitter.hpp"
#endif
#ifdef TCONV3D_HAVE_LLVM
#include "emit/llvm/llvm_backend.hpp"
#endif

namespace tconv3d {

const codegen::CodeBackend* code_backend(Backend backend) {
#ifdef TCONV3D_HAVE_XBYAK
  if (backend == Backend::kXbyak) return &x64::xbyak_code_backend();
#endif
#ifdef TCONV3D_HAVE_LLVM
  if (backend == Backend::kLlvm) return &llvm_backend::llvm_code_backend();
#endif
  (void)backend;
  return nullptr;
}

std::unique_ptr<Executor> make_generated_executor(const Problem& problem, WeightStore& weights, Isa isa,
                                                  const codegen::CodeBackend& backend) {
  codegen::KernelPlan plan = codegen::plan_for_backend(problem, isa, backend.id);
  const std::string name = codegen::kernel_name(plan) + backend.kernel_name_suffix;
  return make_row_executor(std::move(plan), weights, backend.id, name, [&backend](const codegen::KernelPlan& p) {
    return KernelCache::global().get_or_compile(backend.kernel_key(p),
                                                [&backend, &p] { return backend.compile_row_kernel(p); });
  });
}

}  // namespace tconv3d
