// The generic microkernels for AVX-512 F/VL (32 vector registers): up to 24
// accumulators. The voxel count stays at 12 or less so the 12 input-row
// pointers, the weight pointer and the channel index fit in the 15 usable
// general-purpose registers. Built with -mavx512f -mavx512vl ... (CMakeLists.txt);
// only called after cpu_features() says the CPU has AVX-512.
#include "runtime/kernels/generic_microkernel_impl.hpp"

namespace tconv3d::generic {

extern const MicroKernel kAvx512MicroKernels[] = {
    entry<Vec16, 1, 12>(), entry<Vec16, 2, 12>(), entry<Vec16, 3, 8>(), entry<Vec16, 4, 6>(),
    entry<Vec8, 1, 12>(),  entry<Vec8, 2, 12>(),  entry<Vec8, 3, 8>(),  entry<Vec8, 4, 6>(),
    entry<Vec4, 1, 12>(),  entry<Vec4, 2, 12>(),  entry<Vec4, 3, 8>(),  entry<Vec4, 4, 6>(),
    MicroKernel{},
};

}  // namespace tconv3d::generic
