// Emits a Keras elementwise activation on one vector register, for the Xbyak
// kernels (AVX2 ymm or AVX-512 zmm). Transcendental activations use polynomial
// approximations whose error is measured against the double-precision
// definitions in core/activation.hpp. Constants live in a table emitted
// after the kernel body and are read rip-relative, so the code stays
// position-independent.
#pragma once

#include <vector>

#include <xbyak/xbyak.h>

#include "emit/x64/vector_math.hpp"
#include "tconv3d/config.hpp"

namespace tconv3d::x64 {

template <typename Vmm>  // Xbyak::Ymm (AVX2 + FMA) or Xbyak::Zmm (AVX-512)
class ActivationEmitter {
 public:
  ActivationEmitter(Xbyak::CodeGenerator& gen, const Activation& activation);

  // Scratch vector registers emit() needs besides the value itself (0 for
  // linear; small for relu-like ones; more for transcendental ones).
  int scratch_registers() const;

  // Transforms `x` in place. `scratch` holds at least scratch_registers()
  // registers the caller does not need preserved. May use opmask k1-k3 on
  // AVX-512 (never k0) and no general-purpose registers.
  void emit(const Vmm& x, const std::vector<Vmm>& scratch);

  // Emits the constant table; call exactly once, after the kernel's final ret
  // (also when emit() was never called: then it emits nothing).
  void emit_constants();

 private:
  struct Impl;
  Xbyak::CodeGenerator& gen_;
  Activation activation_;
  Xbyak::Label constants_;
  ConstantTable table_{VectorMath<Vmm>::kAvx512 ? 1 : VectorMath<Vmm>::kLanes};
  bool used_ = false;
};

}  // namespace tconv3d::x64
