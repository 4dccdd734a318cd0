// The bf16 backward executors.
//
// Xbyak and LLVM (the same plans, bitwise the same results): dx by the bf16
// row kernel (emit/x64/bf16_emitter.*, LLVM: emit/llvm/ir_bf16_kernel;
// vdpbf16ps over filter pairs, float32 accumulation, one bf16 rounding at the
// store) of the bf16 input-gradient plan, run by the shared row executor; dK
// by the bf16 variant of the dK kernel (runtime/kernels/bf16_kernel_gradient.hpp,
// LLVM: emit/llvm/ir_kernel_gradient; vdpbf16ps over voxel pairs of x and dz
// repacked per call, float32 accumulation). It replaced the float32 dK kernel
// on x and dz widened to float32, which moved twice the bytes and ran at half
// vdpbf16ps's rate.
// Reference: both products by the float32 reference loops (double
// accumulation) on widened data over the bf16-rounded kernel.
#include <omp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/cpu_features.hpp"
#include "plan/bf16_input_gradient_plan.hpp"
#include "plan/kernel_name.hpp"
#include "runtime/bf16_backward_executor.hpp"
#include "runtime/kernel_cache.hpp"
#include "runtime/kernels/generated_executor.hpp"
#include "runtime/kernels/bf16_kernel_gradient.hpp"
#include "runtime/kernels/reference_backward.hpp"
#include "runtime/kernels/row_executor.hpp"
#include "tconv3d/bfloat16.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

namespace {

void widen(const uint16_t* in, float* out, int64_t count, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (count > 65536)
  for (int64_t k = 0; k < count; ++k) out[k] = bf16_to_float(in[k]);
}

void narrow(const float* in, uint16_t* out, int64_t count, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (count > 65536)
  for (int64_t k = 0; k < count; ++k) out[k] = float_to_bf16(in[k]);
}

class ReferenceBf16Backward final : public Bf16BackwardExecutor {
 public:
  ReferenceBf16Backward(const Problem& problem, const std::vector<float>& kernel) : geometry_(problem.geometry) {
    // The kernel as Keras computes with it: cast to bf16 (nearest even).
    rounded_.reserve(kernel.size());
    for (float w : kernel) rounded_.push_back(round_to_bf16(w));
  }
  void input_gradient(const uint16_t* dz, uint16_t* dx, int threads) const override {
    threads = threads > 0 ? threads : omp_get_max_threads();
    std::vector<float> dz_f(static_cast<size_t>(geometry_.output_elements()));
    std::vector<float> dx_f(static_cast<size_t>(geometry_.input_elements()));
    widen(dz, dz_f.data(), int64_t(dz_f.size()), threads);
    reference_input_gradient(geometry_, rounded_.data(), dz_f.data(), dx_f.data());
    narrow(dx_f.data(), dx, int64_t(dx_f.size()), threads);
  }
  void kernel_gradient(const uint16_t* x, const uint16_t* dz, float* dk, int threads) const override {
    threads = threads > 0 ? threads : omp_get_max_threads();
    std::vector<float> x_f(static_cast<size_t>(geometry_.input_elements()));
    std::vector<float> dz_f(static_cast<size_t>(geometry_.output_elements()));
    widen(x, x_f.data(), int64_t(x_f.size()), threads);
    widen(dz, dz_f.data(), int64_t(dz_f.size()), threads);
    reference_kernel_gradient(geometry_, x_f.data(), dz_f.data(), dk);
  }
  std::string input_gradient_kernel_name() const override { return "reference_bf16_dx_f64_accumulate"; }
  std::string kernel_gradient_kernel_name() const override { return "reference_bf16_dk_f64_accumulate"; }

 private:
  ConvGeometry geometry_;
  std::vector<float> rounded_;
};

std::unique_ptr<Executor> make_bf16_dx_rows(const Problem& problem, WeightStore& weights, Backend backend) {
  const codegen::CodeBackend* generator = code_backend(backend);
  if (!generator)
    throw Error("backend",
                "the bf16 backward on " + to_string(backend) + " needs that backend, which this build lacks");
  codegen::KernelPlan plan = codegen::bf16_input_gradient_plan_for_backend(problem, backend);
  const std::string name = codegen::kernel_name(plan) + generator->kernel_name_suffix;
  return make_row_executor(std::move(plan), weights, backend, name, [generator](const codegen::KernelPlan& p) {
    return KernelCache::global().get_or_compile(generator->kernel_key(p),
                                                [generator, &p] { return generator->compile_row_kernel(p); });
  });
}

class GeneratedBf16Backward final : public Bf16BackwardExecutor {
 public:
  GeneratedBf16Backward(const Problem& problem, WeightStore& weights, Backend backend)
      : dx_(make_bf16_dx_rows(problem, weights, backend)), dk_(problem, backend) {}

  void input_gradient(const uint16_t* dz, uint16_t* dx, int threads) const override { dx_->run_bf16(dz, dx, threads); }
  void kernel_gradient(const uint16_t* x, const uint16_t* dz, float* dk, int threads) const override {
    dk_.run(x, dz, dk, threads);
  }
  std::string input_gradient_kernel_name() const override { return dx_->kernel_name(); }
  std::string kernel_gradient_kernel_name() const override { return dk_.kernel_name(); }

 private:
  std::unique_ptr<Executor> dx_;
  Bf16KernelGradient dk_;
};

}  // namespace

std::unique_ptr<Bf16BackwardExecutor> make_bf16_backward_executor(const Problem& problem, WeightStore& weights,
                                                                  const LayerOptions& options) {
  switch (options.backend) {
    case Backend::kReference: return std::make_unique<ReferenceBf16Backward>(problem, weights.kernel());
    case Backend::kAuto:
    case Backend::kXbyak:
    case Backend::kLlvm: break;
    case Backend::kGeneric:
      throw Error("backend", "the bf16 backward is not supported by the " + to_string(options.backend) +
                                 " backend (it runs on xbyak, llvm, or reference)");
  }
  // auto: Xbyak where built (no compile time), else LLVM, as the bf16 forward.
  const Backend backend = options.backend != Backend::kAuto ? options.backend
                          : code_backend(Backend::kXbyak) ? Backend::kXbyak
                                                          : Backend::kLlvm;
  if (!code_backend(backend))
    throw Error("backend", "the bf16 backward needs the xbyak or llvm backend, and this build lacks " +
                               std::string(options.backend == Backend::kAuto ? "both" : to_string(backend)));
  const Isa isa = resolve_isa(options.isa);
  const CpuFeatures cpu = cpu_features();
  if (!cpu.avx512_bf16)
    throw Error("dtype", "the bf16 backward needs avx512_bf16 (vdpbf16ps), which this CPU" +
                             std::string(cpu.avx512 ? "" : " (or OS)") +
                             " lacks or TCONV3D_CPU_MASK hides; run float32, or --backend reference for bf16");
  if (isa != Isa::kAvx512)
    throw Error("isa", "bf16 kernels are AVX-512 code, but isa " + to_string(isa) + " was requested");
  return std::make_unique<GeneratedBf16Backward>(problem, weights, backend);
}

}  // namespace tconv3d
