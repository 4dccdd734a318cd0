// The generic backward kernels for the x86-64 baseline (SSE2), built with the library's own flags.
#define TCONV3D_BACKWARD_NS backward_sse2
#include "runtime/kernels/generic_backward_impl.hpp"

namespace tconv3d::generic {

void backward_sse2_input_gradient(const ConvGeometry& g, const float* kernel, const float* dz, float* dx, int threads) {
  backward_sse2::input_gradient(g, kernel, dz, dx, threads);
}
void backward_sse2_kernel_gradient(const ConvGeometry& g, const float* x, const float* dz, float* dk, int threads) {
  backward_sse2::kernel_gradient(g, x, dz, dk, threads);
}

}  // namespace tconv3d::generic
