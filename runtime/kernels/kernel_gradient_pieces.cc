#include "runtime/kernels/kernel_gradient_pieces.hpp"

#include <cmath>

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

std::shared_ptr<const ExecutableCode> compile_kernel_gradient(const codegen::KernelGradientPlan& plan, Backend backend,
                                                              std::string& name) {
  if (backend == Backend::kXbyak) {
#ifdef TCONV3D_HAVE_XBYAK
    return KernelCache::global().get_or_compile(plan.cache_key(),
                                                [&plan] { return x64::emit_kernel_gradient_kernel(plan); });
#else
    throw Error("backend", "the kernel gradient on xbyak needs the xbyak backend, which this build lacks");
#endif
  }
  if (backend == Backend::kLlvm) {
#ifdef TCONV3D_HAVE_LLVM
    name += "__llvm";
    return KernelCache::global().get_or_compile(llvm_backend::llvm_kernel_gradient_key(plan), [&plan] {
      return llvm_backend::compile_kernel_gradient_kernel(plan);
    });
#else
    throw Error("backend", "the kernel gradient on llvm needs the llvm backend, which this build lacks");
#endif
  }
  throw Error("backend", "the generated kernel gradient needs the xbyak or llvm backend, got " + to_string(backend));
}

std::vector<KernelGradientPiece> kernel_gradient_pieces(const codegen::KernelGradientPlan& plan,
                                                        const std::vector<std::vector<int64_t>>& pairs, int threads) {
  const int tiles = plan.tiles, blocks = plan.ci_blocks;
  const double per_pair = double(plan.fmas_per_pair(0, tiles, 0, blocks));
  std::vector<double> costs;
  double total = 0;
  for (const auto& dh_pairs : pairs) {
    // A (kd, kh) without pairs still writes its zeros: count it as one pair.
    costs.push_back(std::max<double>(1.0, double(dh_pairs.size() / 2)) * std::max(1.0, per_pair));
    total += costs.back();
  }
  auto split = [&](double target) {
    std::vector<KernelGradientPiece> out;
    for (size_t dh = 0; dh < pairs.size(); ++dh) {
      const int wanted =
          static_cast<int>(std::clamp<double>(std::round(costs[dh] / target), 1.0, double(tiles) * blocks));
      // Split the tiles first (a piece keeps all ci blocks, so its x rows are
      // shared by its tiles); cut ci blocks only when there are too few tiles.
      const int tile_parts = std::min(wanted, tiles);
      const int block_parts = std::min(blocks, (wanted + tile_parts - 1) / tile_parts);
      for (int t = 0; t < tile_parts; ++t)
        for (int b = 0; b < block_parts; ++b) {
          KernelGradientPiece p;
          p.dh = static_cast<int>(dh);
          p.tile_begin = static_cast<int>(int64_t(tiles) * t / tile_parts);
          p.tile_end = static_cast<int>(int64_t(tiles) * (t + 1) / tile_parts);
          p.block_begin = static_cast<int>(int64_t(blocks) * b / block_parts);
          p.block_end = static_cast<int>(int64_t(blocks) * (b + 1) / block_parts);
          p.cost = std::max<double>(1.0, double(pairs[dh].size() / 2)) *
                   double(plan.fmas_per_pair(p.tile_begin, p.tile_end, p.block_begin, p.block_end));
          out.push_back(p);
        }
    }
    // Largest first, handed out dynamically: which thread takes a piece never
    // changes what the piece computes.
    std::stable_sort(out.begin(), out.end(),
                     [](const KernelGradientPiece& a, const KernelGradientPiece& b) { return a.cost > b.cost; });
    return out;
  };
  if (threads <= 1) return split(total);
  // The finest split is not the best (each piece reads its rows of x and dz
  // again), nor is a fixed number per thread: 9 (kd, kh) of equal cost (a
  // 3x3x3 kernel) made 9 pieces for 2 threads, one thread idle for the last
  // ninth of the time. So several pieces-per-thread counts are tried, and
  // the split whose largest-first schedule ends first wins (on a tie, within
  // 1 %, the one with fewer pieces).
  std::vector<KernelGradientPiece> best;
  double best_end = 0;
  for (int per_thread : {kPiecesPerThread, 4, 5, 6, 8}) {
    std::vector<KernelGradientPiece> candidate = split(total / (double(threads) * per_thread));
    std::vector<double> load(static_cast<size_t>(threads), 0.0);
    for (const KernelGradientPiece& p : candidate) *std::min_element(load.begin(), load.end()) += p.cost;
    const double end = *std::max_element(load.begin(), load.end());
    if (best.empty() || end < best_end * 0.99) {
      best = std::move(candidate);
      best_end = end;
    }
  }
  return best;
}

}  // namespace tconv3d
