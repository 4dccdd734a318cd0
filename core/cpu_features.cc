#include "core/cpu_features.hpp"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t{edx} << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = ecx & (1u << 12);
  const bool osxsave = ecx & (1u << 27);
  const bool avx = ecx & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;           // SSE + AVX
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;         // + opmask, ZMM_Hi256, Hi16_ZMM
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = ebx & (1u << 5);
  const bool avx512f = ebx & (1u << 16), avx512dq = ebx & (1u << 17), avx512bw = ebx & (1u << 30),
             avx512vl = ebx & (1u << 31);
  f.avx2_fma = avx2 && fma && ymm_state;
  f.avx512 = f.avx2_fma && avx512f && avx512dq && avx512bw && avx512vl && zmm_state;
  unsigned brand[12] = {};
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
    char text[49] = {};
    std::memcpy(text, brand, 48);
    f.brand = text;
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

Isa best_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512) return Isa::kAvx512;
  if (f.avx2_fma) return Isa::kAvx2;
  return Isa::kAuto;
}

Isa resolve_isa(Isa requested) {
  if (requested == Isa::kAuto) {
    if (const char* env = std::getenv("TCONV3D_ISA"); env && *env) {
      try {
        requested = parse_isa(env);
      } catch (const Error& e) {
        throw Error("TCONV3D_ISA", std::string("expected auto, avx2 or avx512, got '") + env + "'");
      }
    }
  }
  const CpuFeatures& f = cpu_features();
  switch (requested) {
    case Isa::kAuto: return best_isa();
    case Isa::kAvx2:
      if (!f.avx2_fma) throw Error("isa", "avx2 was requested but this CPU (or OS) cannot run AVX2+FMA");
      return Isa::kAvx2;
    case Isa::kAvx512:
      if (!f.avx512)
        throw Error("isa", "avx512 was requested but this CPU (or OS) cannot run AVX-512 F/BW/VL/DQ" +
                               std::string(f.avx2_fma ? " (it has AVX2+FMA: use --isa avx2 or auto)" : ""));
      return Isa::kAvx512;
  }
  return requested;
}

}  // namespace tconv3d
