// What this CPU and OS can run: CPUID feature bits plus the OS's XSAVE state
// (XCR0), so AVX-512 counts only where the kernel saves the zmm and opmask state.
#pragma once

#include <string>

#include "tconv3d/options.hpp"

namespace tconv3d {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA3, ymm state enabled
  bool avx512 = false;    // AVX-512 F/BW/VL/DQ, zmm + opmask state enabled
  std::string brand;
};

const CpuFeatures& cpu_features();

// Resolves a requested ISA: kAuto honours TCONV3D_ISA, then picks the best the
// CPU runs. Forcing one the CPU lacks throws tconv3d::Error naming it.
Isa resolve_isa(Isa requested);

// The widest ISA the CPU runs, or kAuto when it has neither AVX2+FMA nor AVX-512.
Isa best_isa();

}  // namespace tconv3d
