// This machine's sustained fp32 FMA throughput: the ceiling every "% of peak"
// figure is measured against. Independent FMA chains (more than the FMA
// latency times the FMA ports need) run from registers, so nothing but the
// FMA units limits them. Each thread's rate is taken over its own CPU time, so
// other processes sharing the cores do not lower the ceiling; with more
// threads than cores the sum overstates what the machine can do at once.
#pragma once

#include "tconv3d/layer.hpp"

namespace tconv3d {

struct FmaPeakOptions {
  int threads = 1;             // each runs its own chains; the result is their sum
  int runs = 5;                // the best run counts: other processes only slow a run down
  double seconds_per_run = 0.05;
};

// GFLOP/s (2 per FMA lane) with ymm (Isa::kAvx2: 12 chains) or zmm
// (Isa::kAvx512: 24 chains). Throws tconv3d::Error when the CPU lacks the ISA
// or an option is out of range.
double measure_fma_peak(Isa isa, const FmaPeakOptions& options = {});

// The bf16 ceiling (AVX512_BF16): 24 vdpbf16ps zmm chains, 64 FLOP each (16
// lanes x 2 bf16 products x multiply-add). Throws without avx512_bf16.
double measure_bf16_peak(const FmaPeakOptions& options = {});
// The calibrate-and-best-of-runs loop both use; flops per call of loop(1).
double measure_loop_peak(void (*loop)(int64_t), double flops_per_iteration, const FmaPeakOptions& options);

}  // namespace tconv3d
