// The bf16 backward's first step: dz = dy * act'(z) from bf16 dy (and y or
// z), computed in float32 by the float32 pass's loops (runtime/dz_loops.hpp:
// bf16 widened in registers, bitwise what activation_gradient_rows computes
// on the widened values), fused with the bias gradient db = float32 dz summed
// in double, and written out rounded to bf16 (float_to_bf16), what dx and dK
// are computed from. No tensor-sized float32 copy is made: a block of rows at
// a time goes through a small per-thread float32 buffer, for db.
#pragma once

#include <cstdint>
#include <vector>

#include "core/activation.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d {

// All arrays bf16 bits in the layer's data format (elementwise activations
// only). z: needed iff needs_preactivation(act); y: iff needs_output(act);
// db: (filters,) float32 or nullptr. Returns dz in bf16: dy itself for a
// linear activation, else dz_storage (resized). db does not depend on `threads`.
const uint16_t* preactivation_gradient_bf16(const ConvGeometry& g, const Activation& act, const uint16_t* z,
                                            const uint16_t* y, const uint16_t* dy, float* db,
                                            std::vector<uint16_t>& dz_storage, int threads);

}  // namespace tconv3d
