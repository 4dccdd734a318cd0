// The LLVM backend's executor: the plan's row kernels compiled by LLVM
// (emit/llvm), run by the shared row executor.
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "runtime/executor.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

#ifdef TCONV3D_HAVE_LLVM
// kernel: Keras layout; bias: (filters,) or null. isa: kAvx2 or kAvx512
// (resolved and checked against the CPU).
std::unique_ptr<Executor> make_llvm_executor(const Problem& problem, const float* kernel, const float* bias, Isa isa);
#endif

}  // namespace tconv3d
