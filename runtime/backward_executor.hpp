// What runs a layer's backward pass: one backend's kernels for the two
// products of the gradient, with the weights already packed for them.
//
// Both take dense channels_last arrays whatever the layer's data format (the
// layer transposes around them) and the gradient with respect to the
// pre-activation output, dz = dy * act'(z), which the layer computes (fused
// with the bias gradient) before calling them:
//   dx[n, i, ci]    = sum over a, co with o = i*stride + a*dilation - crop_begin
//                     (per axis, o inside the output) of dz[n, o, co] * K[a, co, ci]
//   dK[a, co, ci]   = sum over n, i, o as above of x[n, i, ci] * dz[n, o, co]
// dK is in Keras layout (kd, kh, kw, filters, in_channels). Each result is
// bitwise identical for any thread count: every element is reduced by one
// thread in a fixed order.
#pragma once

#include <string>

#include "tconv3d/options.hpp"

namespace tconv3d {

class BackwardExecutor {
 public:
  virtual ~BackwardExecutor() = default;
  // dz: output_shape (pre-activation channels), channels_last. dx: input_shape, channels_last.
  virtual void input_gradient(const float* dz, float* dx, int threads) const = 0;
  // x: input, dz: as above, both channels_last. dk: overwritten, Keras layout.
  virtual void kernel_gradient(const float* x, const float* dz, float* dk, int threads) const = 0;
  virtual Backend backend() const = 0;
  virtual std::string isa() const = 0;                        // "avx2", "avx512", "none"
  virtual std::string input_gradient_kernel_name() const = 0;  // what runs, for reports
  virtual std::string kernel_gradient_kernel_name() const = 0;
};

}  // namespace tconv3d
