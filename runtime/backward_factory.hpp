// Picks and builds the backward executor for a problem: the one place that
// knows which backends have backward kernels in this build.
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "runtime/backward_executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// weights: the layer's. options.backend picks the kernels (kAuto as for the
// forward); a requested ISA the CPU lacks is an error here too. Throws
// tconv3d::Error when the requested backend cannot serve here.
std::unique_ptr<BackwardExecutor> make_backward_executor(const Problem& problem, WeightStore& weights,
                                                         const LayerOptions& options);

}  // namespace tconv3d
