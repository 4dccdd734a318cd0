// What the float32 (generated_kernel_gradient.*) and bf16
// (bf16_kernel_gradient.*) dK kernels share: how the kernel is compiled, and
// how its work is shared among threads: the work items are (kd, kh) pairs, cut by row tiles and ci blocks
// into pieces of about equal cost, and each piece is computed whole by the
// one thread that takes it, over every (x row, dz row) pair in order. Every
// dK element therefore sums its terms in the same order for any thread count.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plan/kernel_gradient_plan.hpp"
#include "runtime/exec_memory.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d {

// The dK kernel of `plan` from the kernel cache, emitted by `backend` (xbyak
// or llvm: the same plan and kernel contract); an Error names any other
// backend or one this build lacks. `name` is the kernel's name, which gets
// llvm's suffix.
std::shared_ptr<const ExecutableCode> compile_kernel_gradient(const codegen::KernelGradientPlan& plan, Backend backend,
                                                              std::string& name);

struct KernelGradientPiece {
  int dh = 0;  // kd * kernel_h + kh
  int tile_begin = 0, tile_end = 0, block_begin = 0, block_end = 0;
  double cost = 0;
};

// pairs: per (kd, kh), the flat (x row, dz row) offset pairs the kernel reads.
// Largest piece first.
std::vector<KernelGradientPiece> kernel_gradient_pieces(const codegen::KernelGradientPlan& plan,
                                                        const std::vector<std::vector<int64_t>>& pairs, int threads);

// Runs `kernel` over the pieces on `threads` threads: each piece as calls of
// at most plan.pairs_per_call pairs, the first starting its accumulators
// from zero (a (kd, kh) without pairs still stores its zeros).
// before_call(args) runs before each call (the callers prefetch its rows).
template <typename BeforeCall>
void run_kernel_gradient_pieces(const codegen::KernelGradientPlan& plan, const std::vector<std::vector<int64_t>>& pairs,
                                codegen::KernelGradientFunction kernel, const float* x, const float* dz, float* dk,
                                int threads, BeforeCall before_call) {
  threads = threads > 0 ? threads : omp_get_max_threads();
  const ConvGeometry& g = plan.geometry;
  const int64_t dh_block = g.axes[2].kernel * g.out_channels * g.in_channels;
  const int64_t chunk = plan.pairs_per_call;
  const std::vector<KernelGradientPiece> work = kernel_gradient_pieces(plan, pairs, threads);
  const int64_t items = static_cast<int64_t>(work.size());
  const int team = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (int64_t i = 0; i < items; ++i) {
    const KernelGradientPiece& p = work[static_cast<size_t>(i)];
    const std::vector<int64_t>& piece_pairs = pairs[static_cast<size_t>(p.dh)];
    const int64_t count = static_cast<int64_t>(piece_pairs.size() / 2);
    codegen::KernelGradientArgs args{};
    args.x = x;
    args.dz = dz;
    args.dk = dk + p.dh * dh_block;
    args.tile_begin = p.tile_begin;
    args.tile_end = p.tile_end;
    args.block_begin = p.block_begin;
    args.block_end = p.block_end;
    int64_t start = 0;
    do {
      args.pairs = piece_pairs.data() + 2 * start;
      args.pair_count = std::min(chunk, count - start);
      args.accumulate = start > 0;
      before_call(args);
      kernel(&args);
      start += chunk;
    } while (start < count);
  }
}

}  // namespace tconv3d
