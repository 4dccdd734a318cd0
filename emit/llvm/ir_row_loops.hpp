// The function and loop structure the float32 and bf16 LLVM row kernels
// share (ir_kernel, ir_bf16_kernel): `void name(const KernelArgs*)` and its
// fields; per W phase, its channel groups (one kernel's group as a
// constant, or a loop over the uniform groups and the narrower last one),
// per group, its W segments' tiles (border tiles straight-line with their
// first voxel a constant, interior tiles in a loop), and per tile voxel and
// vector, the lanes its store writes. The emitters differ only in the element
// types, the multiply-add and the store, which they supply as callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "emit/llvm/ir_support.hpp"
#include "plan/plan.hpp"

namespace tconv3d::llvm_backend {

// A row kernel's function and its KernelArgs fields as the float32 kernel
// types them (core/kernel_args.hpp); the bf16 kernel casts the pointers.
struct RowKernelArgs {
  llvm::Function* function = nullptr;
  llvm::Value* input = nullptr;
  llvm::Value* row_taps = nullptr;
  llvm::Value* row_tap_count = nullptr;
  llvm::Value* weights = nullptr;
  llvm::Value* bias = nullptr;
  llvm::Value* output = nullptr;
};

// Adds the kernel function `name` to `module` (begin_kernel_function),
// loads its arguments and leaves `builder` in its entry block.
RowKernelArgs begin_row_kernel(llvm::IRBuilder<>& builder, llvm::Module& module, const std::string& name);

// group(index, vectors, masked) for every channel group of the plan's
// kernel: index an i64 value, vectors its oc vectors, masked whether its
// last vector holds the channel tail (plan.tail_lanes).
void for_each_channel_group(IrSupport& ir, const codegen::KernelPlan& plan,
                            const std::function<void(llvm::Value* group, int vectors, bool masked)>& group);

// tile(valid, width, j, first) for every tile of W phase rw: valid its W
// taps' validity per voxel, width its voxels, j (i64 value) the position of
// its first voxel within the phase, first the same as a constant for a
// border tile and -1 for an interior one (every lane stored).
void for_each_w_tile(IrSupport& ir, const codegen::KernelPlan& plan, int rw,
                     const std::function<void(const codegen::KernelPlan::WTapMask& valid, int width, llvm::Value* j,
                                              int64_t first)>& tile);

// A tile's contraction steps (input channels, or bf16 channel pairs), in the
// Xbyak kernels' order: the accumulators loaded from acc (width x vectors),
// then per step u and W tap t valid for some voxel of the tile, the tap's
// weight vectors (weights(u, t)), and per voxel p it is valid for, the
// broadcast input (input(u, p, the tap's offset)) and per vector v the
// multiply-add into sum (accumulate); a pin after each tap; stored back.
struct TapSteps {
  std::function<std::vector<llvm::Value*>(int u, int64_t t)> weights;
  std::function<llvm::Value*(int u, int p, int64_t offset)> input;
  std::function<void(llvm::Value*& sum, llvm::Value* weight, llvm::Value* x, size_t t, int v)> accumulate;
};
void emit_tap_steps(IrSupport& ir, const codegen::KernelPlan& plan, int rw, const codegen::KernelPlan::WTapMask& valid,
                    int width, int vectors, int steps, const std::vector<llvm::AllocaInst*>& acc, const TapSteps& step);

// Whether any W tap of the mask is valid for any voxel.
bool any_valid(const codegen::KernelPlan::WTapMask& valid);

// The lanes (bit l: lane l) the store of vector v of voxel p of a tile
// writes: every lane (~0), the channel tail of a masked group's last vector,
// only the inside lanes of a lane-packed super voxel reaching outside the
// row (border tiles, first >= 0), or none (0: no store).
inline constexpr uint64_t kAllLanes = ~uint64_t(0);
uint64_t tile_store_lanes(const codegen::KernelPlan& plan, int64_t first, int p, int v, int vectors, bool masked);

}  // namespace tconv3d::llvm_backend
