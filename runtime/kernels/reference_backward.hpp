// The reference backward kernels: naive loops straight from the index formula
// (runtime/backward_executor.hpp), accumulating in double. Obviously correct
// rather than fast; every other backward kernel is tested against them.
//
// All arrays are dense channels_last whatever geometry.data_format says (the
// layer transposes around the executors); dz has the pre-activation output's
// shape; the kernel and dk are in Keras layout (kd, kh, kw, filters, in_channels).
#pragma once

#include <memory>
#include <vector>

#include "core/problem.hpp"
#include "runtime/backward_executor.hpp"

namespace tconv3d {

// dx[n, i, ci] = sum over taps and co of dz[n, o, co] * K[tap, co, ci].
void reference_input_gradient(const ConvGeometry& geometry, const float* kernel, const float* dz, float* dx);
// dk[tap, co, ci] = sum over n and i of x[n, i, ci] * dz[n, o, co].
void reference_kernel_gradient(const ConvGeometry& geometry, const float* x, const float* dz, float* dk);
// db[co] = sum over n and every output voxel of dz[n, o, co].
void reference_bias_gradient(const ConvGeometry& geometry, const float* dz, float* db);

// kernel: Keras layout, copied.
std::unique_ptr<BackwardExecutor> make_reference_backward_executor(const Problem& problem,
                                                                   std::vector<float> kernel);

}  // namespace tconv3d
