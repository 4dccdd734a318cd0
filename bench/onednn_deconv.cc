#include "bench/onednn_deconv.hpp"

#ifdef TCONV3D_HAVE_ONEDNN

namespace tconv3d::bench {

OneDnnDeconv::OneDnnDeconv(const ConvGeometry& g, const Activation& activation, const float* kernel,
                           const float* bias, int threads)
    : OneDnnForward(g, activation, kernel, bias, threads, dnnl::memory::data_type::f32) {}

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
