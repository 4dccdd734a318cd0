#include "emit/llvm/ir_row_loops.hpp"

#include <algorithm>

#include "emit/llvm/ir_kernel.hpp"

namespace tconv3d::llvm_backend {

using codegen::KernelPlan;
using codegen::WSegment;

RowKernelArgs begin_row_kernel(llvm::IRBuilder<>& builder, llvm::Module& module, const std::string& name) {
  llvm::StructType* type = kernel_args_type(module.getContext());
  RowKernelArgs a;
  a.function = begin_kernel_function(builder, module, type, name);
  const std::vector<llvm::Value*> f = load_arg_fields(
      builder, type, a.function->getArg(0), {"input", "row_taps", "row_tap_count", "weights", "bias", "output"});
  a.input = f[0], a.row_taps = f[1], a.row_tap_count = f[2], a.weights = f[3], a.bias = f[4], a.output = f[5];
  return a;
}

void for_each_channel_group(IrSupport& ir, const KernelPlan& plan,
                            const std::function<void(llvm::Value*, int, bool)>& group) {
  if (plan.only_group >= 0) {  // one kernel per channel group: the group is a constant
    const int g = plan.only_group;
    const bool last = g == plan.oc_groups - 1;
    group(ir.i64c(g), last ? plan.last_group_vectors : plan.oc_block, last && plan.tail_lanes != 0);
    return;
  }
  const bool last_differs = plan.last_group_vectors != plan.oc_block || plan.tail_lanes != 0;
  const int uniform = plan.oc_groups - (last_differs ? 1 : 0);
  ir.loop(uniform, [&](llvm::Value* g) { group(g, plan.oc_block, false); }, "group");
  if (last_differs) group(ir.i64c(plan.oc_groups - 1), plan.last_group_vectors, plan.tail_lanes != 0);
}

void for_each_w_tile(IrSupport& ir, const KernelPlan& plan, int rw,
                     const std::function<void(const KernelPlan::WTapMask&, int, llvm::Value*, int64_t)>& tile) {
  auto& b = ir.b();
  for (const WSegment& s : plan.w_segments[rw]) {
    const KernelPlan::WTapMask valid = plan.w_tap_mask(rw, s);
    if (s.interior && s.tiles > 1) {
      ir.loop(s.tiles, [&](llvm::Value* k) {
        tile(valid, s.width, b.CreateAdd(ir.i64c(s.first), b.CreateMul(k, ir.i64c(s.width))), -1);
      }, "tile");
    } else {
      for (int64_t k = 0; k < s.tiles; ++k) {
        const int64_t first = s.first + k * s.width;
        tile(valid, s.width, ir.i64c(first), s.interior ? -1 : first);
      }
    }
  }
}

void emit_tap_steps(IrSupport& ir, const KernelPlan& plan, int rw, const KernelPlan::WTapMask& valid, int width,
                    int vectors, int steps, const std::vector<llvm::AllocaInst*>& acc, const TapSteps& step) {
  auto& b = ir.b();
  const codegen::AxisPhase& phase = plan.phases[2][rw];
  const int64_t taps = static_cast<int64_t>(phase.taps.size());
  std::vector<llvm::Value*> sums;
  for (llvm::AllocaInst* a : acc) sums.push_back(b.CreateLoad(ir.vec(), a));
  for (int u = 0; u < steps; ++u) {
    for (int64_t t = 0; t < taps; ++t) {
      const auto& use = valid[static_cast<size_t>(t)];
      if (std::find(use.begin(), use.end(), true) == use.end()) continue;
      const std::vector<llvm::Value*> weight = step.weights(u, t);
      for (int p = 0; p < width; ++p) {
        if (!use[static_cast<size_t>(p)]) continue;
        llvm::Value* x = step.input(u, p, phase.taps[static_cast<size_t>(t)].offset);
        for (int v = 0; v < vectors; ++v)
          step.accumulate(sums[static_cast<size_t>(p * vectors + v)], weight[static_cast<size_t>(v)], x,
                          static_cast<size_t>(t), v);
      }
      // One W tap's block ends here, as in the Xbyak kernels. Without the pin,
      // LLVM merges the loads of an input voxel that several taps read and
      // hoists the next block's loads, keeping more vectors live than the
      // register file holds: the accumulators spill (1.4-1.8x slower).
      ir.pin(sums);
    }
  }
  for (size_t i = 0; i < acc.size(); ++i) b.CreateStore(sums[i], acc[i]);
}

bool any_valid(const KernelPlan::WTapMask& valid) {
  for (const auto& row : valid)
    if (std::find(row.begin(), row.end(), true) != row.end()) return true;
  return false;
}

uint64_t tile_store_lanes(const KernelPlan& plan, int64_t first, int p, int v, int vectors, bool masked) {
  const int lanes = plan.lanes;
  const uint64_t lane_all = (uint64_t(1) << lanes) - 1;
  // Lane-packed plans hold all channels of all phases in one vector (< 64 lanes).
  if (first >= 0 && plan.w_pack > 1) {
    const uint64_t voxel_all = (uint64_t(1) << plan.vector_channels()) - 1;
    const uint64_t stored = uint64_t(plan.w_pack_lane_mask(first + p));
    if (stored != voxel_all) return v * lanes < 64 ? (stored >> (v * lanes)) & lane_all : 0;
  }
  if (masked && v == vectors - 1) return (uint64_t(1) << plan.tail_lanes) - 1;
  return kAllLanes;
}

}  // namespace tconv3d::llvm_backend
