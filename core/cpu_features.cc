#include "core/cpu_features.hpp"

#include <cpuid.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>

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
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  f.avx512_bf16 = f.avx512 && (eax & (1u << 5));  // CPUID.(7,1):EAX[5]
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

// Hiding AVX2+FMA hides AVX-512 as well.
unsigned closed(unsigned hidden) {
  if (hidden & unsigned(CpuFeature::kAvx2Fma)) hidden |= unsigned(CpuFeature::kAvx512);
  if (hidden & unsigned(CpuFeature::kAvx512)) hidden |= unsigned(CpuFeature::kAvx512Bf16);
  return hidden;
}

unsigned parse_mask(const char* text) {
  unsigned hidden = 0;
  std::istringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item == "avx2") hidden |= unsigned(CpuFeature::kAvx2Fma);
    else if (item == "avx512") hidden |= unsigned(CpuFeature::kAvx512);
    else if (item == "avx512_bf16") hidden |= unsigned(CpuFeature::kAvx512Bf16);
    else if (!item.empty())
      throw Error("TCONV3D_CPU_MASK", "expected a comma-separated list of avx2, avx512 and avx512_bf16, got '" +
                                          std::string(text) + "'");
  }
  return closed(hidden);
}

// The features hidden from the environment, read once per process.
unsigned environment_mask() {
  static const unsigned mask = [] {
    const char* env = std::getenv("TCONV3D_CPU_MASK");
    return env ? parse_mask(env) : 0u;
  }();
  return mask;
}

// The features hidden by live ScopedCpuFeatureMasks. Atomic, so a layer
// created on another thread reads a whole mask, old or new.
std::atomic<unsigned> scoped_mask{0};

}  // namespace

const CpuFeatures& detected_cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

CpuFeatures cpu_features() {
  CpuFeatures f = detected_cpu_features();
  const unsigned hidden = environment_mask() | scoped_mask.load(std::memory_order_acquire);
  if (hidden & unsigned(CpuFeature::kAvx2Fma)) f.avx2_fma = false;
  if (hidden & unsigned(CpuFeature::kAvx512)) f.avx512 = false;
  if (hidden & unsigned(CpuFeature::kAvx512Bf16)) f.avx512_bf16 = false;
  return f;
}

ScopedCpuFeatureMask::ScopedCpuFeatureMask(CpuFeature hidden)
    : previous_(scoped_mask.fetch_or(closed(unsigned(hidden)), std::memory_order_acq_rel)) {}

ScopedCpuFeatureMask::~ScopedCpuFeatureMask() { scoped_mask.store(previous_, std::memory_order_release); }

Isa best_isa() {
  const CpuFeatures f = cpu_features();
  if (f.avx512) return Isa::kAvx512;
  if (f.avx2_fma) return Isa::kAvx2;
  return Isa::kAuto;
}

bool isa_set_by_environment() {
  const char* env = std::getenv("TCONV3D_ISA");
  return env && *env && std::string(env) != "auto";
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
  const CpuFeatures f = cpu_features();
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
