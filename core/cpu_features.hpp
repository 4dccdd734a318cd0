// What this CPU and OS can run: CPUID feature bits plus the OS's XSAVE state
// (XCR0), so AVX-512 counts only where the kernel saves the zmm and opmask state.
// Features can be hidden (TCONV3D_CPU_MASK, ScopedCpuFeatureMask), so that the
// paths of a CPU that lacks them run, and are tested, on any host.
#pragma once

#include <string>

#include "tconv3d/options.hpp"

namespace tconv3d {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA3, ymm state enabled
  bool avx512 = false;    // AVX-512 F/BW/VL/DQ, zmm + opmask state enabled
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps, vcvtneps2bf16) on top of avx512
  std::string brand;
};

// A feature that can be hidden. Hiding AVX2+FMA hides AVX-512 too: every
// AVX-512 path also relies on AVX2+FMA; hiding AVX-512 hides AVX512_BF16.
enum class CpuFeature : unsigned { kAvx2Fma = 1u, kAvx512 = 2u, kAvx512Bf16 = 4u };

// The features every ISA decision of the library sees: the detected ones less
// those hidden by TCONV3D_CPU_MASK (read once; a comma-separated list of avx2,
// avx512, avx512_bf16) and by any live ScopedCpuFeatureMask. Throws tconv3d::Error naming
// TCONV3D_CPU_MASK when its value is not such a list.
CpuFeatures cpu_features();

// What the hardware and OS really run, nothing hidden.
const CpuFeatures& detected_cpu_features();

// Hides `hidden` from cpu_features() while it lives, on top of whatever is
// hidden already; the destructor restores the previous view. For tests: create
// it before the layers it should affect (a layer keeps the ISA it was created
// with), and not while other threads create layers.
class ScopedCpuFeatureMask {
 public:
  explicit ScopedCpuFeatureMask(CpuFeature hidden);
  ~ScopedCpuFeatureMask();
  ScopedCpuFeatureMask(const ScopedCpuFeatureMask&) = delete;
  ScopedCpuFeatureMask& operator=(const ScopedCpuFeatureMask&) = delete;

 private:
  unsigned previous_;
};

// Resolves a requested ISA: kAuto honours TCONV3D_ISA, then picks the best the
// CPU runs. Forcing one the CPU lacks throws tconv3d::Error naming it.
Isa resolve_isa(Isa requested);
// Whether TCONV3D_ISA names an ISA (avx2, avx512): then kAuto means that one,
// and no per-layer choice narrows it.
bool isa_set_by_environment();

// The widest ISA the CPU runs, or kAuto when it has neither AVX2+FMA nor AVX-512.
Isa best_isa();

}  // namespace tconv3d
