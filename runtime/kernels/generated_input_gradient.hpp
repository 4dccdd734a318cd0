// The input gradient of a layer, dx, by a code-generating backend (Xbyak or
// LLVM): the layer's input-gradient plan (plan/input_gradient_plan.hpp), its
// row kernel from the kernel cache (W^X, dumped and announced to perf under
// its tconv3d_dx_... name like every generated kernel, runtime/jit_observe.hpp),
// the weights packed once for it, and the shared row executor
// (runtime/kernels/row_executor.hpp): one call per dx row, rows split among
// OpenMP threads in chunks of equal tap cost, each row computed by one thread,
// so dx is bitwise identical for any thread count.
#pragma once

#include <memory>
#include <string>

#include "core/problem.hpp"
#include "plan/plan.hpp"
#include "runtime/executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

class GeneratedInputGradient {
 public:
  // kernel: Keras layout (kd, kh, kw, filters, in_channels), kernel_elements()
  // floats, copied. backend: kXbyak or kLlvm (as built); isa: kAuto (the best
  // the CPU runs, or TCONV3D_ISA), kAvx2 or kAvx512. Throws tconv3d::Error
  // naming the bad argument (a backend not built or generating no code, an
  // ISA the CPU lacks, no vector ISA at all).
  GeneratedInputGradient(const Problem& problem, const float* kernel, Backend backend, Isa isa);
  // The same, packing from (and caching the packing in) a layer's weights.
  GeneratedInputGradient(const Problem& problem, WeightStore& weights, Backend backend, Isa isa);
  ~GeneratedInputGradient();

  // dz: the gradient of the pre-activation output, the layer's output shape,
  // channels_last; dx: the layer's input shape, channels_last, overwritten.
  // threads <= 0: all the process may use.
  void run(const float* dz, float* dx, int threads) const;

  std::string kernel_name() const;  // "tconv3d_dx_..." (+ "__llvm", "_per_group")
  Backend backend() const;
  std::string isa() const;  // "avx2" or "avx512"
  const codegen::KernelPlan& plan() const { return plan_; }

 private:
  codegen::KernelPlan plan_;
  std::unique_ptr<Executor> rows_;
};

}  // namespace tconv3d
