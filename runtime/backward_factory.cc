#include "runtime/backward_factory.hpp"

#include "core/cpu_features.hpp"
#include "runtime/executor_factory.hpp"
#include "runtime/kernels/generated_backward.hpp"
#include "runtime/kernels/generic_backward.hpp"
#include "runtime/kernels/reference_backward.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

std::unique_ptr<BackwardExecutor> make_backward_executor(const Problem& problem, WeightStore& weights,
                                                         const LayerOptions& options) {
  // Resolve (and so validate) the ISA even for the reference, as make_executor
  // does: a forced ISA the CPU lacks is an error whatever runs.
  const Isa isa = resolve_isa(options.isa);
  // The generic loops follow the resolved ISA (--isa avx2 gives their AVX2
  // code), and the SSE2 baseline where neither runs.
  const generic::GenericIsa generic_isa = isa == Isa::kAvx512 ? generic::GenericIsa::kAvx512
                                          : isa == Isa::kAvx2 ? generic::GenericIsa::kAvx2
                                                              : generic::GenericIsa::kSse2;
  const Backend backend = options.backend == Backend::kAuto ? automatic_backend(isa) : options.backend;
  switch (backend) {
    case Backend::kReference: return make_reference_backward_executor(problem, weights.kernel());
    case Backend::kAuto:
    case Backend::kGeneric: return make_generic_backward_executor(problem, weights.kernel().data(), generic_isa);
    case Backend::kXbyak:
    case Backend::kLlvm: return make_generated_backward_executor(problem, weights, backend, isa);
  }
  throw Error("backend", "unknown backend");
}

}  // namespace tconv3d
