#include "runtime/executor_factory.hpp"

#include "runtime/cpu_features.hpp"
#include "runtime/kernels/generic.hpp"
#include "runtime/kernels/reference.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

std::unique_ptr<Executor> make_executor(const Problem& problem, const float* kernel, const float* bias,
                                        const LayerOptions& options) {
  // Resolve (and so validate) the ISA even for portable backends: a forced ISA
  // the CPU lacks is an error whatever runs.
  const Isa isa = resolve_isa(options.isa);
  (void)isa;
  switch (options.backend) {
    case Backend::kReference: {
      const ConvGeometry& g = problem.geometry;
      std::vector<float> k(kernel, kernel + g.kernel_elements());
      std::vector<float> b;
      if (bias) b.assign(bias, bias + g.out_channels);
      return make_reference_executor(problem, std::move(k), std::move(b));
    }
    case Backend::kAuto:
    case Backend::kGeneric: return make_generic_executor(problem, kernel, bias);
    case Backend::kXbyak:
      throw Error("backend", "xbyak is not available in this build");
    case Backend::kLlvm:
      throw Error("backend", "llvm is not available in this build");
  }
  throw Error("backend", "unknown backend");
}

}  // namespace tconv3d
