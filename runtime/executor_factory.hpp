// Picks and builds the executor for a problem: the one place that knows which
// backends exist in this build.
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "runtime/executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// weights: the layer's (a code-generating backend packs them there, once per
// layout). Throws tconv3d::Error when the requested backend or ISA cannot
// serve here.
// The backend --backend auto runs for a resolved ISA: the JIT (Xbyak), else
// LLVM as the fallback that still generates code, else the generic kernel.
// The forward and the backward pass pick alike.
Backend automatic_backend(Isa isa);

std::unique_ptr<Executor> make_executor(const Problem& problem, WeightStore& weights, const LayerOptions& options);

}  // namespace tconv3d
