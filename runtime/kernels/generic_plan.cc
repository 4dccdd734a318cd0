#include "runtime/kernels/generic_plan.hpp"

#include <algorithm>

#include "plan/plan.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::generic {

const char* to_string(GenericIsa isa) {
  switch (isa) {
    case GenericIsa::kSse2: return "sse2";
    case GenericIsa::kAvx2: return "avx2";
    case GenericIsa::kAvx512: return "avx512";
  }
  return "?";
}

extern const MicroKernel kSse2MicroKernels[];
extern const MicroKernel kAvx2MicroKernels[];
extern const MicroKernel kAvx512MicroKernels[];

const MicroKernel* microkernels(GenericIsa isa) {
  switch (isa) {
    case GenericIsa::kSse2: return kSse2MicroKernels;
    case GenericIsa::kAvx2: return kAvx2MicroKernels;
    case GenericIsa::kAvx512: return kAvx512MicroKernels;
  }
  return kSse2MicroKernels;
}

AxisPhases::AxisPhases(const AxisGeometry& axis) {
  const int64_t s = axis.stride;
  outputs.resize(size_t(s));
  for (const codegen::AxisPhase& phase : codegen::axis_phases(axis)) {
    std::vector<int64_t>& class_taps = taps.emplace_back();
    for (const codegen::PhaseTap& t : phase.taps) class_taps.push_back(t.tap);
  }
  for (const auto& class_taps : taps) {
    std::vector<int64_t> shifts;
    for (int64_t a : class_taps) shifts.push_back((a - class_taps.front()) * axis.dilation / s);
    slot_shift.push_back(shifts);
  }
  all_slots_inside.resize(size_t(axis.out));
  output_class.resize(size_t(axis.out));
  input_begin.resize(size_t(axis.out));
  for (int64_t o = 0; o < axis.out; ++o) {
    const int64_t c = (o + axis.crop_begin) % s;
    output_class[size_t(o)] = c;
    outputs[size_t(c)].push_back(o);
    input_begin[size_t(o)] = int64_t(input_index.size());
    bool inside = true;
    for (int64_t a : taps[size_t(c)]) {
      const int64_t num = o + axis.crop_begin - a * axis.dilation;
      const int64_t i = num >= 0 ? num / s : -1;
      input_index.push_back(i >= 0 && i < axis.in ? i : -1);
      inside = inside && i >= 0 && i < axis.in;
    }
    // A class without taps has no slot 0 to base the fast path on.
    all_slots_inside[size_t(o)] = inside && !taps[size_t(c)].empty();
  }
}

namespace {

// Useful output channels per vector instruction when `filters` are spread over
// vectors of `lanes` floats: the padding of the last vector is wasted work.
double useful_lanes(int64_t filters, int lanes) {
  return double(filters) / double((filters + lanes - 1) / lanes);
}

MicroKernel choose_kernel(int64_t filters, GenericIsa isa) {
  const MicroKernel* list = microkernels(isa);
  // The vector width that keeps the most lanes busy; on a tie the narrower
  // one, whose loads are cheaper for the same useful work.
  int lanes = 0;
  for (const MicroKernel* k = list; k->fn; ++k) {
    if (lanes == 0 || useful_lanes(filters, k->lanes) > useful_lanes(filters, lanes) ||
        (useful_lanes(filters, k->lanes) == useful_lanes(filters, lanes) && k->lanes < lanes))
      lanes = k->lanes;
  }
  // Then the vectors per voxel that compute the fewest padded vectors in all;
  // on a tie the most, which reuses each broadcast input most.
  const int64_t vectors = (filters + lanes - 1) / lanes;
  MicroKernel best;
  int64_t best_total = 0;
  for (const MicroKernel* k = list; k->fn; ++k) {
    if (k->lanes != lanes) continue;
    const int64_t total = (vectors + k->vectors - 1) / k->vectors * k->vectors;
    if (!best.fn || total < best_total || (total == best_total && k->vectors > best.vectors)) {
      best = *k;
      best_total = total;
    }
  }
  if (!best.fn) throw Error("backend", std::string("generic: no microkernel for ") + to_string(isa));
  return best;
}

}  // namespace

Plan make_plan(const ConvGeometry& g, GenericIsa isa) {
  Plan plan;
  plan.isa = isa;
  plan.kernel = choose_kernel(g.out_channels, isa);
  plan.block_channels = int64_t(plan.kernel.lanes) * plan.kernel.vectors;
  plan.channel_blocks = (g.out_channels + plan.block_channels - 1) / plan.block_channels;
  for (const AxisGeometry& axis : g.axes) plan.axes.emplace_back(axis);
  const AxisPhases &pd = plan.axes[0], &ph = plan.axes[1], &pw = plan.axes[2];

  int64_t offset = 0;
  for (int64_t cd = 0; cd < pd.classes(); ++cd)
    for (int64_t ch = 0; ch < ph.classes(); ++ch)
      for (int64_t cw = 0; cw < pw.classes(); ++cw) {
        Phase phase{cd, ch, cw, 0, offset};
        phase.taps = int64_t(pd.taps[size_t(cd)].size() * ph.taps[size_t(ch)].size() * pw.taps[size_t(cw)].size());
        offset += phase.taps * g.in_channels * plan.block_channels * plan.channel_blocks;
        plan.max_phase_taps = std::max(plan.max_phase_taps, phase.taps);
        plan.phases.push_back(phase);
      }

  // Tiles of about 48 voxels: small enough to balance threads, large enough
  // that the per-tile setup is noise. One phase's tiles run back to back (its
  // weights stay in L2); phases with the most taps go first, so the dynamic
  // schedule ends on short tiles.
  const int64_t voxels = plan.kernel.voxels;
  const int64_t blocks_per_tile = std::max<int64_t>(1, 48 / voxels);
  std::vector<const Phase*> order;
  for (const Phase& p : plan.phases) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(), [](const Phase* a, const Phase* b) { return a->taps > b->taps; });
  for (const Phase* p : order) {
    const int64_t plane = int64_t(ph.outputs[size_t(p->class_h)].size() * pw.outputs[size_t(p->class_w)].size());
    const int64_t blocks = (plane + voxels - 1) / voxels;
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t od : pd.outputs[size_t(p->class_d)])
        for (int64_t b = 0; b < blocks; b += blocks_per_tile)
          plan.tiles.push_back(Tile{n, od, p->class_h, p->class_w, b, std::min(blocks, b + blocks_per_tile)});
  }
  return plan;
}

std::string Plan::describe() const {
  return std::string("generic_polyphase__") + to_string(isa) + "_" + std::to_string(kernel.lanes) + "x" +
         std::to_string(kernel.vectors) + "_r" + std::to_string(kernel.voxels);
}

int64_t packed_weight_count(const Plan& plan, const ConvGeometry& g) {
  int64_t total = 0;
  for (const Phase& p : plan.phases) total += p.taps * g.in_channels * plan.block_channels * plan.channel_blocks;
  return total;
}

void pack_weights(const Plan& plan, const ConvGeometry& g, const float* kernel, float* packed) {
  const int64_t cin = g.in_channels, cout = g.out_channels, bc = plan.block_channels;
  const int64_t kh = g.axes[1].kernel, kw = g.axes[2].kernel;
  for (const Phase& p : plan.phases) {
    const auto& td = plan.axes[0].taps[size_t(p.class_d)];
    const auto& th = plan.axes[1].taps[size_t(p.class_h)];
    const auto& tw = plan.axes[2].taps[size_t(p.class_w)];
    float* out = packed + p.weight_offset;
    for (int64_t cb = 0; cb < plan.channel_blocks; ++cb)
      for (int64_t a : td)
        for (int64_t b : th)
          for (int64_t c : tw) {
            const float* tap = kernel + ((a * kh + b) * kw + c) * cout * cin;
            for (int64_t ci = 0; ci < cin; ++ci)
              for (int64_t j = 0; j < bc; ++j) {
                const int64_t f = cb * bc + j;
                *out++ = f < cout ? tap[f * cin + ci] : 0.0f;
              }
          }
  }
}

}  // namespace tconv3d::generic
