#include "runtime/bf16_executor_factory.hpp"

#include "core/cpu_features.hpp"
#include "runtime/kernels/generated_executor.hpp"
#include "runtime/kernels/reference_bf16.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

std::unique_ptr<Executor> make_bf16_executor(const Problem& problem, WeightStore& weights,
                                             const LayerOptions& options) {
  if (!problem.fused_activation.is_elementwise())
    throw Error("activation", "bf16 layers take elementwise activations only, got " + problem.fused_activation.name);
  switch (options.backend) {
    case Backend::kReference:
      return make_reference_bf16_executor(problem, weights.kernel(),
                                          problem.has_bias ? weights.bias() : std::vector<float>{});
    case Backend::kAuto:
    case Backend::kXbyak:
    case Backend::kLlvm:
      break;
    case Backend::kGeneric:
      throw Error("backend", "bf16 is not supported by the " + to_string(options.backend) +
                                 " backend (bf16 runs on xbyak, llvm, or reference)");
  }
  // auto: Xbyak where built (no compile time), else LLVM.
  const Backend backend = options.backend != Backend::kAuto ? options.backend
                          : code_backend(Backend::kXbyak) ? Backend::kXbyak
                                                          : Backend::kLlvm;
  const codegen::CodeBackend* generator = code_backend(backend);
  if (!generator)
    throw Error("backend", "bf16 needs the xbyak or llvm backend, and this build lacks " +
                               std::string(options.backend == Backend::kAuto ? "both" : to_string(backend)));
  // Resolve (and so validate) a forced ISA first: avx2 cannot run bf16.
  const Isa isa = resolve_isa(options.isa);
  const CpuFeatures cpu = cpu_features();
  if (!cpu.avx512_bf16)
    throw Error("dtype", "bf16 needs avx512_bf16 (vdpbf16ps: AMD Zen 4/5, Intel Cooper Lake, Sapphire Rapids or "
                         "later), which this CPU" +
                             std::string(cpu.avx512 ? "" : " (or OS)") +
                             " lacks or TCONV3D_CPU_MASK hides; run float32, or --backend reference for bf16");
  if (isa != Isa::kAvx512)
    throw Error("isa", "bf16 kernels are AVX-512 code, but isa " + to_string(isa) + " was requested");
  return make_generated_executor(problem, weights, Isa::kAvx512, *generator);
}

}  // namespace tconv3d
