// The loops of the backward's dz pass, shared by the float32 pass
// (preactivation_gradient.*) and the bf16 pass (preactivation_gradient_bf16.*):
// dz = dy * act'(.) per elementwise activation, bf16 <-> float32 conversion,
// and the double sums of the bias gradient. Each is vectorized (GCC vectors)
// and compiled for the generic x86-64 target and AVX2 (the bf16 ones for
// AVX-512 too), with the same operations per value on every one: the results
// are bitwise the same whichever runs, and bitwise what the scalar definitions compute
// (activation_gradient_rows, float_to_bf16). Callers pick the instruction set
// once per pass with dz_isa().
#pragma once

#include <cstdint>

#include "core/activation.hpp"

namespace tconv3d {

enum class DzIsa { kGeneric, kAvx2, kAvx512 };

// The best the loops may use under cpu_features() now (masks honoured).
DzIsa dz_isa();

// True when elementwise_dz has a loop of its own for `act`; otherwise it runs
// the general per-value activation_gradient_rows().
bool has_dz_loop(const Activation& act);

// True when elementwise_dz_bf16 computes act' in a loop of its own; otherwise
// it looks act' up in a table (those on exp, tanh, erf... per value).
bool has_dz_bf16_loop(const Activation& act);

// dz = dy * act'(.) over `count` values of an elementwise activation (not an
// axis one): bitwise activation_gradient_rows(act, z, y, dy, dz, 1, count).
// z may be null unless needs_preactivation(act), y unless needs_output(act);
// dz does not overlap the inputs.
void elementwise_dz(DzIsa isa, const Activation& act, const float* z, const float* y, const float* dy, float* dz,
                    int64_t count);

// The same from bf16 inputs (a linear activation included: dz = dy): bitwise
// each input widened to float32, then elementwise_dz; dz_bf16 gets dz rounded
// by float_to_bf16, and dz_float (when not null) the float32 dz itself. The
// activations without a loop of their own look act' up in a table of all
// 65536 bf16 inputs, computed once per process by the general path's function.
void elementwise_dz_bf16(DzIsa isa, const Activation& act, const uint16_t* z, const uint16_t* y,
                         const uint16_t* dy, float* dz_float, uint16_t* dz_bf16, int64_t count);

// bf16_to_float / float_to_bf16 over arrays.
void widen_bf16(DzIsa isa, const uint16_t* in, float* out, int64_t count);
void narrow_bf16(DzIsa isa, const float* in, uint16_t* out, int64_t count);

// The sum of `count` floats in double, in an order fixed by `count` alone.
double sum_floats(DzIsa isa, const float* v, int64_t count);

// sums[c] = sum over r < rows of v[r * channels + c] in double, in an order
// fixed by (rows, channels) alone.
void sum_rows(DzIsa isa, const float* v, int64_t rows, int64_t channels, double* sums);

}  // namespace tconv3d
