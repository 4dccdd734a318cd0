// oneDNN's deconvolution_forward on one suite layer, set up the way a user
// would call it for a fair side-by-side: f32, the layer's own activation
// layout in and out (ndhwc for channels_last, ncdhw for channels_first),
// weights reordered once into the layout oneDNN picks (format_tag::any),
// bias, and the activation as an eltwise post-op. Only in builds with oneDNN.
#pragma once

#ifdef TCONV3D_HAVE_ONEDNN

#include "bench/onednn_problem.hpp"
#include "tconv3d/config.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d::bench {

class OneDnnDeconv : private OneDnnForward {
 public:
  // kernel: Keras layout (kd, kh, kw, filters, in_channels); bias may be null.
  // `threads` is fixed here, not per run: oneDNN's OpenMP build splits the work
  // for omp_get_max_threads() threads when the primitive is created and runs
  // that many whatever the caller's setting later (a "1 thread" primitive made
  // under 2 threads ran on 2). Throws std::runtime_error saying why when the
  // layer cannot be expressed (an activation with no eltwise post-op, a crop
  // oneDNN rejects...) or threads < 1.
  OneDnnDeconv(const ConvGeometry& geometry, const Activation& activation, const float* kernel,
               const float* bias, int threads);

  // Runs on the constructor's thread count; the caller's OpenMP setting is
  // left as it was.
  void run(const float* input, float* output) const { run_f32(input, output); }
  using OneDnnForward::threads;

  using OneDnnForward::impl;  // oneDNN's implementation name, e.g. jit:avx512_core
  bool uses_zmm() const { return onednn_isa_has_zmm(); }  // the CPU ISA oneDNN dispatches to has 512-bit vectors
};

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
