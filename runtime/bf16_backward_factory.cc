// The bf16 backward executors. dx and dK run the float32 backward kernels on
// data widened from bf16 (exact: every bf16 value is a float32 value, and a
// product of two bf16 values is exact in float32), over the bf16-rounded
// kernel, so the sums are what the bf16 kernels' float32 accumulation
// computes, in another order; dx is rounded to bf16 once at the end.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/cpu_features.hpp"
#include "runtime/backward_factory.hpp"
#include "runtime/bf16_backward_executor.hpp"
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

class WidenedBf16BackwardExecutor final : public Bf16BackwardExecutor {
 public:
  WidenedBf16BackwardExecutor(const Problem& problem, std::shared_ptr<WeightStore> rounded,
                              std::unique_ptr<BackwardExecutor> f32)
      : geometry_(problem.geometry), rounded_(std::move(rounded)), f32_(std::move(f32)) {}

  void input_gradient(const uint16_t* dz, uint16_t* dx, int threads) const override {
    threads = threads > 0 ? threads : omp_get_max_threads();
    std::vector<float> dz_f(static_cast<size_t>(geometry_.output_elements()));
    std::vector<float> dx_f(static_cast<size_t>(geometry_.input_elements()));
    widen(dz, dz_f.data(), int64_t(dz_f.size()), threads);
    f32_->input_gradient(dz_f.data(), dx_f.data(), threads);
    narrow(dx_f.data(), dx, int64_t(dx_f.size()), threads);
  }
  void kernel_gradient(const uint16_t* x, const uint16_t* dz, float* dk, int threads) const override {
    threads = threads > 0 ? threads : omp_get_max_threads();
    std::vector<float> x_f(static_cast<size_t>(geometry_.input_elements()));
    std::vector<float> dz_f(static_cast<size_t>(geometry_.output_elements()));
    widen(x, x_f.data(), int64_t(x_f.size()), threads);
    widen(dz, dz_f.data(), int64_t(dz_f.size()), threads);
    f32_->kernel_gradient(x_f.data(), dz_f.data(), dk, threads);
  }
  std::string input_gradient_kernel_name() const override {
    return "bf16_widened_" + f32_->input_gradient_kernel_name();
  }
  std::string kernel_gradient_kernel_name() const override {
    return "bf16_widened_" + f32_->kernel_gradient_kernel_name();
  }

 private:
  ConvGeometry geometry_;
  std::shared_ptr<WeightStore> rounded_;  // the bf16-rounded kernel the float32 executor packed
  std::unique_ptr<BackwardExecutor> f32_;
};

}  // namespace

std::unique_ptr<Bf16BackwardExecutor> make_bf16_backward_executor(const Problem& problem, const WeightStore& weights,
                                                                  const LayerOptions& options) {
  LayerOptions f32_options = options;
  f32_options.dtype = DataType::kFloat32;
  switch (options.backend) {
    case Backend::kReference: break;
    case Backend::kAuto:
    case Backend::kXbyak: {
      const Isa isa = resolve_isa(options.isa);
      const CpuFeatures cpu = cpu_features();
      if (!cpu.avx512_bf16)
        throw Error("dtype", "the bf16 backward needs avx512_bf16 (vdpbf16ps), which this CPU" +
                                 std::string(cpu.avx512 ? "" : " (or OS)") +
                                 " lacks or TCONV3D_CPU_MASK hides; run float32, or --backend reference for bf16");
      if (isa != Isa::kAvx512)
        throw Error("isa", "bf16 kernels are AVX-512 code, but isa " + to_string(isa) + " was requested");
      f32_options.backend = Backend::kXbyak;
      f32_options.isa = Isa::kAvx512;
      break;
    }
    case Backend::kGeneric:
    case Backend::kLlvm:
      throw Error("backend", "the bf16 backward is not supported by the " + to_string(options.backend) +
                                 " backend (it runs on xbyak, or reference)");
  }
  // The kernel as Keras computes with it: cast to bf16 (nearest even).
  std::vector<float> rounded(weights.kernel());
  for (float& w : rounded) w = round_to_bf16(w);
  auto store = std::make_shared<WeightStore>(std::move(rounded), std::vector<float>{});
  Problem f32_problem = problem;
  f32_problem.dtype = DataType::kFloat32;
  f32_problem.has_bias = false;  // the backward kernels never read the bias
  auto f32 = make_backward_executor(f32_problem, *store, f32_options);
  return std::make_unique<WidenedBf16BackwardExecutor>(problem, std::move(store), std::move(f32));
}

}  // namespace tconv3d
