// The first step of every backward pass: the gradient with respect to the
// pre-activation output, dz = dy * act'(z), fused with the bias gradient
// db = sum of dz over batch and space (each block of dz is summed while it is
// in the cache). The float32 backward's; the bf16 backward's pass
// (preactivation_gradient_bf16.hpp) runs the same loops (dz_loops.hpp).
#pragma once

#include <vector>

#include "core/activation.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d {

// All arrays in the layer's data format, float32. z: the pre-activation
// output (needed iff needs_preactivation(act)); y: the forward output (needed
// iff needs_output(act)); db: (filters,) or nullptr. Returns dz: dy itself for
// a linear activation, else dz_storage, resized to the output. db's sums run
// in a fixed order, so it does not depend on `threads`.
const float* preactivation_gradient(const ConvGeometry& g, const Activation& act, const float* z, const float* y,
                                    const float* dy, float* db, std::vector<float>& dz_storage, int threads);

// The same into caller memory: dz_buffer (output_elements() floats, any
// content) is written unless the activation is linear (then dy is returned).
const float* preactivation_gradient(const ConvGeometry& g, const Activation& act, const float* z, const float* y,
                                    const float* dy, float* db, float* dz_buffer, int threads);

// True when preactivation_gradient_to_channels_last() serves this layer: a
// channels_first layer with an elementwise activation (or none).
bool fuses_channels_last_dz(const ConvGeometry& g, const Activation& act);

// For such a layer: dz straight into channels_last order (dz_last,
// output_elements() floats), z, y and dy in the layer's channels_first
// order. One pass: each block of (all channels) x (a run of voxels) is
// computed, summed into db and transposed while in the cache, instead of a
// dz pass and then a transpose pass. db as above: the same for any `threads`.
void preactivation_gradient_to_channels_last(const ConvGeometry& g, const Activation& act, const float* z,
                                             const float* y, const float* dy, float* db, float* dz_last, int threads);

}  // namespace tconv3d
