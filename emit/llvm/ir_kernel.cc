#include "emit/llvm/ir_kernel.hpp"

#include <llvm/IR/IRBuilder.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "core/kernel_args.hpp"
#include "emit/llvm/ir_activation.hpp"
#include "emit/llvm/ir_row_loops.hpp"
#include "emit/llvm/ir_support.hpp"

namespace tconv3d::llvm_backend {
namespace {

using codegen::AxisPhase;
using codegen::KernelPlan;

using TapMask = KernelPlan::WTapMask;  // see KernelPlan::w_tap_mask

class RowKernelEmitter {
 public:
  RowKernelEmitter(llvm::Module& module, const KernelPlan& plan, int max_cin_unroll)
      : module_(module), plan_(plan), max_cin_unroll_(max_cin_unroll), builder_(module.getContext()),
        ir_(builder_, module, plan.lanes) {}

  llvm::Function* emit(const std::string& name) {
    args_ = begin_row_kernel(builder_, module_, name);
    for (int rw = 0; rw < static_cast<int>(plan_.phases[2].size()); ++rw) emit_w_phase(rw);
    if (plan_.activation_row_pass) emit_activation_pass();
    builder_.CreateRetVoid();
    return args_.function;
  }

 private:
  int64_t cin() const { return plan_.geometry.in_channels; }
  int64_t cout() const { return plan_.geometry.out_channels; }
  // Along W, between consecutive voxels of a phase (plan.hpp): output and input voxels.
  int64_t out_step() const { return plan_.w_output_step(); }
  int64_t in_step() const { return plan_.w_input_step(); }
  // An input pointer. A forward tile's first input voxel lies inside the
  // input; an input-gradient tile's may lie before the row (first_q =
  // -crop_begin), so its pointers make no inbounds promise (only the
  // voxels of valid taps, inside the input, are ever loaded).
  llvm::Value* input_at(llvm::Value* float_ptr, llvm::Value* index) {
    return plan_.pass == codegen::PlanPass::kForward ? ir_.at(float_ptr, index) : ir_.at_any(float_ptr, index);
  }
  // j * in_step(); a forward plan's (step 1) IR stays as it was.
  llvm::Value* times_in_step(llvm::Value* j) {
    return in_step() == 1 ? j : builder_.CreateMul(j, ir_.i64c(in_step()));
  }

  void emit_w_phase(int rw) {
    if (plan_.phases[2][rw].count == 0) return;
    for_each_channel_group(ir_, plan_, [&](llvm::Value* g, int vectors, bool masked) {
      emit_channel_group(rw, g, vectors, masked);
    });
  }

  void emit_channel_group(int rw, llvm::Value* group, int vectors, bool masked) {
    const AxisPhase& phase = plan_.phases[2][rw];
    auto& b = builder_;
    const int64_t group_floats = int64_t(plan_.oc_block) * plan_.lanes;
    llvm::Value* channel0 = b.CreateMul(group, ir_.i64c(group_floats));
    Group gr;
    // A lane-packed row's first super voxel may start before the row (its
    // outside lanes are never stored): no inbounds promise for output pointers.
    gr.out = ir_.at_any(args_.output, b.CreateAdd(channel0, ir_.i64c(phase.first_out * cout())));
    gr.bias = ir_.at(args_.bias, channel0);
    gr.weights = ir_.at(args_.weights, b.CreateAdd(ir_.i64c(plan_.weights_phase_offset(rw)),
                                                     b.CreateMul(group, ir_.i64c(plan_.weights_group_stride(rw)))));
    gr.vectors = vectors;
    gr.masked = masked;
    for_each_w_tile(ir_, plan_, rw, [&](const TapMask& valid, int width, llvm::Value* j, int64_t first) {
      llvm::Value* out = ir_.at_any(gr.out, b.CreateMul(j, ir_.i64c(out_step() * cout())));
      llvm::Value* in_index = b.CreateMul(b.CreateAdd(times_in_step(j), ir_.i64c(phase.first_q)), ir_.i64c(cin()));
      emit_tile(rw, valid, width, gr, out, in_index, first);
    });
  }

  struct Group {
    llvm::Value* out = nullptr;      // output voxel of phase position 0, this group's first channel
    llvm::Value* bias = nullptr;     // bias of the group's first channel
    llvm::Value* weights = nullptr;  // this W phase's and group's block inside a (kd, kh) tap
    int vectors = 0;
    bool masked = false;
  };


  void emit_tile(int rw, const TapMask& valid, int width, const Group& gr, llvm::Value* out, llvm::Value* in_index,
                 int64_t first) {
    auto& b = builder_;
    const int vectors = gr.vectors;
    std::vector<llvm::AllocaInst*> acc;
    for (int p = 0; p < width; ++p) {
      for (int v = 0; v < vectors; ++v) {
        acc.push_back(ir_.entry_alloca(ir_.vec(), "acc"));
        b.CreateStore(ir_.load_vector(ir_.at(gr.bias, v * plan_.lanes)), acc.back());
      }
    }
    if (any_valid(valid)) {
      const int64_t taps = plan_.w_taps(rw);
      const int64_t w_step = taps * vectors * plan_.lanes;  // floats per Cin step
      const int unroll = std::max(1, std::min(plan_.cin_unroll, max_cin_unroll_));
      ir_.loop(args_.row_tap_count, [&](llvm::Value* k) {
        const auto [in_bytes, w_bytes] = ir_.load_i64_pair(args_.row_taps, k);
        llvm::Value* in_row = input_at(args_.input, b.CreateAdd(in_index, b.CreateAShr(in_bytes, 2)));
        llvm::Value* w_row = ir_.at(gr.weights, b.CreateAShr(w_bytes, 2));
        const int64_t iterations = cin() / unroll;
        const int remainder = static_cast<int>(cin() % unroll);
        ir_.loop(iterations, [&](llvm::Value* i) {
          llvm::Value* ci = b.CreateMul(i, ir_.i64c(unroll));
          emit_cin_steps(rw, valid, width, vectors, unroll, acc, ir_.opaque(input_at(in_row, ci)),
                         ir_.opaque(ir_.at(w_row, b.CreateMul(ci, ir_.i64c(w_step)))));
        }, "ci");
        if (remainder) {
          const int64_t ci = iterations * unroll;
          emit_cin_steps(rw, valid, width, vectors, remainder, acc, input_at(in_row, ir_.i64c(ci)),
                         ir_.at(w_row, ci * w_step));
        }
      }, "row_tap");
    }
    store_tile(width, gr, acc, out, first);
  }

  // w * x + s in the lanes that hold a weight of W tap t's vector v
  // (KernelPlan::w_pack_input_lanes), s in the others. AVX-512: a select of
  // the sum, one merge-masked FMA (a select of x costs an extra operation
  // per broadcast, 21 % on the k3s2 4-filter head); AVX2, without opmasks:
  // a select of x (an AND off the accumulator's dependency chain).
  llvm::Value* lane_fma(llvm::Value* w, llvm::Value* x, llvm::Value* s, size_t t, int v) {
    const uint32_t all = (uint32_t(1) << plan_.lanes) - 1;
    const uint32_t bits = plan_.w_pack_input_lanes(t, v) & all;
    if (bits == all) return ir_.fma(w, x, s);
    if (plan_.isa == Isa::kAvx512) return builder_.CreateSelect(ir_.opaque_mask(bits), ir_.fma(w, x, s), s);
    std::vector<llvm::Constant*> keep;
    for (int i = 0; i < plan_.lanes; ++i) keep.push_back(builder_.getInt1((bits >> i) & 1));
    return ir_.fma(w, builder_.CreateSelect(llvm::ConstantVector::get(keep), x, ir_.splat(0.0f)), s);
  }

  void emit_cin_steps(int rw, const TapMask& valid, int width, int vectors, int steps,
                      const std::vector<llvm::AllocaInst*>& acc, llvm::Value* in, llvm::Value* w) {
    const int64_t taps = plan_.w_taps(rw);
    TapSteps step;
    step.weights = [&](int u, int64_t t) {
      std::vector<llvm::Value*> weight(static_cast<size_t>(vectors));
      for (int v = 0; v < vectors; ++v)
        weight[static_cast<size_t>(v)] = ir_.load_vector(ir_.at(w, ((u * taps + t) * vectors + v) * plan_.lanes));
      return weight;
    };
    step.input = [&](int u, int p, int64_t offset) {
      return ir_.splat(ir_.load_scalar(input_at(in, ir_.i64c((p * in_step() - offset) * cin() + u))));
    };
    step.accumulate = [&](llvm::Value*& s, llvm::Value* weight, llvm::Value* x, size_t t, int v) {
      // Lane-packed: no FMA for a vector no phase has a weight in, and
      // the input kept out of the lanes of another phase's padding
      // weight of 0 (0 * NaN or 0 * Inf: a NaN Keras does not make).
      if (plan_.w_pack_vector_used(t, v)) s = lane_fma(weight, x, s, t, v);
    };
    emit_tap_steps(ir_, plan_, rw, valid, width, vectors, steps, acc, step);
  }

  void store_tile(int width, const Group& gr, const std::vector<llvm::AllocaInst*>& acc, llvm::Value* out,
                  int64_t first) {
    const int64_t pitch = out_step() * cout();
    for (int p = 0; p < width; ++p) {
      for (int v = 0; v < gr.vectors; ++v) {
        llvm::Value* value = builder_.CreateLoad(ir_.vec(), acc[static_cast<size_t>(p * gr.vectors + v)]);
        llvm::Value* dst = ir_.at_any(out, p * pitch + v * plan_.lanes);
        const uint64_t lanes = tile_store_lanes(plan_, first, p, v, gr.vectors, gr.masked);
        if (lanes == kAllLanes)
          ir_.store_vector(value, dst);
        else if (lanes)
          ir_.masked_store_lanes(value, dst, lanes);
      }
    }
  }

  void emit_activation_pass() {
    if (plan_.only_group >= 0) return emit_group_activation_pass();
    // The row is finished and cache-hot: load, activate, store.
    const int64_t total = plan_.geometry.axes[2].out * cout();
    const int64_t full = total / plan_.lanes;
    const int rest = static_cast<int>(total % plan_.lanes);
    ir_.loop(full, [&](llvm::Value* i) {
      llvm::Value* p = ir_.at(args_.output, builder_.CreateMul(i, ir_.i64c(plan_.lanes)));
      ir_.store_vector(emit_activation(ir_, plan_.activation, ir_.load_vector(p)), p);
    }, "activate");
    if (rest) {
      llvm::Value* p = ir_.at(args_.output, full * plan_.lanes);
      ir_.masked_store(emit_activation(ir_, plan_.activation, ir_.masked_load(p, rest)), p, rest);
    }
  }

  // A per-group kernel activates only its own channels of every voxel: the
  // other groups' kernels write (and activate) theirs.
  void emit_group_activation_pass() {
    const int g = plan_.only_group;
    const bool last = g == plan_.oc_groups - 1;
    const int vectors = last ? plan_.last_group_vectors : plan_.oc_block;
    const bool masked = last && plan_.tail_lanes != 0;
    llvm::Value* group_out = ir_.at(args_.output, int64_t(g) * plan_.oc_block * plan_.lanes);
    ir_.loop(plan_.geometry.axes[2].out, [&](llvm::Value* ow) {
      llvm::Value* voxel = ir_.at(group_out, builder_.CreateMul(ow, ir_.i64c(cout())));
      for (int v = 0; v < vectors; ++v) {
        llvm::Value* p = ir_.at(voxel, v * plan_.lanes);
        if (masked && v == vectors - 1)
          ir_.masked_store(emit_activation(ir_, plan_.activation, ir_.masked_load(p, plan_.tail_lanes)), p,
                           plan_.tail_lanes);
        else
          ir_.store_vector(emit_activation(ir_, plan_.activation, ir_.load_vector(p)), p);
      }
    }, "activate");
  }

  llvm::Module& module_;
  const KernelPlan& plan_;
  int max_cin_unroll_;
  llvm::IRBuilder<> builder_;
  IrSupport ir_;
  RowKernelArgs args_;
};

}  // namespace

llvm::StructType* kernel_args_type(llvm::LLVMContext& ctx) {
  static_assert(codegen::args_offset::kInput == 0 && codegen::args_offset::kRowTaps == 8 &&
                    codegen::args_offset::kRowTapCount == 16 && codegen::args_offset::kWeights == 24 &&
                    codegen::args_offset::kBias == 32 && codegen::args_offset::kOutput == 40 &&
                    sizeof(codegen::KernelArgs) == 48,
                "KernelArgs changed: update kernel_args_type()");
  llvm::Type* f32p = llvm::PointerType::getUnqual(llvm::Type::getFloatTy(ctx));
  llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
  if (auto* existing = llvm::StructType::getTypeByName(ctx, "tconv3d.KernelArgs")) return existing;
  return llvm::StructType::create(ctx, {f32p, llvm::PointerType::getUnqual(i64), i64, f32p, f32p, f32p},
                                  "tconv3d.KernelArgs");
}

llvm::Function* emit_row_kernel(llvm::Module& module, const KernelPlan& plan, const std::string& name,
                                int max_cin_unroll) {
  return RowKernelEmitter(module, plan, max_cin_unroll).emit(name);
}

}  // namespace tconv3d::llvm_backend
