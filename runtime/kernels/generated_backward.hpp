// The backward executor of the code-generating backends: the dx kernel from
// the input-gradient plan and the dK kernel from the kernel-gradient plan
// (generated_input_gradient.hpp, generated_kernel_gradient.hpp), each emitted
// by the layer's backend, Xbyak or LLVM.
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "runtime/backward_executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// backend: kXbyak or kLlvm, as built; isa: resolved, kAvx2 or kAvx512. The
// dx weights are packed in (and shared through) `weights`.
std::unique_ptr<BackwardExecutor> make_generated_backward_executor(const Problem& problem, WeightStore& weights,
                                                                   Backend backend, Isa isa);

}  // namespace tconv3d
