#include "runtime/kernels/generated_input_gradient.hpp"

#include <vector>

#include "core/cpu_features.hpp"
#include "plan/input_gradient_plan.hpp"
#include "plan/kernel_name.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/kernels/generated_executor.hpp"
#include "runtime/kernels/row_executor.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

const codegen::CodeBackend& generator_for(Backend backend) {
  if (backend != Backend::kXbyak && backend != Backend::kLlvm)
    throw Error("backend", "the generated input gradient needs the xbyak or llvm backend, got " + to_string(backend));
  const codegen::CodeBackend* generator = code_backend(backend);
  if (!generator) throw Error("backend", to_string(backend) + " is not available in this build");
  return *generator;
}

Isa vector_isa(Isa requested, Backend backend) {
  const Isa isa = resolve_isa(requested);  // throws for a forced ISA the CPU lacks
  if (isa != Isa::kAvx2 && isa != Isa::kAvx512)
    throw Error("isa", to_string(backend) + " needs a CPU (and OS) with AVX2+FMA or AVX-512; this one has neither");
  return isa;
}

// The backend is checked before the ISA, so a wrong backend is named as such.
codegen::KernelPlan plan_for(const Problem& problem, Backend backend, Isa isa) {
  generator_for(backend);
  return codegen::make_input_gradient_plan(problem, vector_isa(isa, backend));
}

std::unique_ptr<Executor> make_rows(const codegen::KernelPlan& plan, WeightStore& weights,
                                    const codegen::CodeBackend& generator) {
  const std::string name = codegen::kernel_name(plan) + generator.kernel_name_suffix;
  return make_row_executor(plan, weights, generator.id, name, [&generator](const codegen::KernelPlan& p) {
    return KernelCache::global().get_or_compile(generator.kernel_key(p),
                                                [&generator, &p] { return generator.compile_row_kernel(p); });
  });
}

}  // namespace

GeneratedInputGradient::GeneratedInputGradient(const Problem& problem, WeightStore& weights, Backend backend,
                                               Isa isa)
    : plan_(plan_for(problem, backend, isa)) {
  if (static_cast<int64_t>(weights.kernel().size()) != problem.geometry.kernel_elements())
    throw Error("kernel", "the weights hold " + std::to_string(weights.kernel().size()) + " floats, the layer's kernel " +
                              std::to_string(problem.geometry.kernel_elements()));
  rows_ = make_rows(plan_, weights, generator_for(backend));
}

GeneratedInputGradient::GeneratedInputGradient(const Problem& problem, const float* kernel, Backend backend, Isa isa)
    : plan_(plan_for(problem, backend, isa)) {
  if (!kernel) throw Error("kernel", "null kernel");
  WeightStore weights(std::vector<float>(kernel, kernel + problem.geometry.kernel_elements()), {});
  // The executor keeps the packed weights; the Keras-layout copy goes.
  rows_ = make_rows(plan_, weights, generator_for(backend));
}

GeneratedInputGradient::~GeneratedInputGradient() = default;

void GeneratedInputGradient::run(const float* dz, float* dx, int threads) const { rows_->run(dz, dx, threads); }

std::string GeneratedInputGradient::kernel_name() const { return rows_->kernel_name(); }
Backend GeneratedInputGradient::backend() const { return rows_->backend(); }
std::string GeneratedInputGradient::isa() const { return rows_->isa(); }

}  // namespace tconv3d
