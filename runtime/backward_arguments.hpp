// The checks the float32 and bf16 backward passes make before any work: the
// arrays each result needs, the bias gradient of a layer without bias, and
// outputs that overlap an input or each other.
#pragma once

#include <cstdint>

#include "core/activation.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d {

// x, y, dy, dx hold `value_bytes` per element (4: float32, 2: bf16); dk and
// db are float32. y and dy have `output_elements` (after the activation).
// Throws tconv3d::Error naming the argument. Returns false when no result is
// asked for (dx, dk and db all null), so there is nothing to do.
bool check_backward_arguments(const ConvGeometry& g, const Activation& act, bool use_bias, int64_t output_elements,
                              int64_t value_bytes, const void* x, const void* y, const void* dy, const void* dx,
                              const void* dk, const void* db);

}  // namespace tconv3d
