// Keras's weight-side arguments: initializers (seeded, reproducible),
// regularizer loss terms, and constraints.
#pragma once

#include <cstdint>
#include <vector>

#include "tconv3d/config.hpp"

namespace tconv3d {

// Draws a tensor of `shape` (Keras layout) from `init`. Keras's fan rules for
// a rank-5 kernel: receptive = kd*kh*kw, fan_in = shape[-2]*receptive (the
// filters), fan_out = shape[-1]*receptive (the input channels). The stream is
// ours (not Keras's RNG): same seed, same values, on every machine.
std::vector<float> initialize(const Initializer& init, const std::vector<int64_t>& shape, uint64_t seed);

// l1*sum|w| + l2*sum(w^2), accumulated in double.
double regularization_loss(const Regularizer& reg, const float* values, int64_t count);

// Applies a Keras constraint in place to a tensor of `shape`; axes (which may
// be negative) are those Keras reduces over when computing norms.
void apply_constraint(const Constraint& constraint, float* values, const std::vector<int64_t>& shape);

}  // namespace tconv3d
