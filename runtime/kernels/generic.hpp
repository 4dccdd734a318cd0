// The generic kernel: portable C++ (no JIT) for every valid layer. Polyphase
// gather (no zero insertion), weights packed once, OpenMP threads over output
// rows, bias and elementwise activation fused into the store.
#pragma once

#include <memory>
#include <vector>

#include "tconv3d/layer.hpp"

namespace tconv3d {

// kernel: Keras layout (kd, kh, kw, filters, in_channels).
std::unique_ptr<Executor> make_generic_executor(const Problem& problem, const float* kernel,
                                                const float* bias);

}  // namespace tconv3d
