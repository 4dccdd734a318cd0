#include "plan/kernel_gradient_plan.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "tconv3d/error.hpp"

namespace tconv3d::codegen {
namespace {

struct Layout {
  int rows = 0;
  int ci_vectors = 0;
  std::vector<RowTileClass> classes;
  double cycles = 0;
};

// Vector registers a tile needs: accumulators, the x vectors, and one for the
// broadcast dz value (AVX2: also the tail mask of masked loads). AVX-512's
// broadcast memory operand would save it, but repeats the load for every ci
// vector: one load per FMA, too many where two zmm FMAs issue per cycle.
// (The emitter still uses it for single-vector blocks.)
int registers_needed(int rows, int ci_vectors) { return rows * ci_vectors + ci_vectors + 1; }

// Estimated cycles of one W step of an r x c tile: two FMAs and two loads
// per cycle (x vectors plus broadcasts), and at least the FMA latency (4)
// when too few accumulators are independent; half a cycle of loop overhead.
double step_cycles(int r, int c) {
  const double fma = r * c / 2.0, loads = (r + c) / 2.0;
  return std::max({fma, loads, 4.0}) + 0.5;
}

// Tiles of one kw each: co split into groups of at most `rows`, sizes
// differing by at most one, as two classes (larger groups first).
std::vector<RowTileClass> single_kw_classes(int64_t kw, int64_t co, int rows) {
  std::vector<RowTileClass> classes;
  const int groups = static_cast<int>((co + rows - 1) / rows);
  const int small = static_cast<int>(co / groups), large_count = static_cast<int>(co % groups);
  int tile = 0;
  for (int k = 0; k < kw; ++k) {
    if (large_count > 0) {
      classes.push_back({tile, large_count, k, 1, 0, small + 1});
      tile += large_count;
    }
    if (groups > large_count) {
      classes.push_back({tile, groups - large_count, k, 1, large_count * (small + 1), small});
      tile += groups - large_count;
    }
  }
  return classes;
}

// Tiles of every output channel of kw_count consecutive kw.
std::vector<RowTileClass> multi_kw_classes(int64_t kw, int64_t co, int kw_count) {
  std::vector<RowTileClass> classes;
  int tile = 0;
  for (int k = 0; k < kw; k += kw_count)
    classes.push_back({tile++, 1, k, static_cast<int>(std::min<int64_t>(kw_count, kw - k)), 0, static_cast<int>(co)});
  return classes;
}

double layout_cycles(const std::vector<RowTileClass>& classes, int64_t ci, int lanes, int ci_vectors) {
  const int64_t vectors = (ci + lanes - 1) / lanes;
  const int64_t uniform = vectors / ci_vectors;
  const int tail = static_cast<int>(vectors % ci_vectors);
  double cycles = 0;
  for (const RowTileClass& c : classes) {
    double per_tile = double(uniform) * step_cycles(c.rows(), ci_vectors);
    if (tail) per_tile += step_cycles(c.rows(), tail);
    cycles += c.count * per_tile;
  }
  return cycles;
}

void check_displacement(double bytes, const char* what) {
  if (bytes >= double(std::numeric_limits<int32_t>::max()) / 2)
    throw Error("layer", std::string("too large for the xbyak kernel-gradient kernel: ") + what + " needs a " +
                             std::to_string(int64_t(bytes)) + "-byte displacement");
}

}  // namespace

KernelGradientPlan make_kernel_gradient_plan(const Problem& problem, Isa isa, DataType dtype) {
  if (isa != Isa::kAvx2 && isa != Isa::kAvx512)
    throw Error("isa", "the kernel-gradient plan needs a resolved ISA (avx2 or avx512), got " + to_string(isa));
  if (dtype == DataType::kBfloat16 && isa != Isa::kAvx512)
    throw Error("isa", "the bf16 kernel-gradient plan is AVX-512 code (vdpbf16ps), got " + to_string(isa));
  const ConvGeometry& g = problem.geometry;
  validate_geometry(g);
  KernelGradientPlan plan;
  plan.isa = isa;
  plan.dtype = dtype;
  plan.lanes = isa == Isa::kAvx512 ? 16 : 8;
  plan.vector_registers = isa == Isa::kAvx512 ? 32 : 16;
  plan.geometry = g;
  const AxisGeometry& w = g.axes[2];
  const int64_t ci = g.in_channels, co = g.out_channels;
  // (bf16: 4 bytes per channel of a voxel pair; the dz pair rows are stride longer)
  check_displacement(4.0 * double(w.in) * double(ci), "an input row");
  check_displacement(
      4.0 * double(w.out + w.kernel * w.dilation + w.crop_begin + (dtype == DataType::kBfloat16 ? w.stride : 0)) *
          double(co),
      "an output row");
  check_displacement(4.0 * double(w.kernel) * double(co) * double(ci), "a (kd, kh) block of the kernel");

  // The cheapest register tile by the cost model; ties go to the larger tile
  // (fewer passes over the rows of x and dz).
  //
  // Wide AVX-512 ci axes (8 or more zmm vectors: 128+ input channels) take
  // tiles of 3 ci vectors and at most 8 rows. The cost model counts only
  // FMAs and load slots; with zmm (one FMA per cycle, up to 2 loads) every
  // tile it can choose is FMA-bound in it, within 3 % of each other. What
  // separates them on these layers is memory: a call's rows (384 KB) come
  // from L2 at every W step, and the first pass over them from L3 or DRAM
  // (unet_up_k2s2 at 1/16 of its D*H runs at 97 % with any tile, at full size
  // 73-78 % with 13x2). There the measured rate falls as the rows per tile
  // grow past 8 (more broadcast dz values per step, spread over one or two dz
  // lines, for the same x lines), and rises with the ci vectors per tile
  // (fewer passes over dz) until the x lines per FMA (1/rows) dominate.
  // Measured on Zen 4 (1 thread, % of the FMA peak, forced tiles interleaved
  // in one run, load 6-8 on 2 cores), unet_up_k2s2: 2 vectors x 8/10/11/12/13
  // rows 83/82/81/78/75; 3 vectors x 4/5/8/9 rows 78/78/85/84 (7 rows like
  // 8); 6x4 82, 4x6 79. The same gap at 240 and 272 input channels (no
  // power-of-two strides), so it is not L1 set aliasing. gan_k4s2_same,
  // video_k144s122 and unet_up_k2s2_cf: 8x3 equal to 13x2 or better. With fewer vectors a
  // 3-vector block leaves a one-vector tail (64 channels: 3 + 1) that costs
  // more than it saves (batch8_k3s2, k3s2_same: 8x3 2-6 points below), so
  // there, and with AVX2 (16 registers), the cost model's choice stands.
  // The tile only changes which dK elements a call's accumulators hold, never
  // the order of a dK element's terms (pairs, then W), so results stay
  // bitwise identical for any thread count.
  //
  // TCONV3D_DK_TILE=r,c forces a tile (for experiments only: benchmarks
  // compare tiles with it; the kernel is correct for any tile).
  const int64_t ci_total_vectors = (ci + plan.lanes - 1) / plan.lanes;
  const bool wide_avx512 = isa == Isa::kAvx512 && ci_total_vectors >= 8;
  const int max_vectors = static_cast<int>(std::min<int64_t>(ci_total_vectors, 8));
  int force_r = 0, force_c = 0;
  if (const char* f = std::getenv("TCONV3D_DK_TILE")) {
    if (std::sscanf(f, "%d,%d", &force_r, &force_c) != 2 || force_r < 1 || force_c < 1 || force_c > max_vectors ||
        registers_needed(force_r, force_c) > plan.vector_registers)
      throw Error("TCONV3D_DK_TILE", std::string("wants rows,vectors of a tile that fits the registers, got '") + f +
                                         "'");
  }
  Layout best;
  for (int c = 1; c <= max_vectors; ++c) {
    if (force_c ? c != force_c : wide_avx512 && c != 3) continue;
    for (int r = 1; registers_needed(r, c) <= plan.vector_registers; ++r) {
      if (force_r ? r != force_r : wide_avx512 && r > 8) continue;
      std::vector<std::vector<RowTileClass>> options;
      if (r <= co || co * 2 > r) options.push_back(single_kw_classes(w.kernel, co, std::min<int>(r, int(co))));
      if (co * 2 <= r && w.kernel > 1) options.push_back(multi_kw_classes(w.kernel, co, static_cast<int>(r / co)));
      for (auto& classes : options) {
        const double cycles = layout_cycles(classes, ci, plan.lanes, c);
        const int size = r * c;
        if (best.classes.empty() || cycles < best.cycles * 0.999 ||
            (cycles <= best.cycles * 1.001 && size > best.rows * best.ci_vectors)) {
          best.rows = r;
          best.ci_vectors = c;
          best.classes = std::move(classes);
          best.cycles = cycles;
        }
      }
    }
  }
  plan.ci_vectors = best.ci_vectors;
  plan.classes = std::move(best.classes);
  plan.rows = 0;
  for (const RowTileClass& c : plan.classes) plan.rows = std::max(plan.rows, c.rows());
  plan.tiles = plan.classes.back().first_tile + plan.classes.back().count;

  const int64_t block_channels = int64_t(plan.ci_vectors) * plan.lanes;
  plan.uniform_blocks = static_cast<int>(ci / block_channels);
  const int64_t left = ci - plan.uniform_blocks * block_channels;
  plan.tail_block_vectors = static_cast<int>((left + plan.lanes - 1) / plan.lanes);
  plan.tail_lanes = static_cast<int>(left % plan.lanes);
  plan.ci_blocks = plan.uniform_blocks + (plan.tail_block_vectors ? 1 : 0);
  plan.w_unroll = plan.rows * plan.ci_vectors < 16 ? 2 : 1;

  // Pairs per call. A call runs every tile and ci block of its range over
  // its pairs, tile by tile, so a tile's dz lines stay in L1 across the ci
  // blocks, and the x rows (every ci block) are read again for each tile.
  // Where a W step does much work per line it reads (the larger AVX-512
  // tiles: under 0.8 bytes of x and dz per lane-FMA), those reads may come
  // from L2: the pairs fill 384 KB of a 1 MB L2, which also holds the dK
  // block (fewer calls, fewer loads and stores of the accumulators).
  // Otherwise the call's x rows and a tile's dz lines (one per W step and kw)
  // must stay in L1: 12 KB of them, but at least 16 W steps per call.
  // Measured on Zen 4, % of the FMA peak: AVX2 6x2 tiles on unet_up_k2s2 61
  // with L2-sized calls, 75 with L1-sized; on k3s1_same 70 / 90; AVX-512
  // 13x2 tiles on gan_k4s2_same 94 with L2-sized calls, 86 with L1-sized.
  const int64_t steps = plan.w_steps();
  const int64_t pair_bytes = plan.x_row_bytes() + plan.dz_row_bytes();
  const double step_bytes = 4.0 * plan.ci_vectors * plan.lanes + 64.0;
  const double step_lane_fmas = double(plan.rows) * plan.ci_vectors * plan.lanes;
  if (step_bytes / step_lane_fmas < 0.8) {
    plan.pairs_per_call = std::max<int64_t>(1, (int64_t(384) << 10) / pair_bytes);
  } else {
    int max_kw = 1;
    for (const RowTileClass& c : plan.classes) max_kw = std::max(max_kw, c.kw_count);
    const int64_t l1_pair_bytes = 4 * steps * ci + 64 * steps * max_kw;
    plan.pairs_per_call = std::max<int64_t>({1, (16 + steps - 1) / steps, (int64_t(12) << 10) / l1_pair_bytes});
  }

  // Per class, the runs of W steps (input voxels, or bf16 voxel pairs) with
  // the same valid kw taps.
  const int64_t voxels_per_step = plan.bf16() ? 2 : 1;
  for (const RowTileClass& c : plan.classes) {
    std::vector<KgWSegment> segments;
    for (int64_t iw = 0; iw < steps; ++iw) {
      std::vector<bool> valid(static_cast<size_t>(c.kw_count));
      bool any = false;
      for (int k = 0; k < c.kw_count; ++k) {
        bool v = false;
        for (int64_t u = 0; u < voxels_per_step; ++u) {
          const int64_t voxel = iw * voxels_per_step + u;
          const int64_t ow = voxel * w.stride + (c.kw_first + k) * w.dilation - w.crop_begin;
          v = v || (voxel < w.in && ow >= 0 && ow < w.out);
        }
        valid[static_cast<size_t>(k)] = v;
        any = any || v;
      }
      if (!any) continue;
      if (!segments.empty() && segments.back().first + segments.back().count == iw && segments.back().kw_valid == valid)
        ++segments.back().count;
      else
        segments.push_back({iw, 1, std::move(valid)});
    }
    plan.w_segments.push_back(std::move(segments));
  }
  return plan;
}

int64_t KernelGradientPlan::w_steps() const {
  const int64_t in = geometry.axes[2].in;
  return bf16() ? (in + 1) / 2 : in;
}

int64_t KernelGradientPlan::x_row_bytes() const { return 4 * w_steps() * geometry.in_channels; }

int64_t KernelGradientPlan::dz_row_bytes() const {
  const AxisGeometry& w = geometry.axes[2];
  return 4 * (w.out + (bf16() ? w.stride : 0)) * geometry.out_channels;
}

int64_t KernelGradientPlan::dz_row_origin() const {
  return bf16() ? 4 * geometry.axes[2].stride * geometry.out_channels : 0;
}

int64_t KernelGradientPlan::fmas_per_pair(int tile_begin, int tile_end, int block_begin, int block_end) const {
  int64_t vectors = 0;
  for (int b = block_begin; b < block_end; ++b) vectors += b < uniform_blocks ? ci_vectors : tail_block_vectors;
  int64_t fmas = 0;
  for (size_t k = 0; k < classes.size(); ++k) {
    const RowTileClass& c = classes[k];
    const int lo = std::max(tile_begin, c.first_tile), hi = std::min(tile_end, c.first_tile + c.count);
    if (lo >= hi) continue;
    int64_t row_steps = 0;
    for (const KgWSegment& s : w_segments[k]) {
      int valid = 0;
      for (bool v : s.kw_valid) valid += v ? 1 : 0;
      row_steps += s.count * valid * c.co_count;
    }
    fmas += (hi - lo) * row_steps * vectors;
  }
  return fmas;
}

std::string KernelGradientPlan::to_string() const {
  const ConvGeometry& g = geometry;
  const AxisGeometry& w = g.axes[2];
  std::ostringstream out;
  out << "kernel gradient (dK), " << (bf16() ? "bf16 voxel pairs (vdpbf16ps), " : "") << tconv3d::to_string(isa)
      << ", " << lanes << " lanes, " << vector_registers
      << " registers\n  channels " << g.in_channels << " in, " << g.out_channels << " out; W in " << w.in << " out "
      << w.out << " kernel " << w.kernel << " stride " << w.stride << " dilation " << w.dilation << " crop "
      << w.crop_begin << "\n  tile: up to " << rows << " rows x " << ci_vectors << " ci vectors; " << ci_blocks
      << " ci blocks (" << uniform_blocks << " uniform";
  if (tail_block_vectors) out << ", last " << tail_block_vectors << " vectors, tail lanes " << tail_lanes;
  out << "); w unroll " << w_unroll << "; " << pairs_per_call << " row pairs per call\n  row tiles " << tiles << ":";
  for (size_t k = 0; k < classes.size(); ++k) {
    const RowTileClass& c = classes[k];
    out << "\n    tiles " << c.first_tile << ".." << c.first_tile + c.count - 1 << ": kw " << c.kw_first << "+"
        << c.kw_count << ", co " << c.co_first << " + i*" << c.co_count << ", " << c.co_count << " per kw; W segments";
    for (const KgWSegment& s : w_segments[k]) {
      out << " [" << s.first << "+" << s.count << ":";
      for (bool v : s.kw_valid) out << (v ? '1' : '0');
      out << "]";
    }
  }
  return out.str();
}

std::string KernelGradientPlan::cache_key() const {
  // The code depends on the W axis, the channels and the blocking; the D/H
  // sizes, their taps and the batch only change the pair lists and dK block
  // passed at run time.
  const ConvGeometry& g = geometry;
  const AxisGeometry& w = g.axes[2];
  std::ostringstream key;
  key << (bf16() ? "xbyak-dk-bf16/" : "xbyak-dk/") << tconv3d::to_string(isa) << "/ci" << g.in_channels << "/co"
      << g.out_channels << "/w" << w.in << "k" << w.kernel << "s" << w.stride << "d" << w.dilation << "c"
      << w.crop_begin << "o" << w.out << "/r" << rows << "v" << ci_vectors << "u" << w_unroll;
  for (const RowTileClass& c : classes)
    key << "/" << c.first_tile << "," << c.count << "," << c.kw_first << "," << c.kw_count << "," << c.co_first << ","
        << c.co_count;
  return key.str();
}

std::vector<int64_t> kernel_gradient_row_pairs(const KernelGradientPlan& plan, int64_t kd, int64_t kh) {
  std::vector<int64_t> pairs = kernel_gradient_row_pairs(plan.geometry, kd, kh);
  if (!plan.bf16()) return pairs;
  // Same rows, counted in the pair arrays' row sizes.
  const ConvGeometry& g = plan.geometry;
  const int64_t x_row = 4 * g.axes[2].in * g.in_channels, dz_row = 4 * g.axes[2].out * g.out_channels;
  for (size_t k = 0; k < pairs.size(); k += 2) {
    pairs[k] = pairs[k] / x_row * plan.x_row_bytes();
    pairs[k + 1] = pairs[k + 1] / dz_row * plan.dz_row_bytes() + plan.dz_row_origin();
  }
  return pairs;
}

std::vector<int64_t> kernel_gradient_row_pairs(const ConvGeometry& g, int64_t kd, int64_t kh) {
  const AxisGeometry &d = g.axes[0], &h = g.axes[1], &w = g.axes[2];
  std::vector<int64_t> pairs;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t id = 0; id < d.in; ++id) {
      const int64_t od = id * d.stride + kd * d.dilation - d.crop_begin;
      if (od < 0 || od >= d.out) continue;
      for (int64_t ih = 0; ih < h.in; ++ih) {
        const int64_t oh = ih * h.stride + kh * h.dilation - h.crop_begin;
        if (oh < 0 || oh >= h.out) continue;
        pairs.push_back(4 * ((n * d.in + id) * h.in + ih) * w.in * g.in_channels);
        pairs.push_back(4 * ((n * d.out + od) * h.out + oh) * w.out * g.out_channels);
      }
    }
  return pairs;
}

}  // namespace tconv3d::codegen
