// The bf16 side-by-side (issue 17): per suite layer and thread count,
// tconv3d's bf16 layer (LayerOptions::dtype = kBfloat16, forward_bf16),
// oneDNN's bf16 deconvolution_forward (bf16 src/weights/dst, f32 bias) and
// tconv3d's float32 layer (xbyak), as benchmarks "LAYER/bf16/tconv3d",
// "LAYER/bf16/onednn" and "LAYER/bf16/float32" (".../threads:T") in the
// interleaved run. Needs AVX512_BF16: elsewhere each says why it skipped.
#pragma once

#include <cstdio>
#include <memory>
#include <vector>

#include "bench/bench_data.hpp"
#include "bench/summary.hpp"

namespace tconv3d::bench {

// Measures the vdpbf16ps peak for each thread count (where the CPU has
// AVX512_BF16) and registers the benchmarks.
void register_bf16_benchmarks(const std::vector<std::unique_ptr<LayerData>>& layers,
                              const std::vector<int>& threads, CollectingReporter& reporter);

// Per layer: ms and % of the vdpbf16ps peak of both bf16 implementations,
// the float32 time, the speed ratios bf16/float32 and tconv3d/oneDNN (with
// geomeans), the implementations oneDNN picked and the checks. Prints
// nothing when no bf16 benchmark ran.
void print_bf16_summary(std::FILE* out, const SummaryInput& in);

}  // namespace tconv3d::bench
