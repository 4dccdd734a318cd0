#include "runtime/executor_factory.hpp"

#include "core/cpu_features.hpp"
#include "plan/plan.hpp"
#include "runtime/bf16_executor_factory.hpp"
#include "runtime/kernels/generated_executor.hpp"
#include "runtime/kernels/generic.hpp"
#include "runtime/kernels/reference.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
Backend automatic_backend(Isa isa) {
  const bool vector_isa = isa == Isa::kAvx2 || isa == Isa::kAvx512;
  if (!vector_isa) return Backend::kGeneric;
  if (code_backend(Backend::kXbyak)) return Backend::kXbyak;
  if (code_backend(Backend::kLlvm)) return Backend::kLlvm;
  return Backend::kGeneric;
}

namespace {

// The ISA a generated forward kernel is made for: --isa auto lets the plan
// narrow it per layer (few filters run better in full ymm vectors than in
// half-empty zmm ones); a forced ISA, on the command line or in TCONV3D_ISA,
// is kept.
Isa generated_forward_isa(const Problem& problem, Isa requested, Isa resolved, Backend backend) {
  if (requested != Isa::kAuto || isa_set_by_environment()) return resolved;
  return codegen::automatic_forward_isa(problem, resolved, backend);
}

}  // namespace

std::unique_ptr<Executor> make_executor(const Problem& problem, WeightStore& weights, const LayerOptions& options) {
  if (problem.dtype == DataType::kBfloat16) return make_bf16_executor(problem, weights, options);
  // Resolve (and so validate) the ISA even for portable backends: a forced ISA
  // the CPU lacks is an error whatever runs.
  const Isa isa = resolve_isa(options.isa);
  const Backend backend = options.backend == Backend::kAuto ? automatic_backend(isa) : options.backend;
  switch (backend) {
    case Backend::kReference:
      return make_reference_executor(problem, weights.kernel(),
                                     problem.has_bias ? weights.bias() : std::vector<float>{});
    case Backend::kAuto:
    case Backend::kGeneric:
      // The generic kernel's microkernels follow the resolved ISA too (--isa avx2
      // gives its AVX2 code), and the SSE2 baseline where neither runs.
      return make_generic_executor_for(problem, weights.kernel().data(),
                                       problem.has_bias ? weights.bias_or_null() : nullptr,
                                       isa == Isa::kAvx512 ? generic::GenericIsa::kAvx512
                                       : isa == Isa::kAvx2 ? generic::GenericIsa::kAvx2
                                                           : generic::GenericIsa::kSse2);
    case Backend::kXbyak:
    case Backend::kLlvm: {
      const codegen::CodeBackend* generator = code_backend(backend);
      if (!generator) throw Error("backend", to_string(backend) + " is not available in this build");
      if (isa != Isa::kAvx2 && isa != Isa::kAvx512)
        throw Error("backend", to_string(backend) +
                                   " needs a CPU (and OS) with AVX2+FMA or AVX-512; this one has neither");
      return make_generated_executor(problem, weights, generated_forward_isa(problem, options.isa, isa, backend), *generator);
    }
  }
  throw Error("backend", "unknown backend");
}

}  // namespace tconv3d
