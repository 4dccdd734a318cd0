// oneDNN's bf16 deconvolution_forward on one layer, beside tconv3d's bf16
// layer (Keras mixed_bfloat16): bf16 src, weights and dst in the layer's own
// layout, f32 bias, f32 accumulation inside oneDNN, the activation as an
// eltwise post-op (or, with TCONV3D_BENCH_ONEDNN_NO_POSTOPS=1, a loop after
// oneDNN, as for float32). The float32 Keras kernel is rounded to bf16 and
// reordered once into the layout oneDNN picks. Same mapping as the float32
// forward (onednn_problem.hpp). Only in builds with oneDNN.
#pragma once

#ifdef TCONV3D_HAVE_ONEDNN

#include <cstdint>

#include "bench/onednn_problem.hpp"

namespace tconv3d::bench {

class OneDnnDeconvBf16 : private OneDnnForward {
 public:
  // kernel: float32, Keras layout (kd, kh, kw, filters, in_channels); bias
  // float32 or null. Threads fixed here, as for OneDnnDeconv. Throws
  // std::runtime_error saying why oneDNN cannot run the layer.
  OneDnnDeconvBf16(const ConvGeometry& geometry, const Activation& activation, const float* kernel,
                   const float* bias, int threads);

  // bf16 as raw bits (tconv3d/bfloat16.hpp), in the layer's data format.
  void run(const uint16_t* input, uint16_t* output) const { run_bf16(input, output); }
  using OneDnnForward::threads;
  using OneDnnForward::impl;  // e.g. jit:avx512_core_bf16, or ref:any where oneDNN has no fast path
  using OneDnnForward::weights_reordered;
};

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
