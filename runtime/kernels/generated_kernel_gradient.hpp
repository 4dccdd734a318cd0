// The kernel gradient (dK) of a code-generating backend: the plan
// (plan/kernel_gradient_plan.hpp), its kernel from the kernel cache, and the
// per-(kd, kh) lists of (x row, dz row) pairs, run on a number of threads.
//
// Threads split dK, never a sum (kernel_gradient_pieces.hpp), so the result
// is bitwise identical for any thread count.
//
// Backend::kXbyak or kLlvm: both emit the kernel from the same plan, and for
// the same plan give bitwise the same dK.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/problem.hpp"
#include "plan/kernel_gradient_plan.hpp"
#include "runtime/exec_memory.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

class GeneratedKernelGradient {
 public:
  // isa: kAuto picks the best the CPU runs (resolve_isa); a forced ISA the
  // CPU lacks, a backend other than kXbyak or kLlvm, or one not built in
  // throws tconv3d::Error naming the argument.
  GeneratedKernelGradient(const Problem& problem, Backend backend, Isa isa);

  // x: the input, dz: the pre-activation output gradient, both dense
  // channels_last. dk: overwritten, Keras layout (kd, kh, kw, filters,
  // in_channels). threads <= 0: OpenMP's default.
  void run(const float* x, const float* dz, float* dk, int threads) const;

  std::string kernel_name() const { return name_; }
  const codegen::KernelGradientPlan& plan() const { return plan_; }

 private:
  void prefetch_rows(const float* x, const float* dz, const int64_t* pairs, int64_t count) const;

  codegen::KernelGradientPlan plan_;
  std::string name_;
  std::shared_ptr<const ExecutableCode> code_;
  codegen::KernelGradientFunction kernel_ = nullptr;
  std::vector<std::vector<int64_t>> pairs_;  // per (kd, kh)
  int64_t chunk_pairs_ = 1;                  // plan_.pairs_per_call
};

}  // namespace tconv3d
