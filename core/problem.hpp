// What a backend computes: geometry, bias, and the elementwise part of the
// activation fused into the store. Axis activations (softmax, glu...) run as
// a separate pass over the finished output.
#pragma once

#include "tconv3d/config.hpp"
#include "tconv3d/geometry.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

struct Problem {
  ConvGeometry geometry;
  bool has_bias = true;
  Activation fused_activation;  // elementwise or linear
  DataType dtype = DataType::kFloat32;  // of input, output and weights (bf16: float32 accumulation)
};

// The problem of a layer: its activation is fused when it is elementwise;
// an axis activation is left to the pass over the finished output.
inline Problem make_problem(const ConvGeometry& geometry, bool has_bias, const Activation& activation) {
  Problem problem;
  problem.geometry = geometry;
  problem.has_bias = has_bias;
  if (activation.is_elementwise()) problem.fused_activation = activation;
  return problem;
}

}  // namespace tconv3d
