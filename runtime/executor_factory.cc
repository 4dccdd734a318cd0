#include "runtime/executor_factory.hpp"

#include "core/cpu_features.hpp"
#include "runtime/kernels/generic.hpp"
#include "runtime/kernels/jit_executor.hpp"
#include "runtime/kernels/llvm_executor.hpp"
#include "runtime/kernels/reference.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

std::unique_ptr<Executor> make_executor(const Problem& problem, const float* kernel, const float* bias,
                                        const LayerOptions& options) {
  // Resolve (and so validate) the ISA even for portable backends: a forced ISA
  // the CPU lacks is an error whatever runs.
  const Isa isa = resolve_isa(options.isa);
  (void)isa;
  Backend backend = options.backend;
  if (backend == Backend::kAuto) {
#ifdef TCONV3D_HAVE_XBYAK
    // The JIT wherever it can run; the portable kernel otherwise.
    backend = isa == Isa::kAvx2 || isa == Isa::kAvx512 ? Backend::kXbyak : Backend::kGeneric;
#elif defined(TCONV3D_HAVE_LLVM)
    // No Xbyak in this build: LLVM is the fallback that still generates code.
    backend = isa == Isa::kAvx2 || isa == Isa::kAvx512 ? Backend::kLlvm : Backend::kGeneric;
#else
    backend = Backend::kGeneric;
#endif
  }
  switch (backend) {
    case Backend::kReference: {
      const ConvGeometry& g = problem.geometry;
      std::vector<float> k(kernel, kernel + g.kernel_elements());
      std::vector<float> b;
      if (bias) b.assign(bias, bias + g.out_channels);
      return make_reference_executor(problem, std::move(k), std::move(b));
    }
    case Backend::kAuto:
    case Backend::kGeneric:
      // The generic kernel's microkernels follow the resolved ISA too (--isa avx2
      // gives its AVX2 code), and the SSE2 baseline where neither runs.
      return make_generic_executor_for(problem, kernel, bias,
                                       isa == Isa::kAvx512 ? generic::GenericIsa::kAvx512
                                       : isa == Isa::kAvx2 ? generic::GenericIsa::kAvx2
                                                           : generic::GenericIsa::kSse2);
    case Backend::kXbyak:
#ifdef TCONV3D_HAVE_XBYAK
      if (isa != Isa::kAvx2 && isa != Isa::kAvx512)
        throw Error("backend", "xbyak needs a CPU (and OS) with AVX2+FMA or AVX-512; this one has neither");
      return make_jit_executor(problem, kernel, bias, isa);
#else
      throw Error("backend", "xbyak is not available in this build");
#endif
    case Backend::kLlvm:
#ifdef TCONV3D_HAVE_LLVM
      if (isa != Isa::kAvx2 && isa != Isa::kAvx512)
        throw Error("backend", "llvm (JIT) needs an x86-64 CPU with AVX2+FMA or AVX-512; this one has neither");
      return make_llvm_executor(problem, kernel, bias, isa);
#else
      throw Error("backend", "llvm is not available in this build");
#endif
  }
  throw Error("backend", "unknown backend");
}

}  // namespace tconv3d
