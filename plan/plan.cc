#include "plan/plan.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "plan/kernel_name.hpp"
#include "plan/plan_blocking.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::codegen {
namespace {

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// The lane-packed W axis: one phase whose voxels are the super voxels q that
// hold an output, with the distinct input offsets of all phases as taps.
AxisPhase packed_w_phase(const AxisGeometry& ax) {
  AxisPhase p;
  p.first_q = floor_div(ax.crop_begin, ax.stride);
  p.first_out = p.first_q * ax.stride - ax.crop_begin;
  p.count = ax.out > 0 ? floor_div(ax.out - 1 + ax.crop_begin, ax.stride) - p.first_q + 1 : 0;
  std::set<int64_t> offsets;
  for (int64_t a = 0; a < ax.kernel; ++a) offsets.insert(a * ax.dilation / ax.stride);
  for (int64_t t : offsets) p.taps.push_back({-1, t});
  return p;
}

// The vectors of lane-packed input offset t (of packed) that hold a tap of
// some phase: lanes r * Cout .. r * Cout + Cout - 1 hold phase r's tap
// a * dilation = t * stride + r, if there is one.
bool packed_vector_used(const AxisGeometry& w, int64_t out_channels, int64_t offset, int lanes, int v) {
  for (int64_t r = 0; r < w.stride; ++r) {
    const int64_t reach = offset * w.stride + r;
    if (reach % w.dilation != 0 || reach / w.dilation >= w.kernel) continue;
    const int64_t lo = r * out_channels, hi = lo + out_channels;  // the phase's lanes
    if (lo < int64_t(v + 1) * lanes && hi > int64_t(v) * lanes) return true;
  }
  return false;
}

// Whether packing W phases into the lanes saves enough FMAs to pay for the
// zero weights. Counted per row of stride outputs (one super voxel against
// one voxel of each phase), so the answer, and with it the packed weight
// layout, never depends on the input's size. A super voxel of one vector
// must save a quarter of the FMAs (measured on the 4-filter head); one of
// several vectors skips its all-zero vectors and packs whenever that costs
// fewer FMAs than the phases' partly idle vectors (k3s2_op1_odd, 20 filters:
// 8 ymm FMAs per super voxel against 9, the lanes 94 % used against 83 %).
// Super voxels stay under 63 lanes (w_pack_lane_mask's bits) and their
// vectors form one channel group (the packed weights' layout) with a tile of
// at least two super voxels.
bool worth_packing(const std::vector<AxisPhase>& phases, const AxisPhase& packed, const AxisGeometry& w,
                   int64_t out_channels, int lanes, int registers, bool multi_vector) {
  if (w.stride < 2) return false;
  int64_t unpacked_taps = 0;
  for (const AxisPhase& p : phases) unpacked_taps += int64_t(p.taps.size());
  if (w.stride * out_channels <= lanes) return 4 * int64_t(packed.taps.size()) <= 3 * unpacked_taps;
  if (!multi_vector || w.stride * out_channels > 62) return false;
  const int packed_vectors = static_cast<int>((w.stride * out_channels + lanes - 1) / lanes);
  if (3 * packed_vectors + 1 > registers) return false;
  int64_t packed_fmas = 0;
  for (const PhaseTap& t : packed.taps)
    for (int v = 0; v < packed_vectors; ++v) packed_fmas += packed_vector_used(w, out_channels, t.offset, lanes, v);
  const int64_t unpacked_fmas = unpacked_taps * ((out_channels + lanes - 1) / lanes);
  return packed_fmas < unpacked_fmas;
}

// Splits the voxels of one W phase into tiles: as few as the register tile
// allows, with widths differing by at most one, so no tile is left with too
// few accumulators to hide the FMA latency (a lone border voxel would run at
// a quarter of the FMA rate). Tiles where every tap is valid (and, lane-
// packed, every lane stored: [full_lo, full_hi)) are interior and run in
// loops; the others are straight-line code with each voxel's valid taps fixed.
std::vector<WSegment> w_segments_of(const AxisPhase& phase, int64_t in_w, int64_t in_step, int tile_w,
                                    int64_t full_lo, int64_t full_hi) {
  std::vector<WSegment> segments;
  const int64_t n = phase.count;
  int64_t lo = full_lo, hi = full_hi;
  // Tap t reads input first_q + j * in_step - offset: inside 0..in_w-1 for
  // ceil((offset - first_q) / in_step) <= j < ceil((in_w + offset - first_q) / in_step).
  for (const PhaseTap& t : phase.taps) {
    lo = std::max(lo, ceil_div(t.offset - phase.first_q, in_step));
    hi = std::min(hi, ceil_div(in_w + t.offset - phase.first_q, in_step));
  }
  const int64_t tiles = (n + tile_w - 1) / tile_w;
  int64_t start = 0;
  for (int64_t k = 0; k < tiles; ++k) {
    const int width = static_cast<int>((n - start + (tiles - k) - 1) / (tiles - k));
    const bool interior = start >= lo && start + width <= hi;
    WSegment* last = segments.empty() ? nullptr : &segments.back();
    if (interior && last && last->interior && last->width == width)
      ++last->tiles;
    else
      segments.push_back({start, 1, width, interior});
    start += width;
  }
  return segments;
}

// The register tile's score: enough independent accumulators to hide the
// FMA latency, at least ~1.5 FMAs per load, few idle voxels or channel
// vectors. (Scoring for 2 FMAs per load with 32 registers picked 6x4 / 4x4
// tiles for unet_up_k2s2 / gan_k4s2_same: 4 % slower than 8x2 on the 16-core
// Xeon and here, in interleaved runs.)
double tile_score(int oc_vectors, int64_t voxels, int nv, int w) {
  const int acc = w * nv;
  const double latency = std::min(1.0, acc / 10.0);
  const double loads = std::min(1.0, (double(acc) / (w + nv)) / 1.5);
  const double voxel_use = double(voxels) / double(((voxels + w - 1) / w) * w);
  const double vector_use = double(oc_vectors) / double(((oc_vectors + nv - 1) / nv) * nv);
  return latency * loads * voxel_use * vector_use + 1e-4 * acc;
}

int widest_tile(int registers, int nv, int64_t voxels) {
  return static_cast<int>(std::min<int64_t>({(registers - nv - 1) / nv, voxels, 16}));
}

// The channel vectors of a tile (the packed weights' group size), chosen for
// rows of kNominalVoxels voxels per phase: from the layer alone, so every
// input shape shares one packed weight layout.
constexpr int64_t kNominalVoxels = 16;
int choose_oc_block(int registers, int oc_vectors) {
  int best = 1;
  double best_score = -1;
  for (int nv = 1; nv <= std::min(oc_vectors, 8); ++nv) {
    for (int w = 1; w <= widest_tile(registers, nv, kNominalVoxels); ++w) {
      const double score = tile_score(oc_vectors, kNominalVoxels, nv, w);
      if (score > best_score) {
        best_score = score;
        best = nv;
      }
    }
  }
  return best;
}

// The tile's voxels for this shape's rows, then evened out: tiles split a
// phase evenly (w_segments_of), so name the widest they get.
int choose_tile_w(int registers, int oc_vectors, int oc_block, int64_t max_phase_voxels) {
  const int64_t vox = std::max<int64_t>(max_phase_voxels, 1);
  int best = 1;
  double best_score = -1;
  for (int w = 1; w <= widest_tile(registers, oc_block, vox); ++w) {
    const double score = tile_score(oc_vectors, vox, oc_block, w);
    if (score > best_score) {
      best_score = score;
      best = w;
    }
  }
  const int64_t tiles = (vox + best - 1) / best;
  return static_cast<int>((vox + tiles - 1) / tiles);
}

void check_displacement(double bytes, const char* what) {
  if (bytes >= double(std::numeric_limits<int32_t>::max()) / 2)
    throw Error("layer", std::string("too large for the xbyak kernel: ") + what + " needs a " +
                             std::to_string(int64_t(bytes)) + "-byte displacement");
}

std::string phases_text(const std::vector<AxisPhase>& phases) {
  std::ostringstream out;
  for (const AxisPhase& p : phases) {
    out << "\n      r" << p.residue << ": first out " << p.first_out << ", " << p.count << " outputs, q0 "
        << p.first_q << ", taps [";
    for (size_t i = 0; i < p.taps.size(); ++i)
      out << (i ? " " : "") << "a" << p.taps[i].tap << "@-" << p.taps[i].offset;
    out << "]" << (p.taps.empty() ? " (no taps: bias + activation only)" : "");
  }
  return out.str();
}

std::string gradient_taps_text(const AxisPhase& p) {
  std::ostringstream out;
  for (size_t i = 0; i < p.taps.size(); ++i) out << (i ? " " : "") << "a" << p.taps[i].tap << "@+" << -p.taps[i].offset;
  return out.str();
}

std::string packed_phase_text(const AxisPhase& p) {
  std::ostringstream out;
  out << "\n      " << p.count << " super voxels, the first at output " << p.first_out << " (q0 " << p.first_q
      << "), input offsets [";
  for (size_t i = 0; i < p.taps.size(); ++i) out << (i ? " " : "") << p.taps[i].offset;
  out << "]";
  return out.str();
}

}  // namespace

std::vector<AxisPhase> axis_phases(const AxisGeometry& ax) {
  std::vector<AxisPhase> phases(static_cast<size_t>(ax.stride));
  for (int64_t r = 0; r < ax.stride; ++r) {
    AxisPhase& p = phases[static_cast<size_t>(r)];
    p.residue = r;
    p.first_out = floor_mod(r - ax.crop_begin, ax.stride);
    p.count = p.first_out < ax.out ? (ax.out - p.first_out + ax.stride - 1) / ax.stride : 0;
    p.first_q = floor_div(p.first_out + ax.crop_begin - r, ax.stride);
    for (int64_t a = 0; a < ax.kernel; ++a) {
      if ((a * ax.dilation) % ax.stride == r) p.taps.push_back({a, (a * ax.dilation - r) / ax.stride});
    }
  }
  return phases;
}

KernelPlan plan_skeleton(Isa isa) {
  if (isa != Isa::kAvx2 && isa != Isa::kAvx512)
    throw Error("isa", "the plan needs a resolved ISA (avx2 or avx512), got " + to_string(isa));
  KernelPlan plan;
  plan.isa = isa;
  plan.lanes = isa == Isa::kAvx512 ? 16 : 8;
  plan.vector_registers = isa == Isa::kAvx512 ? 32 : 16;
  return plan;
}

namespace {

KernelPlan make_plan_with_lanes(const Problem& problem, Isa isa, int lanes, const PlanOptions& options) {
  KernelPlan plan = plan_skeleton(isa);
  plan.lanes = lanes;
  if (!problem.fused_activation.is_elementwise())
    throw Error("activation", problem.fused_activation.name + " is not elementwise and cannot be fused");
  const ConvGeometry& g = problem.geometry;
  plan.geometry = g;
  plan.has_bias = problem.has_bias;
  plan.activation = problem.fused_activation;
  plan.dtype = problem.dtype;
  if (plan.bf16() && isa != Isa::kAvx512)
    throw Error("dtype", "bf16 kernels need AVX-512 (with AVX512_BF16), the plan was asked for " + to_string(isa));
  for (int axis = 0; axis < 3; ++axis) plan.phases[axis] = axis_phases(g.axes[axis]);
  if (options.pack_w_phases) {
    AxisPhase packed = packed_w_phase(g.axes[2]);
    if (worth_packing(plan.phases[2], packed, g.axes[2], g.out_channels, plan.lanes, plan.vector_registers,
                      options.pack_w_multi_vector)) {
      plan.w_pack = static_cast<int>(g.axes[2].stride);
      plan.phases[2] = {std::move(packed)};
    }
  }
  finish_plan(plan);
  return plan;
}

}  // namespace

KernelPlan make_plan(const Problem& problem, Isa isa, const PlanOptions& options) {
  KernelPlan plan = make_plan_with_lanes(problem, isa, isa == Isa::kAvx512 ? 16 : 8, options);
  if (isa != Isa::kAvx512 || !options.narrow_avx512) return plan;
  KernelPlan narrow = make_plan_with_lanes(problem, isa, 8, options);
  return 8 * w_fma_halves(plan) >= 9 * w_fma_halves(narrow) ? narrow : plan;
}

void finish_plan(KernelPlan& plan) {
  const ConvGeometry& g = plan.geometry;
  plan.oc_vectors = static_cast<int>((plan.vector_channels() + plan.lanes - 1) / plan.lanes);
  plan.tail_lanes = static_cast<int>(plan.vector_channels() % plan.lanes);
  int64_t max_voxels = 0;
  for (const AxisPhase& p : plan.phases[2]) max_voxels = std::max(max_voxels, p.count);
  // bf16 activates in the registers before the store: leave the activation
  // its scratch (at most 4 AVX-512 registers) besides the weights and broadcasts.
  const bool fused_activation = plan.bf16() && plan.activation.kind != ActivationKind::kLinear;
  const int tile_registers = plan.vector_registers - (fused_activation ? 4 : 0);
  // Lane-packed: the super voxel's vectors are one group (its weights are
  // packed as one, and each vector's zero weights are known per offset).
  plan.oc_block = plan.w_pack > 1 ? plan.oc_vectors : choose_oc_block(tile_registers, plan.oc_vectors);
  plan.tile_w = choose_tile_w(tile_registers, plan.oc_vectors, plan.oc_block, max_voxels);
  plan.oc_groups = (plan.oc_vectors + plan.oc_block - 1) / plan.oc_block;
  plan.last_group_vectors = plan.oc_vectors - (plan.oc_groups - 1) * plan.oc_block;

  size_t max_w_taps = 0;
  for (const AxisPhase& p : plan.phases[2]) max_w_taps = std::max(max_w_taps, p.taps.size());
  const int64_t per_ci = int64_t(max_w_taps) * (plan.oc_block + plan.tile_w * (1 + plan.oc_block));
  plan.cin_unroll = 1;
  for (int u : {8, 4, 2}) {
    if (u <= plan.contraction_steps() && per_ci * u <= 320) {
      plan.cin_unroll = u;
      break;
    }
  }
  plan.w_segments.clear();  // a plan may be finished again with other lanes
  for (const AxisPhase& p : plan.phases[2]) {
    int64_t full_lo = 0, full_hi = p.count;
    if (plan.w_pack > 1) {
      const int64_t all = (int64_t(1) << plan.vector_channels()) - 1;
      while (full_lo < full_hi && plan.w_pack_lane_mask(full_lo) != all) ++full_lo;
      while (full_hi > full_lo && plan.w_pack_lane_mask(full_hi - 1) != all) --full_hi;
    }
    plan.w_segments.push_back(w_segments_of(p, g.axes[2].in, plan.w_input_step(), plan.tile_w, full_lo, full_hi));
  }
  // The weights one row touches (all groups, every D/H tap of its phase
  // class): above ~half of a 2 MB L2, split the groups.
  int64_t max_dh_taps = 0;
  for (const AxisPhase& pd : plan.phases[0])
    for (const AxisPhase& ph : plan.phases[1])
      max_dh_taps = std::max<int64_t>(max_dh_taps, int64_t(pd.taps.size() * ph.taps.size()));
  const double row_weight_bytes = 4.0 * double(max_dh_taps) * double(plan.weights_per_dh_tap());
  plan.split_groups = plan.oc_groups > 1 && row_weight_bytes > 1024.0 * 1024.0;
  plan.activation_row_pass = plan.activation.kind != ActivationKind::kLinear && !plan.bf16();
  plan.transpose_channels_first = g.data_format == DataFormat::kChannelsFirst;

  // Every displacement the emitter encodes must fit a signed 32-bit field
  // (a tile's input voxels spread over tile_w * input step voxels).
  const AxisGeometry& w = g.axes[2];
  const int64_t tile_spread = (plan.w_input_step() - 1) * plan.tile_w;
  check_displacement(4.0 * double(w.in + w.kernel * w.dilation + tile_spread) * double(g.in_channels),
                     "an input row");
  check_displacement(4.0 * double(w.out + w.stride) * double(plan.padded_out_channels()), "an output row");
  check_displacement(4.0 * double(plan.weights_per_dh_tap()), "a weight block");
}

KernelPlan KernelPlan::for_group(int group) const {
  if (group < 0 || group >= oc_groups)
    throw Error("group", "channel group " + std::to_string(group) + " outside 0.." + std::to_string(oc_groups - 1));
  KernelPlan plan = *this;
  plan.only_group = group;
  return plan;
}

int64_t KernelPlan::weights_per_dh_tap() const {
  int64_t taps = 0;
  for (int rw = 0; rw < static_cast<int>(phases[2].size()); ++rw) taps += w_taps(rw);
  return taps * contraction_steps() * padded_out_channels();
}

int64_t KernelPlan::w_pack_lane_mask(int64_t j) const {
  const AxisGeometry& w = geometry.axes[2];
  const int64_t first = phases[2].front().first_out + j * w.stride;
  int64_t mask = 0;
  for (int64_t lane = 0; lane < std::min<int64_t>(vector_channels(), 63); ++lane) {
    const int64_t o = first + lane / geometry.out_channels;
    if (o >= 0 && o < w.out) mask |= int64_t(1) << lane;
  }
  return mask;
}

bool KernelPlan::w_pack_vector_used(size_t widx, int v) const {
  if (w_pack == 1) return true;
  return packed_vector_used(geometry.axes[2], geometry.out_channels, phases[2].front().taps[widx].offset, lanes, v);
}

uint32_t KernelPlan::w_pack_input_lanes(size_t widx, int v) const {
  const uint32_t all = lanes >= 32 ? ~uint32_t(0) : (uint32_t(1) << lanes) - 1;
  if (w_pack == 1) return all;
  const AxisGeometry& w = geometry.axes[2];
  const int64_t cout = geometry.out_channels;
  uint32_t bits = 0;
  for (int l = 0; l < lanes; ++l) {
    const int64_t channel = int64_t(v) * lanes + l;
    const int64_t r = channel / cout;
    const int64_t reach = phases[2].front().taps[widx].offset * w.stride + r;
    const bool weight = r < w_pack && reach >= 0 && reach % w.dilation == 0 && reach / w.dilation < w.kernel;
    if (channel >= vector_channels() || weight) bits |= uint32_t(1) << l;
  }
  return bits;
}

int64_t KernelPlan::weights_phase_offset(int rw) const {
  int64_t taps = 0;
  for (int r = 0; r < rw; ++r) taps += w_taps(r);
  return taps * contraction_steps() * padded_out_channels();
}

int64_t KernelPlan::weights_group_stride(int rw) const {
  return w_taps(rw) * contraction_steps() * oc_block * lanes;
}

int64_t KernelPlan::packed_weight_count() const {
  return geometry.axes[0].kernel * geometry.axes[1].kernel * weights_per_dh_tap();
}

bool KernelPlan::w_tap_valid(int rw, int64_t j, size_t widx) const {
  const AxisPhase& p = phases[2][rw];
  const int64_t i = p.first_q + j * w_input_step() - p.taps[widx].offset;
  return i >= 0 && i < geometry.axes[2].in;
}

KernelPlan::WTapMask KernelPlan::w_tap_mask(int rw, const WSegment& segment) const {
  const size_t taps = phases[2][rw].taps.size();
  WTapMask valid(taps, std::vector<bool>(static_cast<size_t>(segment.width), segment.interior));
  if (segment.interior) return valid;
  for (size_t t = 0; t < taps; ++t)
    for (int p = 0; p < segment.width; ++p) valid[t][p] = w_tap_valid(rw, segment.first + p, t);
  return valid;
}

std::vector<std::pair<int64_t, int64_t>> valid_taps(const KernelPlan& plan, int axis, int64_t o) {
  // From the geometry, not the phases: a lane-packed W axis has no per-residue phases.
  const AxisGeometry& ax = plan.geometry.axes[axis];
  std::vector<std::pair<int64_t, int64_t>> pairs;
  if (plan.pass == PlanPass::kInputGradient) {
    for (int64_t a = 0; a < ax.kernel; ++a) {
      const int64_t i = o * ax.stride + a * ax.dilation - ax.crop_begin;
      if (i >= 0 && i < ax.in) pairs.emplace_back(a, i);
    }
    return pairs;
  }
  for (int64_t a = 0; a < ax.kernel; ++a) {
    const int64_t reach = o + ax.crop_begin - a * ax.dilation;
    if (floor_mod(reach, ax.stride) != 0) continue;
    const int64_t i = reach / ax.stride;
    if (i >= 0 && i < ax.in) pairs.emplace_back(a, i);
  }
  return pairs;
}

int64_t w_fma_halves(const KernelPlan& plan) {
  int64_t vector_fmas = 0;
  for (size_t rw = 0; rw < plan.phases[2].size(); ++rw)
    for (size_t t = 0; t < plan.phases[2][rw].taps.size(); ++t)
      for (int v = 0; v < plan.oc_vectors; ++v) vector_fmas += plan.w_pack_vector_used(t, v);
  return vector_fmas * (plan.lanes / 8);
}

Isa automatic_forward_isa(const Problem& problem, Isa widest, Backend backend) {
  if (widest != Isa::kAvx512 || !problem.fused_activation.is_elementwise()) return widest;
  KernelPlan wide, narrow;
  try {
    wide = plan_for_backend(problem, Isa::kAvx512, backend);
    narrow = plan_for_backend(problem, Isa::kAvx2, backend);
  } catch (const Error&) {
    return widest;  // the generator reports it, for the ISA it was given
  }
  // AVX2 only where it saves at least an eighth of the FMA work: AVX-512's
  // twice the registers make larger tiles (full-lane layers ran 4-12 % faster
  // with AVX-512 on Zen 4 at the same FMA count). An Xbyak AVX-512 plan has
  // made that choice itself (ymm vectors), so it never loses to AVX2.
  return 8 * w_fma_halves(wide) >= 9 * w_fma_halves(narrow) ? Isa::kAvx2 : Isa::kAvx512;
}

int64_t row_cost(const KernelPlan& plan, int64_t od, int64_t oh) {
  const int64_t dh = int64_t(valid_taps(plan, 0, od).size() * valid_taps(plan, 1, oh).size());
  int64_t w_work = 0;
  for (size_t rw = 0; rw < plan.phases[2].size(); ++rw)
    w_work += plan.phases[2][rw].count * int64_t(plan.phases[2][rw].taps.size());
  // FMAs for the reduction plus one store per voxel and vector.
  return (dh * w_work * plan.geometry.in_channels + plan.geometry.axes[2].out) * plan.oc_vectors;
}

std::string KernelPlan::to_string() const {
  const ConvGeometry& g = geometry;
  static const char* kAxis[3] = {"D", "H", "W"};
  std::ostringstream out;
  out << "kernel " << kernel_name(*this) << "\n";
  const bool gradient = pass == PlanPass::kInputGradient;
  if (gradient)
    out << "  input gradient: a strided convolution, dx row (n, i_d, i_h) from the dz rows it wrote to;"
           " input = dz, output = dx below, per axis dx voxel i reads dz i*stride + a*dilation - crop_begin\n";
  out << "  isa " << tconv3d::to_string(isa) << ": " << lanes << " fp32 lanes, " << vector_registers
      << " vector registers"
      << (isa == Isa::kAvx512 && lanes == 8 ? " (ymm vectors: fewer 256-bit FMAs than zmm for these channels)" : "")
      << "\n";
  if (bf16())
    out << "  dtype bf16: bf16 input/output/weights, vdpbf16ps over " << contraction_steps()
        << " channel pairs, float32 accumulators, bias and activation (fused before the bf16 store)\n";
  out << "  input  " << shape_to_string(g.input_shape()) << ", output " << shape_to_string(g.output_shape()) << " ("
      << tconv3d::to_string(g.data_format) << ")"
      << (transpose_channels_first ? ": transposed to channels_last around the kernel" : "") << "\n";
  out << "  channels: " << g.in_channels << " in, " << g.out_channels << " out = " << oc_vectors << " vectors in "
      << oc_groups << " group(s) of " << oc_block << " (last group " << last_group_vectors << " vectors";
  if (tail_lanes) out << ", last vector " << tail_lanes << " of " << lanes << " lanes, masked";
  out << ")\n";
  for (int a = 0; a < 3; ++a) {
    const AxisGeometry& ax = g.axes[a];
    out << "  axis " << kAxis[a] << ": in " << ax.in << " kernel " << ax.kernel << " stride " << ax.stride
        << " dilation " << ax.dilation << " crop_begin " << ax.crop_begin << " out " << ax.out << "; ";
    if (gradient)
      out << "one phase, taps [" << gradient_taps_text(phases[a].front()) << "]"
          << (a == 2 ? ", input step " + std::to_string(w_input_step()) : std::string()) << "\n";
    else if (a == 2 && w_pack > 1)
    {
      out << "lane-packed: " << (oc_vectors == 1 ? "each vector holds " : "each super voxel of " +
                                 std::to_string(oc_vectors) + " vectors holds ")
          << w_pack << " consecutive voxels (one per phase) x " << g.out_channels << " channels;"
          << packed_phase_text(phases[a].front());
      if (oc_vectors > 1) {
        out << "\n      vectors with weights (the others hold zeros, skipped):";
        for (size_t t = 0; t < phases[a].front().taps.size(); ++t) {
          out << " offset " << phases[a].front().taps[t].offset << " [";
          for (int v = 0; v < oc_vectors; ++v) out << (w_pack_vector_used(t, v) ? "x" : ".");
          out << "]";
        }
      }
      out << "\n";
    }
    else
      out << phases[a].size() << " phase(s)" << phases_text(phases[a]) << "\n";
  }
  out << "  register tile: " << tile_w << " W voxels x " << oc_block << " vectors = " << tile_w * oc_block
      << " accumulators, " << oc_block << " weight + 1-2 broadcast registers; Cin unrolled x" << cin_unroll << "\n";
  if (gradient)
    out << "  loops: per dx row (n, i_d, i_h) one call; the dz rows it reads come at run time;"
           " per channel group, W tile: dz rows x filters x W taps in registers\n";
  else
    out << "  loops: per output row (n, od, oh) one call; D/H taps valid for the row come at run time;"
           " per W phase, channel group, W tile: row taps x Cin x W taps in registers\n";
  for (size_t rw = 0; rw < w_segments.size(); ++rw) {
    out << "  W phase " << rw << ":";
    for (const WSegment& s : w_segments[rw]) {
      out << " [" << (s.interior ? "loop" : "edge") << " j=" << s.first << ": ";
      if (s.interior) out << s.tiles << " tiles x ";
      out << s.width << " voxels]";
    }
    if (w_segments[rw].empty()) out << " (no outputs)";
    out << "\n";
  }
  if (gradient)
    out << "  epilogue: none (accumulators start at 0; dz is the gradient of the pre-activation output)\n";
  else
    out << "  epilogue: " << (has_bias ? "bias loaded as the accumulators' start" : "no bias (accumulators start at 0)")
      << "; activation " << activation.name
      << (activation_row_pass ? " in a load-activate-store pass over each finished row"
          : bf16() && activation.kind != ActivationKind::kLinear ? " on the float32 accumulators before the bf16 store"
                                                                 : " (none)")
      << "\n";
  if (only_group >= 0)
    out << "  this kernel: channel group " << only_group << " only\n";
  out << "  threads: " << (split_groups ? "(channel group, n, D/H phase class, od, oh)" : "(n, D/H phase class, od, oh)")
      << " work items in contiguous chunks of equal tap cost\n";
  out << "  packed weights: " << packed_weight_count()
      << (gradient ? " floats as [kd][kh][channel group][filter][W tap][vector][lane: input channel]\n"
                   : bf16() ? " dwords (bf16 pairs) as [kd][kh][W phase][channel group][ci pair][W tap][vector]"
                              "[lane][2]\n"
                            : " floats as [kd][kh][W phase][channel group][ci][W tap][vector][lane]\n");
  out << "  cache key: " << cache_key() << "\n";
  return out.str();
}

std::string KernelPlan::cache_key() const {
  // The code depends on the W axis, the channels, the kernel's tap structure,
  // the blocking and the activation; D/H sizes and the batch only change the
  // row list the executor passes in.
  const ConvGeometry& g = geometry;
  std::ostringstream key;
  key << "xbyak/" << tconv3d::to_string(isa) << "/ci" << g.in_channels << "/co" << g.out_channels;
  for (int a = 0; a < 3; ++a) {
    const AxisGeometry& ax = g.axes[a];
    key << "/k" << ax.kernel << "s" << ax.stride << "d" << ax.dilation;
  }
  const AxisGeometry& w = g.axes[2];
  key << "/w" << w.in << "c" << w.crop_begin << "o" << w.out << "/" << tconv3d::to_string(g.data_format);
  key.precision(17);
  key << "/act" << static_cast<int>(activation.kind) << ":" << activation.alpha << ":"
      << (activation.max_value ? *activation.max_value : std::nan("")) << ":" << activation.threshold;
  key << "/t" << tile_w << "x" << oc_block << "u" << cin_unroll << "/g" << only_group << "/p" << w_pack;
  if (isa == Isa::kAvx512 && lanes == 8) key << "/ymm";  // AVX-512 in 8-lane vectors
  if (pass == PlanPass::kInputGradient) key << "/dx";  // the relation differs; forward keys stay as they were
  if (bf16()) key << "/bf16";
  return key.str();
}

std::string KernelPlan::weight_layout_key() const {
  // What pack_weights() and pack_bias() read: the lanes, the channels, the
  // kernel's extent, the W taps of each phase (or super voxel) and the
  // channel blocking.
  const ConvGeometry& g = geometry;
  std::ostringstream key;
  key << "l" << lanes << "/ci" << g.in_channels << "/co" << g.out_channels << "/k" << g.axes[0].kernel << "x"
      << g.axes[1].kernel << "x" << g.axes[2].kernel << "/p" << w_pack << "/b" << oc_block << "/w";
  for (const AxisPhase& p : phases[2]) {
    key << "[";
    for (const PhaseTap& t : p.taps) key << t.tap << ":" << t.offset << ",";
    key << "]";
  }
  // Transposed: the contraction runs over the filters, the lanes over the input channels.
  if (pass == PlanPass::kInputGradient) key << "/dx";
  if (bf16()) key << "/bf16";  // channel pairs of bf16
  return key.str();
}

KernelPlan plan_for_backend(const Problem& problem, Isa isa, Backend backend) {
  switch (backend) {
    case Backend::kXbyak:
      return make_plan(problem, isa, PlanOptions{});
    case Backend::kLlvm: {
      // The IR emitter does not skip a packed offset's zero vectors (it would
      // compute them, as dead FMAs): it keeps super voxels of one vector.
      PlanOptions options;
      options.pack_w_multi_vector = false;
      options.narrow_avx512 = false;
      return make_plan(problem, isa, options);
    }
    default:
      throw Error("backend", to_string(backend) + " runs no generated code and has no kernel plan");
  }
}

}  // namespace tconv3d::codegen
