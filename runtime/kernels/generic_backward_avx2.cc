// The generic backward kernels for AVX2 + FMA, built with -mavx2 -mfma -ffp-contract=fast (CMakeLists.txt); only
// called after cpu_features() says the CPU has them.
#define TCONV3D_BACKWARD_NS backward_avx2
#include "runtime/kernels/generic_backward_impl.hpp"

namespace tconv3d::generic {

void backward_avx2_input_gradient(const ConvGeometry& g, const float* kernel, const float* dz, float* dx, int threads) {
  backward_avx2::input_gradient(g, kernel, dz, dx, threads);
}
void backward_avx2_kernel_gradient(const ConvGeometry& g, const float* x, const float* dz, float* dk, int threads) {
  backward_avx2::kernel_gradient(g, x, dz, dk, threads);
}

}  // namespace tconv3d::generic
