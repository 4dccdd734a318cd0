#include "runtime/backward_factory.hpp"

#include "core/cpu_features.hpp"
#include "runtime/kernels/generic_backward.hpp"
#include "runtime/kernels/reference_backward.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

std::unique_ptr<BackwardExecutor> make_backward_executor(const Problem& problem, WeightStore& weights,
                                                         const LayerOptions& options) {
  // Resolve (and so validate) the ISA even for portable kernels, as make_executor
  // does: a forced ISA the CPU lacks is an error whatever runs.
  static_cast<void>(resolve_isa(options.isa));
  switch (options.backend) {
    case Backend::kReference: return make_reference_backward_executor(problem, weights.kernel());
    case Backend::kAuto:
    case Backend::kGeneric:
    case Backend::kXbyak:
    case Backend::kLlvm:
      // TODO(lead): generated
      return make_generic_backward_executor(problem, weights.kernel().data());
  }
  throw Error("backend", "unknown backend");
}

}  // namespace tconv3d
