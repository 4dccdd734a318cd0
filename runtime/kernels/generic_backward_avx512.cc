// The generic backward kernels for AVX-512, built with -mavx512f... -ffp-contract=fast (CMakeLists.txt); only
// called after cpu_features() says the CPU has it.
#define TCONV3D_BACKWARD_NS backward_avx512
#include "runtime/kernels/generic_backward_impl.hpp"

namespace tconv3d::generic {

void backward_avx512_input_gradient(const ConvGeometry& g, const float* kernel, const float* dz, float* dx, int threads) {
  backward_avx512::input_gradient(g, kernel, dz, dx, threads);
}
void backward_avx512_kernel_gradient(const ConvGeometry& g, const float* x, const float* dz, float* dk, int threads) {
  backward_avx512::kernel_gradient(g, x, dz, dk, threads);
}

}  // namespace tconv3d::generic
