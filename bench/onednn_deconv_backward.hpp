// oneDNN's deconvolution_backward_data and deconvolution_backward_weights
// (with the bias gradient) on one layer, the gradients of the linear layer
// y = conv3d_transpose(x, K) + b, set up as a training loop would: f32, x,
// dy and dx in the layer's own layout (ndhwc / ncdhw), the kernel reordered
// once into the layout backward_data picks, and dK left in the layout
// backward_weights picks (an optimizer would update the weights there);
// kernel_gradient() reorders it into Keras's layout on request, outside what
// a benchmark times. Both primitive descriptors take a forward_training one
// as their hint, made by the same mapping as the forward benchmark
// (onednn_problem.hpp). Only in builds with oneDNN.
#pragma once

#ifdef TCONV3D_HAVE_ONEDNN

#include <memory>
#include <string>

#include "tconv3d/geometry.hpp"

namespace tconv3d::bench {

class OneDnnDeconvBackward {
 public:
  // kernel: Keras layout (kd, kh, kw, filters, in_channels). with_bias: also
  // compute db. `threads` is fixed here, as for OneDnnDeconv. Throws
  // std::runtime_error saying why when oneDNN rejects the layer or threads < 1.
  OneDnnDeconvBackward(const ConvGeometry& geometry, const float* kernel, bool with_bias, int threads);
  ~OneDnnDeconvBackward();

  // dx (input shape) and db (filters; ignored without bias) from x and dy,
  // both in the layer's data format; dK stays inside, in oneDNN's layout.
  void run(const float* x, const float* dy, float* dx, float* db) const;
  // The last run's dK in Keras layout (kd, kh, kw, filters, in_channels).
  void kernel_gradient(float* dk) const;

  int threads() const;
  std::string data_impl() const;     // backward_data's implementation, e.g. jit:avx512_core
  std::string weights_impl() const;  // backward_weights's
  // Where the weights / their gradient are not in Keras's plain layout, for
  // the report ("reordered once, outside the timed region").
  bool weights_reordered() const;
  bool kernel_gradient_reordered() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace tconv3d::bench

#endif  // TCONV3D_HAVE_ONEDNN
