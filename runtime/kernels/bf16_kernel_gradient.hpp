// The bf16 kernel gradient (dK) of the Xbyak and LLVM backends: the bf16 variant of
// the kernel-gradient plan (plan/kernel_gradient_plan.hpp: W steps are voxel
// pairs, reduced by vdpbf16ps), its kernel from the kernel cache, and the
// per-call repack of x and dz into the voxel-pair arrays the kernel reads.
//
//   dK[a, co, ci] = sum over n, i of x[n, i, ci] * dz[n, o, co]   (float32 accumulation)
//
// Threads split dK as the float32 GeneratedKernelGradient does
// (kernel_gradient_pieces.hpp), so the result is bitwise identical for any
// thread count. The sums differ from the float32 kernel on widened data
// only in order (two terms per vdpbf16ps) and in vdpbf16ps's handling of
// denormals (flushed to zero). Non-finite inputs: a pair's zero partner (odd
// W, a tap valid for one voxel of the pair) is multiplied with the other
// operand's value, so an infinite x or dz there makes NaN where the
// reference, which skips that term, may give a finite or infinite sum.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/problem.hpp"
#include "plan/kernel_gradient_plan.hpp"
#include "runtime/exec_memory.hpp"

namespace tconv3d {

class Bf16KernelGradient {
 public:
  // backend: kXbyak or kLlvm (the same plan, bitwise the same dK), which
  // this build must have; the caller checks AVX512_BF16. The LLVM kernel's
  // name ends in "__llvm".
  explicit Bf16KernelGradient(const Problem& problem, Backend backend = Backend::kXbyak);

  // x, dz: dense channels_last bf16 bits. dk: overwritten, Keras layout
  // (kd, kh, kw, filters, in_channels), float32. threads <= 0: OpenMP's default.
  // Safe to call concurrently (a caller that finds the scratch taken uses its own).
  void run(const uint16_t* x, const uint16_t* dz, float* dk, int threads) const;

  std::string kernel_name() const { return name_; }
  const codegen::KernelGradientPlan& plan() const { return plan_; }

  // run()'s two stages, public for measurements (tconv3d_dk_bf16_bench):
  // the repack into pair arrays of x_pair_elements() and dz_pair_elements()
  // 32-bit values, then the kernel over them.
  int64_t x_pair_elements() const { return plan_.x_row_bytes() / 4 * x_rows_; }
  int64_t dz_pair_elements() const { return plan_.dz_row_bytes() / 4 * dz_rows_; }
  void repack(const uint16_t* x, const uint16_t* dz, uint32_t* xp, uint32_t* dzp, int threads) const;
  void compute(const uint32_t* xp, const uint32_t* dzp, float* dk, int threads) const;

 private:
  codegen::KernelGradientPlan plan_;
  std::string name_;
  std::shared_ptr<const ExecutableCode> code_;
  codegen::KernelGradientFunction kernel_ = nullptr;
  std::vector<std::vector<int64_t>> pairs_;  // per (kd, kh), offsets into the pair arrays
  int64_t x_rows_ = 0, dz_rows_ = 0;         // rows of the pair arrays
  mutable std::mutex scratch_mutex_;         // guards the two below
  mutable std::unique_ptr<uint32_t[]> x_scratch_, dz_scratch_;
};

}  // namespace tconv3d
