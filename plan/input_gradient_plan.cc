#include "plan/input_gradient_plan.hpp"

#include "plan/plan_blocking.hpp"

namespace tconv3d::codegen {
namespace {

// The layer's axis seen from the gradient's kernel: it reads dz (the layer's
// output) and writes dx (the layer's input).
AxisGeometry gradient_axis(const AxisGeometry& layer) {
  AxisGeometry ax = layer;
  ax.in = layer.out;
  ax.out = layer.in;
  return ax;
}

// One phase holding every tap: dx voxel j reads dz j*stride + a*dilation -
// crop_begin, i.e. first_q + j * input step - offset with first_q =
// -crop_begin and offset = -a*dilation.
AxisPhase gradient_phase(const AxisGeometry& ax) {
  AxisPhase p;
  p.residue = 0;
  p.first_out = 0;
  p.count = ax.out;
  p.first_q = -ax.crop_begin;
  for (int64_t a = 0; a < ax.kernel; ++a) p.taps.push_back({a, -a * ax.dilation});
  return p;
}

}  // namespace

KernelPlan make_input_gradient_plan(const Problem& problem, Isa isa) {
  KernelPlan plan = plan_skeleton(isa);
  const ConvGeometry& layer = problem.geometry;
  plan.pass = PlanPass::kInputGradient;
  plan.dtype = problem.dtype;  // bf16: the contraction steps are filter pairs
  ConvGeometry& g = plan.geometry;
  g.batch = layer.batch;
  g.in_channels = layer.out_channels;
  g.out_channels = layer.in_channels;
  for (int axis = 0; axis < 3; ++axis) g.axes[axis] = gradient_axis(layer.axes[axis]);
  g.data_format = DataFormat::kChannelsLast;  // the layer transposes around the backward kernels
  plan.has_bias = false;
  plan.activation = Activation{};  // linear: dz already holds the activation's derivative
  for (int axis = 0; axis < 3; ++axis) plan.phases[axis] = {gradient_phase(g.axes[axis])};
  finish_plan(plan);
  return plan;
}

}  // namespace tconv3d::codegen
