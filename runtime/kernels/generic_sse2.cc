// The generic microkernels for baseline x86-64 (SSE2, 16 xmm registers, no FMA):
// tiles sized so accumulators, weights, the broadcast and a product fit in 16.
#include "runtime/kernels/generic_microkernel_impl.hpp"

namespace tconv3d::generic {

extern const MicroKernel kSse2MicroKernels[] = {
    entry<Vec4, 1, 8>(), entry<Vec4, 2, 4>(), entry<Vec4, 3, 3>(), MicroKernel{},
};

}  // namespace tconv3d::generic
