// The generic backward kernels: portable C++ (no JIT) for every valid layer,
// for Backend::kGeneric and wherever no generated backward kernel exists.
// Loops blocked for the cache with unit-stride inner loops over channels
// that the compiler vectorizes; OpenMP threads over independent outputs.
//
//   dx: one input row (n, id, ih) per work item; its W x in_channels
//       accumulators are summed over taps, filters and W in a fixed order.
//   dK: one (tap, block of filters) per work item; summed over batch and
//       voxels in a fixed order, row by row (a partial sum per input row, so
//       long reductions keep float accuracy).
// Every output element is reduced by one thread in an order that does not
// depend on the thread count, so results are bitwise identical for any.
#pragma once

#include <memory>
#include <optional>

#include "core/problem.hpp"
#include "runtime/backward_executor.hpp"
#include "runtime/kernels/generic_microkernel.hpp"

namespace tconv3d {

// The loops are compiled for SSE2, AVX2 + FMA and AVX-512 (like the forward
// generic kernel's microkernels); `isa` picks one (default: the widest this
// CPU runs). Results are bitwise identical for any thread count within one ISA.

// Arrays as in runtime/backward_executor.hpp (dense channels_last, Keras kernel layout).
// The caller guarantees the CPU runs `isa`.
void generic_input_gradient(const ConvGeometry& geometry, const float* kernel, const float* dz, float* dx,
                            int threads, std::optional<generic::GenericIsa> isa = std::nullopt);
void generic_kernel_gradient(const ConvGeometry& geometry, const float* x, const float* dz, float* dk, int threads,
                             std::optional<generic::GenericIsa> isa = std::nullopt);

// kernel: Keras layout (kd, kh, kw, filters, in_channels), copied. Throws
// tconv3d::Error when this CPU cannot run `isa`.
std::unique_ptr<BackwardExecutor> make_generic_backward_executor(
    const Problem& problem, const float* kernel, std::optional<generic::GenericIsa> isa = std::nullopt);

}  // namespace tconv3d
