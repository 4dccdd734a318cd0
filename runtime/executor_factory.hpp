// Picks and builds the executor for a problem: the one place that knows which
// backends exist in this build.
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "runtime/executor.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// kernel: Keras layout; bias: (filters,) or null. Throws tconv3d::Error when
// the requested backend or ISA cannot serve here.
std::unique_ptr<Executor> make_executor(const Problem& problem, const float* kernel, const float* bias,
                                        const LayerOptions& options);

}  // namespace tconv3d
