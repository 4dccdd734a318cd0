// Picks and builds the executor for a problem: the one place that knows which
// backends exist in this build.
#pragma once

#include <memory>

#include "tconv3d/layer.hpp"

namespace tconv3d {

// kernel: Keras layout; bias: (filters,) or null. Throws tconv3d::Error when
// the requested backend or ISA cannot serve here.
std::unique_ptr<Executor> make_executor(const Problem& problem, const float* kernel, const float* bias,
                                        const LayerOptions& options);

}  // namespace tconv3d
