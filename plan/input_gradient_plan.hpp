// The plan of a layer's input gradient, dx: a strided forward convolution of
// dz (the gradient of the pre-activation output) with the layer's kernel,
//   dx[n, i, ci] = sum over taps a and filters co, with per axis
//                  o = i*stride + a*dilation - crop_begin inside the output,
//                  of dz[n, o, co] * K[a, co, ci].
// Each dx voxel gathers from dz: dense, no zeros to skip. It is a KernelPlan
// of pass kInputGradient (see plan/plan.hpp) for the same emitters and the
// same row kernel contract (core/kernel_args.hpp): one call per dx row
// (n, i_d, i_h), the dz rows (o_d, o_h) it reads as row taps, the W axis
// resolved at generation time with one phase, an input step of stride and
// every W tap; the weights packed transposed (weight_pack.hpp).
#pragma once

#include "core/problem.hpp"
#include "plan/plan.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d::codegen {

// isa must be kAvx2 or kAvx512. The problem's bias and activation do not
// enter. Both code backends (kXbyak, kLlvm) implement every feature such a
// plan uses. Throws tconv3d::Error for shapes the generated code cannot
// address.
KernelPlan make_input_gradient_plan(const Problem& problem, Isa isa);

}  // namespace tconv3d::codegen
