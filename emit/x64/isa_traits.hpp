// What the tconv3d emitter needs to know about an x86 vector ISA. One emitter
// template reads these; nothing else differs between AVX2 and AVX-512 except
// how a partial vector is stored (vmaskmovps with a mask register, or an opmask).
#pragma once

#include <xbyak/xbyak.h>

#include "tconv3d/options.hpp"

namespace tconv3d::x64 {

struct Avx2Traits {
  using Vmm = Xbyak::Ymm;
  static constexpr Isa kIsa = Isa::kAvx2;
  static constexpr int kLanes = 8;
  static constexpr int kRegisters = 16;
  static constexpr bool kHasOpmask = false;
};

struct Avx512Traits {
  using Vmm = Xbyak::Zmm;
  static constexpr Isa kIsa = Isa::kAvx512;
  static constexpr int kLanes = 16;
  static constexpr int kRegisters = 32;
  static constexpr bool kHasOpmask = true;
};

// AVX-512 (VL) with 8-lane ymm vectors: AVX2's lanes, AVX-512's 32
// registers and opmasks (plans for few filters, see make_plan). Registers
// 16-31 take EVEX encodings; the activation emitter's AVX2 code (vblendvps
// has no EVEX form) gets registers 0-15 only.
struct Avx512YmmTraits {
  using Vmm = Xbyak::Ymm;
  static constexpr Isa kIsa = Isa::kAvx512;
  static constexpr int kLanes = 8;
  static constexpr int kRegisters = 32;
  static constexpr bool kHasOpmask = true;
};

}  // namespace tconv3d::x64
