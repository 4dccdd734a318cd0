#include "runtime/kernels/generated_kernel_gradient.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/cpu_features.hpp"
#include "plan/kernel_name.hpp"
#include "runtime/kernel_cache.hpp"
#include "tconv3d/error.hpp"
#ifdef TCONV3D_HAVE_XBYAK
#include "emit/x64/kernel_gradient_emitter.hpp"
#endif
#ifdef TCONV3D_HAVE_LLVM
#include "emit/llvm/llvm_backend.hpp"
#endif

namespace tconv3d {
namespace {

// Pieces per thread when several share the work, at least: enough to
// balance, few enough that each piece still reuses its rows of x and dz.
constexpr int kPiecesPerThread = 3;

}  // namespace

GeneratedKernelGradient::GeneratedKernelGradient(const Problem& problem, Backend backend, Isa isa) {
  if (backend != Backend::kXbyak && backend != Backend::kLlvm)
    throw Error("backend", "the generated kernel gradient needs the xbyak or llvm backend, got " + to_string(backend));
#ifndef TCONV3D_HAVE_XBYAK
  if (backend == Backend::kXbyak) throw Error("backend", "xbyak is not built into this tconv3d");
#endif
#ifndef TCONV3D_HAVE_LLVM
  if (backend == Backend::kLlvm) throw Error("backend", "llvm is not built into this tconv3d");
#endif
  const Isa resolved = resolve_isa(isa);
  if (resolved != Isa::kAvx2 && resolved != Isa::kAvx512)
    throw Error("isa", "the " + to_string(backend) + " kernel gradient needs a CPU with avx2 or avx512");
  plan_ = codegen::make_kernel_gradient_plan(problem, resolved);
  name_ = codegen::kernel_gradient_name(plan_);
  const codegen::KernelGradientPlan& plan = plan_;
#ifdef TCONV3D_HAVE_XBYAK
  if (backend == Backend::kXbyak)
    code_ = KernelCache::global().get_or_compile(plan.cache_key(),
                                                 [&plan] { return x64::emit_kernel_gradient_kernel(plan); });
#endif
#ifdef TCONV3D_HAVE_LLVM
  // The same plan and kernel contract, emitted as LLVM IR.
  if (backend == Backend::kLlvm) {
    name_ += "__llvm";
    code_ = KernelCache::global().get_or_compile(llvm_backend::llvm_kernel_gradient_key(plan),
                                                 [&plan] { return llvm_backend::compile_kernel_gradient_kernel(plan); });
  }
#endif
  kernel_ = code_->function<codegen::KernelGradientFunction>();
  const ConvGeometry& g = plan_.geometry;
  for (int64_t kd = 0; kd < g.axes[0].kernel; ++kd)
    for (int64_t kh = 0; kh < g.axes[1].kernel; ++kh) pairs_.push_back(codegen::kernel_gradient_row_pairs(g, kd, kh));
  chunk_pairs_ = plan_.pairs_per_call;
}

std::vector<GeneratedKernelGradient::Piece> GeneratedKernelGradient::pieces(int threads) const {
  const int tiles = plan_.tiles, blocks = plan_.ci_blocks;
  const double per_pair = double(plan_.fmas_per_pair(0, tiles, 0, blocks));
  std::vector<double> costs;
  double total = 0;
  for (const auto& pairs : pairs_) {
    // A (kd, kh) without pairs still writes its zeros: count it as one pair.
    costs.push_back(std::max<double>(1.0, double(pairs.size() / 2)) * std::max(1.0, per_pair));
    total += costs.back();
  }
  auto split = [&](double target) {
    std::vector<Piece> out;
    for (size_t dh = 0; dh < pairs_.size(); ++dh) {
      const int wanted =
          static_cast<int>(std::clamp<double>(std::round(costs[dh] / target), 1.0, double(tiles) * blocks));
      // Split the tiles first (a piece keeps all ci blocks, so its x rows are
      // shared by its tiles); cut ci blocks only when there are too few tiles.
      const int tile_parts = std::min(wanted, tiles);
      const int block_parts = std::min(blocks, (wanted + tile_parts - 1) / tile_parts);
      for (int t = 0; t < tile_parts; ++t)
        for (int b = 0; b < block_parts; ++b) {
          Piece p;
          p.dh = static_cast<int>(dh);
          p.tile_begin = static_cast<int>(int64_t(tiles) * t / tile_parts);
          p.tile_end = static_cast<int>(int64_t(tiles) * (t + 1) / tile_parts);
          p.block_begin = static_cast<int>(int64_t(blocks) * b / block_parts);
          p.block_end = static_cast<int>(int64_t(blocks) * (b + 1) / block_parts);
          p.cost = std::max<double>(1.0, double(pairs_[dh].size() / 2)) *
                   double(plan_.fmas_per_pair(p.tile_begin, p.tile_end, p.block_begin, p.block_end));
          out.push_back(p);
        }
    }
    // Largest first, handed out dynamically: which thread takes a piece never
    // changes what the piece computes.
    std::stable_sort(out.begin(), out.end(), [](const Piece& a, const Piece& b) { return a.cost > b.cost; });
    return out;
  };
  if (threads <= 1) return split(total);
  // The finest split is not the best (each piece reads its rows of x and dz
  // again), nor is a fixed number per thread: 9 (kd, kh) of equal cost (a
  // 3x3x3 kernel) made 9 pieces for 2 threads, one thread idle for the last
  // ninth of the time. So several pieces-per-thread counts are tried, and
  // the split whose largest-first schedule ends first wins (on a tie, within
  // 1 %, the one with fewer pieces).
  std::vector<Piece> best;
  double best_end = 0;
  for (int per_thread : {kPiecesPerThread, 4, 5, 6, 8}) {
    std::vector<Piece> candidate = split(total / (double(threads) * per_thread));
    std::vector<double> load(static_cast<size_t>(threads), 0.0);
    for (const Piece& p : candidate) *std::min_element(load.begin(), load.end()) += p.cost;
    const double end = *std::max_element(load.begin(), load.end());
    if (best.empty() || end < best_end * 0.99) {
      best = std::move(candidate);
      best_end = end;
    }
  }
  return best;
}

// Asks for the rows of a call's pairs, in address order, before the call.
// The kernel's first tile reads them a few lines per voxel, 1 KB apart for
// 256 channels, which the hardware prefetchers do not follow: without this,
// that first pass waits on memory line by line. Measured on Zen 4 (AVX-512,
// 1 thread, interleaved runs): unet_up_k2s2 76-78 % of the FMA peak without,
// 80-84 % with; the other suite layers unchanged within the noise.
void GeneratedKernelGradient::prefetch_rows(const float* x, const float* dz, const int64_t* pairs,
                                            int64_t count) const {
  const ConvGeometry& g = plan_.geometry;
  const int64_t x_row = 4 * g.axes[2].in * g.in_channels, dz_row = 4 * g.axes[2].out * g.out_channels;
  const char* x_bytes = reinterpret_cast<const char*>(x);
  const char* dz_bytes = reinterpret_cast<const char*>(dz);
  for (int64_t q = 0; q < count; ++q) {
    for (int64_t at = 0; at < x_row; at += 64) __builtin_prefetch(x_bytes + pairs[2 * q] + at, 0, 2);
    for (int64_t at = 0; at < dz_row; at += 64) __builtin_prefetch(dz_bytes + pairs[2 * q + 1] + at, 0, 2);
  }
}

void GeneratedKernelGradient::run(const float* x, const float* dz, float* dk, int threads) const {
  threads = threads > 0 ? threads : omp_get_max_threads();
  const ConvGeometry& g = plan_.geometry;
  const int64_t dh_block = g.axes[2].kernel * g.out_channels * g.in_channels;
  const std::vector<Piece> work = pieces(threads);
  const int64_t items = static_cast<int64_t>(work.size());
  const int team = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (int64_t i = 0; i < items; ++i) {
    const Piece& p = work[static_cast<size_t>(i)];
    const std::vector<int64_t>& pairs = pairs_[static_cast<size_t>(p.dh)];
    const int64_t count = static_cast<int64_t>(pairs.size() / 2);
    codegen::KernelGradientArgs args{};
    args.x = x;
    args.dz = dz;
    args.dk = dk + p.dh * dh_block;
    args.tile_begin = p.tile_begin;
    args.tile_end = p.tile_end;
    args.block_begin = p.block_begin;
    args.block_end = p.block_end;
    // No pairs: one call with none stores the zeros.
    int64_t start = 0;
    do {
      args.pairs = pairs.data() + 2 * start;
      args.pair_count = std::min(chunk_pairs_, count - start);
      args.accumulate = start > 0;
      prefetch_rows(x, dz, args.pairs, args.pair_count);
      kernel_(&args);
      start += chunk_pairs_;
    } while (start < count);
  }
}

}  // namespace tconv3d
