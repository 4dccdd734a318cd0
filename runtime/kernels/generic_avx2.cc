// The generic microkernels for AVX2 + FMA (16 ymm registers): at most 12
// accumulators, leaving room for the weight vectors and one broadcast.
// Built with -mavx2 -mfma -ffp-contract=fast (CMakeLists.txt); only called
// after cpu_features() says the CPU has AVX2 + FMA.
#include "runtime/kernels/generic_microkernel_impl.hpp"

namespace tconv3d::generic {

extern const MicroKernel kAvx2MicroKernels[] = {
    entry<Vec8, 1, 12>(), entry<Vec8, 2, 6>(), entry<Vec8, 3, 4>(),
    entry<Vec4, 1, 12>(), entry<Vec4, 2, 6>(), entry<Vec4, 3, 4>(),
    MicroKernel{},
};

}  // namespace tconv3d::generic
