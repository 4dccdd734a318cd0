// The generic kernel: portable C++ (no JIT) for every valid layer. Polyphase
// gather (one dense sub-convolution per stride phase, no zero insertion),
// weights packed once per phase, register tiles of voxels x channel vectors
// compiled for SSE2, AVX2+FMA and AVX-512 and picked at run time, OpenMP
// threads over tiles, bias and elementwise activation fused into the store.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "core/problem.hpp"
#include "runtime/executor.hpp"
#include "runtime/kernels/generic_microkernel.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// kernel: Keras layout (kd, kh, kw, filters, in_channels). Uses the widest
// instruction set the CPU runs, limited by TCONV3D_ISA when it is set.
std::unique_ptr<Executor> make_generic_executor(const Problem& problem, const float* kernel,
                                                const float* bias);

// Same with the instruction set forced (tests run each one the CPU has);
// throws tconv3d::Error when this CPU cannot run it.
std::unique_ptr<Executor> make_generic_executor_for(const Problem& problem, const float* kernel,
                                                    const float* bias, generic::GenericIsa isa);

// The widest generic instruction set this CPU runs.
generic::GenericIsa best_generic_isa();

}  // namespace tconv3d
