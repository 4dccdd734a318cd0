// The reference kernel: naive loops written straight from the index formula of
// keras_semantics.md §4, accumulating in double. Obviously correct rather than
// fast; every other kernel is tested against it.
#pragma once

#include <memory>
#include <vector>

#include "core/problem.hpp"
#include "runtime/executor.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// kernel: Keras layout (kd, kh, kw, filters, in_channels); bias: (filters,) or
// null. Writes bias + fused elementwise activation, like every executor.
void reference_forward(const Problem& problem, const float* kernel, const float* bias,
                       const float* input, float* output);

std::unique_ptr<Executor> make_reference_executor(const Problem& problem,
                                                  std::vector<float> kernel,
                                                  std::vector<float> bias);

}  // namespace tconv3d
