// Keras's elementwise activations as vector IR, fused into the LLVM kernels.
// Transcendental functions are expanded in IR (no libm calls), so JIT code is
// self-contained and AOT objects need no -lm:
//   exp    range reduction by ln 2 (split in two parts) + degree-7 Taylor
//          polynomial, 2^n assembled in the exponent bits; below -86 it flushes
//          to 0 (true value < 5e-38), above 88.72 it is +inf
//   expm1  degree-8 Taylor polynomial for |x| < 0.5, else exp(x) - 1
//   log1p  exponent/mantissa split, atanh series on [sqrt(1/2), sqrt(2)), plus
//          the rounding error of 1 + y
//   tanh   expm1(2|x|) / (expm1(2|x|) + 2), |x| clamped at 9 (tanh = 1 in fp32)
//   erf    Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7)
// Their error against the double-precision definitions in
// core/activation.hpp is measured in tests/llvm_backend_test.cc.
#pragma once

#include "emit/llvm/ir_support.hpp"
#include "tconv3d/config.hpp"

namespace tconv3d::llvm_backend {

// Returns activation(x) for a vector x of ir.lanes() floats.
llvm::Value* emit_activation(IrSupport& ir, const Activation& activation, llvm::Value* x);

}  // namespace tconv3d::llvm_backend
