#include "runtime/kernels/bf16_kernel_gradient.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "plan/kernel_name.hpp"
#include "runtime/kernel_cache.hpp"
#include "tconv3d/error.hpp"
#ifdef TCONV3D_HAVE_XBYAK
#include "emit/x64/kernel_gradient_emitter.hpp"
#endif

namespace tconv3d {
namespace {

// As GeneratedKernelGradient: pieces per thread when several share the work, at least.
constexpr int kPiecesPerThread = 3;

// A 32-bit bf16 pair: `first` in the low half (vdpbf16ps's even element).
inline uint32_t pair(uint16_t first, uint16_t second) { return uint32_t(first) | (uint32_t(second) << 16); }

}  // namespace

Bf16KernelGradient::Bf16KernelGradient(const Problem& problem) {
#ifndef TCONV3D_HAVE_XBYAK
  (void)problem;
  throw Error("backend", "the bf16 kernel gradient needs the xbyak backend, which this build lacks");
#else
  plan_ = codegen::make_kernel_gradient_plan(problem, Isa::kAvx512, DataType::kBfloat16);
  name_ = codegen::kernel_gradient_name(plan_);
  const codegen::KernelGradientPlan& plan = plan_;
  code_ = KernelCache::global().get_or_compile(plan.cache_key(),
                                               [&plan] { return x64::emit_kernel_gradient_kernel(plan); });
  kernel_ = code_->function<codegen::KernelGradientFunction>();
  const ConvGeometry& g = plan_.geometry;
  for (int64_t kd = 0; kd < g.axes[0].kernel; ++kd)
    for (int64_t kh = 0; kh < g.axes[1].kernel; ++kh)
      pairs_.push_back(codegen::kernel_gradient_row_pairs(plan_, kd, kh));
  x_rows_ = g.batch * g.axes[0].in * g.axes[1].in;
  dz_rows_ = g.batch * g.axes[0].out * g.axes[1].out;
#endif
}

// The float32 GeneratedKernelGradient's split (same cost model, same plan
// fields; keep the two in step), so each piece is computed whole, in one
// order, by one thread.
std::vector<Bf16KernelGradient::Piece> Bf16KernelGradient::pieces(int threads) const {
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
      // Tiles first (a piece keeps all ci blocks); ci blocks only when there are too few tiles.
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
  // Several pieces-per-thread counts; the split whose largest-first schedule
  // ends first wins (within 1 %: the one with fewer pieces).
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

// x pairs: xp[row, j, ci] = (x[row, 2j, ci], x[row, 2j+1, ci], 0 past the row).
// dz pairs: dzp[row, stride + ow, co] = (dz[row, ow, co], dz[row, ow + stride, co])
// for ow in [-stride, out), 0 for a voxel outside [0, out): the zeros make
// the partner of a voxel whose tap falls outside the row add nothing.
void Bf16KernelGradient::repack(const uint16_t* x, const uint16_t* dz, uint32_t* xp, uint32_t* dzp,
                                int threads) const {
  threads = threads > 0 ? threads : omp_get_max_threads();
  const ConvGeometry& g = plan_.geometry;
  const int64_t w_in = g.axes[2].in, w_out = g.axes[2].out, s = g.axes[2].stride;
  const int64_t ci = g.in_channels, co = g.out_channels, steps = plan_.w_steps();
  const int64_t x_rows = x_rows_, dz_rows = dz_rows_;
#pragma omp parallel num_threads(threads) if (x_rows * w_in * ci + dz_rows * w_out * co > 65536)
  {
#pragma omp for schedule(static) nowait
    for (int64_t row = 0; row < x_rows; ++row) {
      const uint16_t* in = x + row * w_in * ci;
      uint32_t* out = xp + row * steps * ci;
      for (int64_t j = 0; j < w_in / 2; ++j) {
        const uint16_t* a = in + 2 * j * ci;
        const uint16_t* b = a + ci;
        uint32_t* o = out + j * ci;
        for (int64_t c = 0; c < ci; ++c) o[c] = pair(a[c], b[c]);
      }
      if (w_in % 2) {
        const uint16_t* a = in + (w_in - 1) * ci;
        uint32_t* o = out + (steps - 1) * ci;
        for (int64_t c = 0; c < ci; ++c) o[c] = pair(a[c], 0);
      }
    }
#pragma omp for schedule(static)
    for (int64_t row = 0; row < dz_rows; ++row) {
      // Three runs of a row, each one flat loop over (voxel, channel): the
      // pairs whose first voxel is before the row, those with both voxels in
      // it, and those whose second voxel is past it.
      const uint16_t* in = dz + row * w_out * co;
      uint32_t* out = dzp + row * (s + w_out) * co;  // its entry s*co is ow = 0
      const int64_t lead = std::min(s, w_out) * co, both = std::max<int64_t>(0, w_out - s) * co;
      for (int64_t k = 0; k < lead; ++k) out[k] = pair(0, in[k]);
      std::fill(out + lead, out + s * co, 0u);
      uint32_t* at_zero = out + s * co;
      const int64_t later = s * co;
      for (int64_t k = 0; k < both; ++k) at_zero[k] = pair(in[k], in[k + later]);
      for (int64_t k = both; k < w_out * co; ++k) at_zero[k] = pair(in[k], 0);
    }
  }
}

void Bf16KernelGradient::compute(const uint32_t* xp, const uint32_t* dzp, float* dk, int threads) const {
  threads = threads > 0 ? threads : omp_get_max_threads();
  const ConvGeometry& g = plan_.geometry;
  const int64_t dh_block = g.axes[2].kernel * g.out_channels * g.in_channels;
  const int64_t chunk = plan_.pairs_per_call;
  const std::vector<Piece> work = pieces(threads);
  const int64_t items = static_cast<int64_t>(work.size());
  const int team = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
  const int64_t x_row = plan_.x_row_bytes(), dz_row = plan_.dz_row_bytes(), dz_origin = plan_.dz_row_origin();
  const char* x_bytes = reinterpret_cast<const char*>(xp);
  const char* dz_bytes = reinterpret_cast<const char*>(dzp);
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (int64_t i = 0; i < items; ++i) {
    const Piece& p = work[static_cast<size_t>(i)];
    const std::vector<int64_t>& pairs = pairs_[static_cast<size_t>(p.dh)];
    const int64_t count = static_cast<int64_t>(pairs.size() / 2);
    codegen::KernelGradientArgs args{};
    args.x = reinterpret_cast<const float*>(xp);  // read as 32-bit bf16 pairs
    args.dz = reinterpret_cast<const float*>(dzp);
    args.dk = dk + p.dh * dh_block;
    args.tile_begin = p.tile_begin;
    args.tile_end = p.tile_end;
    args.block_begin = p.block_begin;
    args.block_end = p.block_end;
    int64_t start = 0;
    do {  // no pairs: one call with none stores the zeros
      args.pairs = pairs.data() + 2 * start;
      args.pair_count = std::min(chunk, count - start);
      args.accumulate = start > 0;
      // The rows' lines in address order ahead of the first tile (see
      // GeneratedKernelGradient::prefetch_rows).
      for (int64_t q = 0; q < args.pair_count; ++q) {
        for (int64_t at = 0; at < x_row; at += 64) __builtin_prefetch(x_bytes + args.pairs[2 * q] + at, 0, 2);
        const char* d = dz_bytes + args.pairs[2 * q + 1] - dz_origin;
        for (int64_t at = 0; at < dz_row; at += 64) __builtin_prefetch(d + at, 0, 2);
      }
      kernel_(&args);
      start += chunk;
    } while (start < count);
  }
}

void Bf16KernelGradient::run(const uint16_t* x, const uint16_t* dz, float* dk, int threads) const {
  threads = threads > 0 ? threads : omp_get_max_threads();
  const size_t x_count = static_cast<size_t>(x_pair_elements());
  const size_t dz_count = static_cast<size_t>(dz_pair_elements());
  // The pair arrays are kept between calls (fresh pages cost a fault each);
  // a concurrent caller that finds them taken uses its own.
  std::unique_lock<std::mutex> lock(scratch_mutex_, std::try_to_lock);
  std::unique_ptr<uint32_t[]> own_x, own_dz;
  uint32_t* xp = nullptr;
  uint32_t* dzp = nullptr;
  if (lock.owns_lock()) {
    if (!x_scratch_) {
      x_scratch_.reset(new uint32_t[x_count]);
      dz_scratch_.reset(new uint32_t[dz_count]);
    }
    xp = x_scratch_.get();
    dzp = dz_scratch_.get();
  } else {
    own_x.reset(new uint32_t[x_count]);
    own_dz.reset(new uint32_t[dz_count]);
    xp = own_x.get();
    dzp = own_dz.get();
  }
  repack(x, dz, xp, dzp, threads);
  compute(xp, dzp, dk, threads);
}

}  // namespace tconv3d
