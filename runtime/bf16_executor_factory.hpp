// The executor of a bf16 problem (Problem::dtype bf16): the vdpbf16ps kernel
// (Xbyak's or LLVM's, from the same plan) on a CPU with AVX512_BF16, or the
// bf16 reference. Every other
// backend or CPU, or an axis activation, gets a tconv3d::Error saying what
// is missing.
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "runtime/executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

std::unique_ptr<Executor> make_bf16_executor(const Problem& problem, WeightStore& weights, const LayerOptions& options);

}  // namespace tconv3d
