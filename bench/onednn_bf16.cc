#include "bench/onednn_bf16.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

namespace tconv3d::bench {

// The weights reorder converts the float32 kernel to bf16 (round to nearest
// even, as tconv3d and Keras do).
OneDnnDeconvBf16::OneDnnDeconvBf16(const ConvGeometry& g, const Activation& activation, const float* kernel,
                                   const float* bias, int threads)
    : OneDnnForward(g, activation, kernel, bias, threads, dnnl::memory::data_type::bf16) {}

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
