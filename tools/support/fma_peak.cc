#include "tools/support/fma_peak.hpp"

#include <omp.h>

#include <algorithm>
#include <ctime>
#include <cstdint>
#include <string>

#include "core/cpu_features.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

// Each loop iteration issues 12 (ymm) or 24 (zmm) FMAs on independent
// accumulators. Inline asm, so the compiler can neither fold nor reorder them.
__attribute__((target("avx2,fma"))) void ymm_fma_loop(int64_t iterations) {
  const float one = 1.0f, tiny = 1e-7f;
  __asm__ volatile(
      "vbroadcastss %1, %%ymm12\n\t"
      "vbroadcastss %2, %%ymm13\n\t"
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovaps %%ymm0, %%ymm1\n\t vmovaps %%ymm0, %%ymm2\n\t vmovaps %%ymm0, %%ymm3\n\t"
      "vmovaps %%ymm0, %%ymm4\n\t vmovaps %%ymm0, %%ymm5\n\t vmovaps %%ymm0, %%ymm6\n\t"
      "vmovaps %%ymm0, %%ymm7\n\t vmovaps %%ymm0, %%ymm8\n\t vmovaps %%ymm0, %%ymm9\n\t"
      "vmovaps %%ymm0, %%ymm10\n\t vmovaps %%ymm0, %%ymm11\n\t"
      ".p2align 4\n"
      "1:\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm0\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm1\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm2\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm3\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm4\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm5\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm6\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm7\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm8\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm9\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm10\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm11\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iterations)
      : "m"(one), "m"(tiny)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}
constexpr double kYmmFlopsPerIteration = 12 * 8 * 2;

__attribute__((target("avx512f"))) void zmm_fma_loop(int64_t iterations) {
  const float one = 1.0f, tiny = 1e-7f;
  __asm__ volatile(
      "vbroadcastss %1, %%zmm30\n\t"
      "vbroadcastss %2, %%zmm31\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t"
      "vmovaps %%zmm0, %%zmm4\n\t vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t"
      "vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t vmovaps %%zmm0, %%zmm9\n\t"
      "vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t vmovaps %%zmm0, %%zmm12\n\t"
      "vmovaps %%zmm0, %%zmm13\n\t vmovaps %%zmm0, %%zmm14\n\t vmovaps %%zmm0, %%zmm15\n\t"
      "vmovaps %%zmm0, %%zmm16\n\t vmovaps %%zmm0, %%zmm17\n\t vmovaps %%zmm0, %%zmm18\n\t"
      "vmovaps %%zmm0, %%zmm19\n\t vmovaps %%zmm0, %%zmm20\n\t vmovaps %%zmm0, %%zmm21\n\t"
      "vmovaps %%zmm0, %%zmm22\n\t vmovaps %%zmm0, %%zmm23\n\t"
      ".p2align 4\n"
      "1:\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm0\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm1\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm2\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm3\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm4\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm5\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm6\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm7\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm8\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm9\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm10\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm11\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm12\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm13\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm14\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm15\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm16\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm17\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm18\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm19\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm20\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm21\n\t"
      "vfmadd231ps %%zmm30, %%zmm31, %%zmm22\n\t vfmadd231ps %%zmm30, %%zmm31, %%zmm23\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iterations)
      : "m"(one), "m"(tiny)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
        "xmm23", "xmm30", "xmm31", "cc");
}
constexpr double kZmmFlopsPerIteration = 24 * 16 * 2;

// The bf16 ceiling: 24 independent vdpbf16ps chains (each 16 lanes x 2
// products x 2 FLOP), from registers like the FMA loops.
__attribute__((target("avx512f"))) void zmm_bf16_loop(int64_t iterations) {
  const float one = 1.0f, tiny = 1e-7f;
#define TCONV3D_DPBF16(n) "vdpbf16ps %%zmm31, %%zmm30, %%zmm" #n "\n\t"
  __asm__ volatile(
      "vbroadcastss %1, %%zmm30\n\t"
      "vbroadcastss %2, %%zmm31\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t"
      "vmovaps %%zmm0, %%zmm4\n\t vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t"
      "vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t vmovaps %%zmm0, %%zmm9\n\t"
      "vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t vmovaps %%zmm0, %%zmm12\n\t"
      "vmovaps %%zmm0, %%zmm13\n\t vmovaps %%zmm0, %%zmm14\n\t vmovaps %%zmm0, %%zmm15\n\t"
      "vmovaps %%zmm0, %%zmm16\n\t vmovaps %%zmm0, %%zmm17\n\t vmovaps %%zmm0, %%zmm18\n\t"
      "vmovaps %%zmm0, %%zmm19\n\t vmovaps %%zmm0, %%zmm20\n\t vmovaps %%zmm0, %%zmm21\n\t"
      "vmovaps %%zmm0, %%zmm22\n\t vmovaps %%zmm0, %%zmm23\n\t"
      ".p2align 4\n"
      "1:\n\t"
      TCONV3D_DPBF16(0) TCONV3D_DPBF16(1) TCONV3D_DPBF16(2) TCONV3D_DPBF16(3) TCONV3D_DPBF16(4)
      TCONV3D_DPBF16(5) TCONV3D_DPBF16(6) TCONV3D_DPBF16(7) TCONV3D_DPBF16(8) TCONV3D_DPBF16(9)
      TCONV3D_DPBF16(10) TCONV3D_DPBF16(11) TCONV3D_DPBF16(12) TCONV3D_DPBF16(13) TCONV3D_DPBF16(14)
      TCONV3D_DPBF16(15) TCONV3D_DPBF16(16) TCONV3D_DPBF16(17) TCONV3D_DPBF16(18) TCONV3D_DPBF16(19)
      TCONV3D_DPBF16(20) TCONV3D_DPBF16(21) TCONV3D_DPBF16(22) TCONV3D_DPBF16(23)
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iterations)
      : "m"(one), "m"(tiny)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
        "xmm23", "xmm30", "xmm31", "cc");
#undef TCONV3D_DPBF16
}
constexpr double kBf16FlopsPerIteration = 24 * 16 * 2 * 2;

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Runs `loop(iterations)` on every thread at once and returns the summed
// per-thread rates (iterations per CPU-second). Each thread's own CPU time
// counts, not the wall clock, so another process taking turns on the same
// cores lowers nothing: the result is what the FMA units do while they run.
double parallel_rate(void (*loop)(int64_t), int64_t iterations, int threads, double* slowest_seconds) {
  double rate = 0, slowest = 0;
#pragma omp parallel num_threads(threads) reduction(+ : rate) reduction(max : slowest)
  {
#pragma omp barrier
    const double start = thread_cpu_seconds();
    loop(iterations);
    const double seconds = thread_cpu_seconds() - start;
    rate += seconds > 0 ? double(iterations) / seconds : 0.0;
    slowest = seconds;
  }
  *slowest_seconds = slowest;
  return rate;
}

}  // namespace

double measure_bf16_peak(const FmaPeakOptions& options) {
  if (!cpu_features().avx512_bf16) throw Error("dtype", "bf16 peak: this CPU lacks avx512_bf16 (vdpbf16ps)");
  return measure_loop_peak(zmm_bf16_loop, kBf16FlopsPerIteration, options);
}

double measure_fma_peak(Isa isa, const FmaPeakOptions& options) {
  if (options.threads < 1 || options.threads > 4096)
    throw Error("threads", "expected 1..4096, got " + std::to_string(options.threads));
  if (options.runs < 1 || options.runs > 1000) throw Error("runs", "expected 1..1000, got " + std::to_string(options.runs));
  if (!(options.seconds_per_run > 0 && options.seconds_per_run <= 10))
    throw Error("seconds_per_run", "expected (0, 10] seconds, got " + std::to_string(options.seconds_per_run));
  const CpuFeatures& cpu = cpu_features();
  void (*loop)(int64_t) = nullptr;
  double flops_per_iteration = 0;
  switch (isa) {
    case Isa::kAvx2:
      if (!cpu.avx2_fma) throw Error("isa", "avx2 FMA peak: this CPU (or OS) cannot run AVX2+FMA");
      loop = ymm_fma_loop;
      flops_per_iteration = kYmmFlopsPerIteration;
      break;
    case Isa::kAvx512:
      if (!cpu.avx512) throw Error("isa", "avx512 FMA peak: this CPU (or OS) cannot run AVX-512");
      loop = zmm_fma_loop;
      flops_per_iteration = kZmmFlopsPerIteration;
      break;
    case Isa::kAuto: throw Error("isa", "the FMA peak needs avx2 or avx512, not auto");
  }
  return measure_loop_peak(loop, flops_per_iteration, options);
}

double measure_loop_peak(void (*loop)(int64_t), double flops_per_iteration, const FmaPeakOptions& options) {
  if (options.threads < 1 || options.threads > 4096)
    throw Error("threads", "expected 1..4096, got " + std::to_string(options.threads));
  if (options.runs < 1 || options.runs > 1000)
    throw Error("runs", "expected 1..1000, got " + std::to_string(options.runs));
  if (!(options.seconds_per_run > 0 && options.seconds_per_run <= 10))
    throw Error("seconds_per_run", "expected (0, 10] seconds, got " + std::to_string(options.seconds_per_run));
  // Calibrate the iteration count to about seconds_per_run of CPU time
  // (warming the frequency up on the way), then keep the best of `runs`.
  int64_t iterations = 1 << 16;
  for (int attempt = 0; attempt < 20; ++attempt) {
    double seconds = 0;
    parallel_rate(loop, iterations, options.threads, &seconds);
    if (seconds >= options.seconds_per_run * 0.5) {
      iterations = std::max<int64_t>(1, int64_t(double(iterations) * options.seconds_per_run / seconds));
      break;
    }
    iterations *= seconds > 0 ? std::clamp<int64_t>(int64_t(options.seconds_per_run / seconds), 2, 16) : 16;
  }
  double best = 0;
  for (int run = 0; run < options.runs; ++run) {
    double seconds = 0;
    best = std::max(best, flops_per_iteration * parallel_rate(loop, iterations, options.threads, &seconds) / 1e9);
  }
  return best;
}

}  // namespace tconv3d
