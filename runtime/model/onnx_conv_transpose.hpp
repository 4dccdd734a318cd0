// ONNX ConvTranspose attributes and how they map onto a ConvGeometry (the
// ONNX operator spec: output size, pads from auto_pad or output_shape).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model/onnx_proto.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d::model {

enum class OnnxAutoPad { kNotSet, kSameUpper, kSameLower, kValid };

struct OnnxConvTranspose {
  int64_t in_channels = 0, out_channels = 0;
  std::array<int64_t, 3> kernel{}, strides{1, 1, 1}, dilations{1, 1, 1}, output_padding{0, 0, 0};
  std::array<int64_t, 6> pads{};  // begin D, H, W, end D, H, W
  std::vector<int64_t> output_shape;  // spatial, or empty
  OnnxAutoPad auto_pad = OnnxAutoPad::kNotSet;

  std::string summary() const;
};

// Reads and checks the node's attributes against the weight shape
// (Cin, Cout/group, kd, kh, kw). Throws Error("attribute", ...).
OnnxConvTranspose read_conv_transpose(const OnnxNode& node, const std::vector<int64_t>& weight_dims);

// The geometry for an NCDHW input of `input_shape`.
ConvGeometry onnx_geometry(const OnnxConvTranspose& op, const std::vector<int64_t>& input_shape);

}  // namespace tconv3d::model
