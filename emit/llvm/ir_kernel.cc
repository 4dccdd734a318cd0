#include "emit/llvm/ir_kernel.hpp"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/InlineAsm.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "core/kernel_args.hpp"
#include "emit/llvm/ir_activation.hpp"
#include "emit/llvm/ir_support.hpp"

namespace tconv3d::llvm_backend {
namespace {

using codegen::AxisPhase;
using codegen::KernelPlan;
using codegen::WSegment;

using TapMask = KernelPlan::WTapMask;  // see KernelPlan::w_tap_mask

class RowKernelEmitter {
 public:
  RowKernelEmitter(llvm::Module& module, const KernelPlan& plan, int max_cin_unroll)
      : module_(module), plan_(plan), max_cin_unroll_(max_cin_unroll), builder_(module.getContext()),
        ir_(builder_, module, plan.lanes) {}

  llvm::Function* emit(const std::string& name) {
    opmasks_.clear();
    llvm::LLVMContext& ctx = module_.getContext();
    llvm::StructType* args_type = kernel_args_type(ctx);
    auto* type = llvm::FunctionType::get(builder_.getVoidTy(), {llvm::PointerType::getUnqual(args_type)}, false);
    llvm::Function* f = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, module_);
    f->setDSOLocal(true);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    f->addFnAttr("no-builtins");  // never turn a loop into a memset/memcpy call
    f->addParamAttr(0, llvm::Attribute::NoAlias);
    f->addParamAttr(0, llvm::Attribute::ReadOnly);
    builder_.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", f));
    load_args(f->getArg(0), args_type);
    for (int rw = 0; rw < static_cast<int>(plan_.phases[2].size()); ++rw) emit_w_phase(rw);
    if (plan_.activation_row_pass) emit_activation_pass();
    builder_.CreateRetVoid();
    return f;
  }

 private:
  void load_args(llvm::Value* args, llvm::StructType* type) {
    auto field = [&](unsigned index, llvm::Type* t, const char* n) {
      return builder_.CreateAlignedLoad(t, builder_.CreateStructGEP(type, args, index), llvm::Align(8), n);
    };
    input_ = field(0, ir_.f32_ptr(), "input");
    row_taps_ = field(1, llvm::PointerType::getUnqual(ir_.i64()), "row_taps");
    row_tap_count_ = field(2, ir_.i64(), "row_tap_count");
    weights_ = field(3, ir_.f32_ptr(), "weights");
    bias_ = field(4, ir_.f32_ptr(), "bias");
    output_ = field(5, ir_.f32_ptr(), "output");
  }

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
    const AxisPhase& phase = plan_.phases[2][rw];
    if (phase.count == 0) return;
    if (plan_.only_group >= 0) {  // one kernel per channel group: the group is a constant
      const int g = plan_.only_group;
      const bool last = g == plan_.oc_groups - 1;
      emit_channel_group(rw, ir_.i64c(g), last ? plan_.last_group_vectors : plan_.oc_block,
                         last && plan_.tail_lanes != 0);
      return;
    }
    const bool last_differs = plan_.last_group_vectors != plan_.oc_block || plan_.tail_lanes != 0;
    const int uniform = plan_.oc_groups - (last_differs ? 1 : 0);
    ir_.loop(uniform, [&](llvm::Value* g) { emit_channel_group(rw, g, plan_.oc_block, false); }, "group");
    if (last_differs)
      emit_channel_group(rw, ir_.i64c(plan_.oc_groups - 1), plan_.last_group_vectors, plan_.tail_lanes != 0);
  }

  void emit_channel_group(int rw, llvm::Value* group, int vectors, bool masked) {
    const AxisPhase& phase = plan_.phases[2][rw];
    auto& b = builder_;
    const int64_t group_floats = int64_t(plan_.oc_block) * plan_.lanes;
    llvm::Value* channel0 = b.CreateMul(group, ir_.i64c(group_floats));
    Group gr;
    // A lane-packed row's first super voxel may start before the row (its
    // outside lanes are never stored): no inbounds promise for output pointers.
    gr.out = ir_.at_any(output_, b.CreateAdd(channel0, ir_.i64c(phase.first_out * cout())));
    gr.bias = ir_.at(bias_, channel0);
    gr.weights = ir_.at(weights_, b.CreateAdd(ir_.i64c(plan_.weights_phase_offset(rw)),
                                               b.CreateMul(group, ir_.i64c(plan_.weights_group_stride(rw)))));
    gr.vectors = vectors;
    gr.masked = masked;
    for (const WSegment& s : plan_.w_segments[rw]) {
      const TapMask valid = plan_.w_tap_mask(rw, s);
      // j: position of the tile's first voxel within the phase; first: the same
      // as a constant for border tiles, -1 for interior ones (every lane stored).
      auto tile_at = [&](llvm::Value* j, int64_t first) {
        llvm::Value* out = ir_.at_any(gr.out, b.CreateMul(j, ir_.i64c(out_step() * cout())));
        llvm::Value* in_index = b.CreateMul(b.CreateAdd(times_in_step(j), ir_.i64c(phase.first_q)), ir_.i64c(cin()));
        emit_tile(rw, valid, s.width, gr, out, in_index, first);
      };
      if (s.interior && s.tiles > 1) {
        ir_.loop(s.tiles, [&](llvm::Value* k) {
          tile_at(b.CreateAdd(ir_.i64c(s.first), b.CreateMul(k, ir_.i64c(s.width))), -1);
        }, "tile");
      } else {
        for (int64_t k = 0; k < s.tiles; ++k) {
          const int64_t first = s.first + k * s.width;
          tile_at(ir_.i64c(first), s.interior ? -1 : first);
        }
      }
    }
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
    bool any = false;
    for (const auto& row : valid) any = any || std::find(row.begin(), row.end(), true) != row.end();
    if (any) {
      const int64_t taps = plan_.w_taps(rw);
      const int64_t w_step = taps * vectors * plan_.lanes;  // floats per Cin step
      const int unroll = std::max(1, std::min(plan_.cin_unroll, max_cin_unroll_));
      ir_.loop(row_tap_count_, [&](llvm::Value* k) {
        llvm::Value* pair = ir_.b().CreateInBoundsGEP(ir_.i64(), row_taps_, b.CreateMul(k, ir_.i64c(2)));
        llvm::Value* in_bytes = b.CreateAlignedLoad(ir_.i64(), pair, llvm::Align(8));
        llvm::Value* w_bytes = b.CreateAlignedLoad(ir_.i64(), b.CreateInBoundsGEP(ir_.i64(), pair, ir_.i64c(1)),
                                                   llvm::Align(8));
        llvm::Value* in_row = input_at(input_, b.CreateAdd(in_index, b.CreateAShr(in_bytes, 2)));
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
    if (plan_.isa == Isa::kAvx512) return builder_.CreateSelect(opmask(bits), ir_.fma(w, x, s), s);
    std::vector<llvm::Constant*> keep;
    for (int i = 0; i < plan_.lanes; ++i) keep.push_back(builder_.getInt1((bits >> i) & 1));
    return ir_.fma(w, builder_.CreateSelect(llvm::ConstantVector::get(keep), x, ir_.splat(0.0f)), s);
  }

  // The lane mask `bits` as an <lanes x i1> LLVM cannot see through, made
  // once at the function's entry: a constant mask becomes a blend after the
  // FMA (an extra operation per FMA), an opaque one an opmask that the
  // select folds into a merge-masked FMA.
  llvm::Value* opmask(uint32_t bits) {
    for (const auto& [b, mask] : opmasks_)
      if (b == bits) return mask;
    llvm::BasicBlock& entry = builder_.GetInsertBlock()->getParent()->getEntryBlock();
    llvm::IRBuilder<> at(&entry, entry.getFirstInsertionPt());
    auto* type = llvm::FunctionType::get(at.getInt32Ty(), {at.getInt32Ty()}, false);
    llvm::Value* word = at.CreateCall(llvm::InlineAsm::get(type, "", "=r,0", false), {at.getInt32(bits)});
    llvm::Value* mask = at.CreateBitCast(at.CreateTrunc(word, at.getIntNTy(static_cast<unsigned>(plan_.lanes))),
                                         llvm::FixedVectorType::get(at.getInt1Ty(), static_cast<unsigned>(plan_.lanes)));
    opmasks_.emplace_back(bits, mask);
    return mask;
  }

  void emit_cin_steps(int rw, const TapMask& valid, int width, int vectors, int steps,
                      const std::vector<llvm::AllocaInst*>& acc, llvm::Value* in, llvm::Value* w) {
    auto& b = builder_;
    const AxisPhase& phase = plan_.phases[2][rw];
    const int64_t taps = static_cast<int64_t>(phase.taps.size());
    std::vector<llvm::Value*> sums;
    for (llvm::AllocaInst* a : acc) sums.push_back(b.CreateLoad(ir_.vec(), a));
    for (int u = 0; u < steps; ++u) {
      for (int64_t t = 0; t < taps; ++t) {
        const auto& use = valid[static_cast<size_t>(t)];
        if (std::find(use.begin(), use.end(), true) == use.end()) continue;
        std::vector<llvm::Value*> weight(static_cast<size_t>(vectors));
        for (int v = 0; v < vectors; ++v)
          weight[v] = ir_.load_vector(ir_.at(w, ((u * taps + t) * vectors + v) * plan_.lanes));
        for (int p = 0; p < width; ++p) {
          if (!use[static_cast<size_t>(p)]) continue;
          const int64_t offset = phase.taps[static_cast<size_t>(t)].offset;
          llvm::Value* x =
              ir_.splat(ir_.load_scalar(input_at(in, ir_.i64c((p * in_step() - offset) * cin() + u))));
          for (int v = 0; v < vectors; ++v) {
            // Lane-packed: no FMA for a vector no phase has a weight in, and
            // the input kept out of the lanes of another phase's padding
            // weight of 0 (0 * NaN or 0 * Inf: a NaN Keras does not make).
            if (!plan_.w_pack_vector_used(static_cast<size_t>(t), v)) continue;
            llvm::Value*& s = sums[static_cast<size_t>(p * vectors + v)];
            s = lane_fma(weight[v], x, s, static_cast<size_t>(t), v);
          }
        }
        // One W tap's block ends here, as in the Xbyak kernel. Without the pin,
        // LLVM merges the loads of an input voxel that several taps read and
        // hoists the next block's loads, keeping more vectors live than the
        // register file holds: the accumulators spill (1.4-1.8x slower).
        ir_.pin(sums);
      }
    }
    for (size_t i = 0; i < acc.size(); ++i) b.CreateStore(sums[i], acc[i]);
  }

  void store_tile(int width, const Group& gr, const std::vector<llvm::AllocaInst*>& acc, llvm::Value* out,
                  int64_t first) {
    const int64_t pitch = out_step() * cout();
    const uint64_t lane_all = (uint64_t(1) << plan_.lanes) - 1;
    // Lane-packed plans hold all channels of all phases in one vector (< 64 lanes).
    const bool packed_border = first >= 0 && plan_.w_pack > 1;
    const uint64_t voxel_all = packed_border ? (uint64_t(1) << plan_.vector_channels()) - 1 : 0;
    for (int p = 0; p < width; ++p) {
      // A lane-packed super voxel reaching outside the row stores only its inside lanes.
      const uint64_t stored = packed_border ? uint64_t(plan_.w_pack_lane_mask(first + p)) : voxel_all;
      for (int v = 0; v < gr.vectors; ++v) {
        llvm::Value* value = builder_.CreateLoad(ir_.vec(), acc[static_cast<size_t>(p * gr.vectors + v)]);
        llvm::Value* dst = ir_.at_any(out, p * pitch + v * plan_.lanes);
        if (stored != voxel_all) {
          const uint64_t bits = v * plan_.lanes < 64 ? (stored >> (v * plan_.lanes)) & lane_all : 0;
          if (bits) ir_.masked_store_lanes(value, dst, bits);
        } else if (gr.masked && v == gr.vectors - 1) {
          ir_.masked_store(value, dst, plan_.tail_lanes);
        } else {
          ir_.store_vector(value, dst);
        }
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
      llvm::Value* p = ir_.at(output_, builder_.CreateMul(i, ir_.i64c(plan_.lanes)));
      ir_.store_vector(emit_activation(ir_, plan_.activation, ir_.load_vector(p)), p);
    }, "activate");
    if (rest) {
      llvm::Value* p = ir_.at(output_, full * plan_.lanes);
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
    llvm::Value* group_out = ir_.at(output_, int64_t(g) * plan_.oc_block * plan_.lanes);
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
  std::vector<std::pair<uint32_t, llvm::Value*>> opmasks_;  // lane_fma's opaque masks, by bits
  IrSupport ir_;
  llvm::Value* input_ = nullptr;
  llvm::Value* row_taps_ = nullptr;
  llvm::Value* row_tap_count_ = nullptr;
  llvm::Value* weights_ = nullptr;
  llvm::Value* bias_ = nullptr;
  llvm::Value* output_ = nullptr;
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
