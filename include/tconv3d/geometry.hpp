// Convention-neutral geometry of a 3-D transposed convolution: per axis, the
// input size, kernel, stride, dilation, how many leading outputs of the full
// transposed result are cropped, and the output size. Keras's padding and
// output_padding, ONNX pads and PyTorch padding all map onto this.
//
//   y[o] = sum over i, a with o = i*stride + a*dilation - crop_begin
//
// The full (uncropped) output has (in-1)*stride + (kernel-1)*dilation + 1
// samples; crop_end = full - crop_begin - out may be negative (extra samples
// that receive no contribution and hold only bias + activation).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/export.h"

namespace tconv3d {

struct AxisGeometry {
  int64_t in = 0;
  int64_t kernel = 0;
  int64_t stride = 1;
  int64_t dilation = 1;
  int64_t crop_begin = 0;
  int64_t out = 0;

  int64_t effective_kernel() const { return (kernel - 1) * dilation + 1; }
  int64_t full_out() const { return (in - 1) * stride + effective_kernel(); }
  int64_t crop_end() const { return full_out() - crop_begin - out; }
  // Spelled out: the public headers are C++17, which has no defaulted ==.
  bool operator==(const AxisGeometry& o) const {
    return in == o.in && kernel == o.kernel && stride == o.stride && dilation == o.dilation &&
           crop_begin == o.crop_begin && out == o.out;
  }
  bool operator!=(const AxisGeometry& o) const { return !(*this == o); }
};

struct TCONV3D_API ConvGeometry {
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;       // filters
  std::array<AxisGeometry, 3> axes;  // D, H, W
  DataFormat data_format = DataFormat::kChannelsLast;

  Shape5 input_shape() const;   // in the data format's order
  Shape5 output_shape() const;  // pre-activation output, data format's order
  int64_t input_elements() const;
  int64_t output_elements() const;
  int64_t kernel_elements() const;  // kd*kh*kw*filters*in_channels
  // 2*N*D*H*W*Cin*filters*kd*kh*kw over the input, as the benchmarks count it.
  double flops() const;
  // The products that land inside the output (the cropped border excluded):
  // the FMAs an output-stationary kernel must do, so the share of the FMA
  // peak is taken from these. Same as flops() for valid padding.
  double useful_flops() const;
  bool operator==(const ConvGeometry& o) const {
    return batch == o.batch && in_channels == o.in_channels && out_channels == o.out_channels &&
           axes == o.axes && data_format == o.data_format;
  }
  bool operator!=(const ConvGeometry& o) const { return !(*this == o); }
};

// Keras's output length for one axis (keras_semantics.md §2); `dilation` is the
// one the flavor honours (tf.keras 2.x passes 1).
TCONV3D_API int64_t keras_output_length(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                                        Padding padding, std::optional<int64_t> output_padding);
// The left crop P of §3.3.
TCONV3D_API int64_t keras_crop_begin(int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                                     std::optional<int64_t> output_padding);

// Resolves a validated config against an input shape (in the config's data
// format). Checks rank, channel count, positive sizes, element-count overflow
// and the flavor's own errors; throws tconv3d::Error naming what is wrong.
// Warnings (a dilation tf.keras 2.x ignores) go to `warnings`.
TCONV3D_API ConvGeometry resolve_geometry(const LayerConfig& config, const std::vector<int64_t>& input_shape,
                                          std::vector<std::string>* warnings = nullptr);

// Checks a geometry built by hand (ONNX/PyTorch conventions): positive sizes,
// crops that leave every output inside range, no overflow.
TCONV3D_API void validate_geometry(const ConvGeometry& geometry);

// The final output shape after the activation: GLU halves the last axis.
TCONV3D_API Shape5 activated_output_shape(const ConvGeometry& geometry, const Activation& activation);

TCONV3D_API std::string shape_to_string(const std::vector<int64_t>& shape);
TCONV3D_API std::string shape_to_string(const Shape5& shape);

}  // namespace tconv3d
