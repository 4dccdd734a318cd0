// The Xbyak backend's executor: the kernel plan (every feature the Xbyak
// emitter implements) and its row kernels from the kernel cache, run by the
// shared row executor (runtime/kernels/row_executor.hpp): rows split among
// threads in chunks of equal tap cost, results bitwise identical for any
// number of threads.
#pragma once

#include <memory>

#include "core/problem.hpp"
#include "runtime/executor.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

#ifdef TCONV3D_HAVE_XBYAK
// kernel: Keras layout (kd, kh, kw, filters, in_channels); bias: (filters,) or
// null. isa: kAvx2 or kAvx512, already checked against the CPU.
std::unique_ptr<Executor> make_jit_executor(const Problem& problem, const float* kernel, const float* bias,
                                            Isa isa);
#endif

}  // namespace tconv3d
