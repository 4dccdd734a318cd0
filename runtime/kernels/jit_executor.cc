#include "runtime/kernels/jit_executor.hpp"

#ifdef TCONV3D_HAVE_XBYAK

#include "emit/x64/tconv_emitter.hpp"
#include "plan/kernel_name.hpp"
#include "plan/plan.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/kernels/row_executor.hpp"

namespace tconv3d {

std::unique_ptr<Executor> make_jit_executor(const Problem& problem, const float* kernel, const float* bias,
                                            Isa isa) {
  codegen::KernelPlan plan = codegen::plan_for_backend(problem, isa, Backend::kXbyak);
  const std::string name = codegen::kernel_name(plan);
  return make_row_executor(std::move(plan), kernel, bias, Backend::kXbyak, name, [](const codegen::KernelPlan& p) {
    return KernelCache::global().get_or_compile(p.cache_key(), [&p] { return x64::emit_tconv_kernel(p); });
  });
}

}  // namespace tconv3d

#endif  // TCONV3D_HAVE_XBYAK
