// The Xbyak backend's executor: the plan, the packed weights, the generated
// code (from the kernel cache) and the row list each call reads. Threads
// split the output rows (n, od, oh) into contiguous chunks of equal tap cost;
// every row is computed by the same code in the same order whatever the
// thread count, so results are bitwise identical for any number of threads.
#pragma once

#include <memory>

#include "tconv3d/layer.hpp"

namespace tconv3d {

#ifdef TCONV3D_HAVE_XBYAK
// kernel: Keras layout (kd, kh, kw, filters, in_channels); bias: (filters,) or
// null. isa: kAvx2 or kAvx512, already checked against the CPU.
std::unique_ptr<Executor> make_jit_executor(const Problem& problem, const float* kernel, const float* bias,
                                            Isa isa);
#endif

}  // namespace tconv3d
