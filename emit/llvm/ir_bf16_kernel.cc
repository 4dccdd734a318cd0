#include "emit/llvm/ir_bf16_kernel.hpp"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/InlineAsm.h>
#include <llvm/IR/IntrinsicsX86.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "emit/llvm/ir_activation.hpp"
#include "emit/llvm/ir_kernel.hpp"
#include "emit/llvm/ir_support.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

using codegen::AxisPhase;
using codegen::KernelPlan;
using codegen::WSegment;

using TapMask = KernelPlan::WTapMask;

constexpr int kLanes = 16;

class Bf16RowKernelEmitter {
 public:
  Bf16RowKernelEmitter(llvm::Module& module, const KernelPlan& plan, int max_cin_unroll)
      : module_(module), plan_(plan), max_cin_unroll_(max_cin_unroll), builder_(module.getContext()),
        ir_(builder_, module, kLanes) {
    if (!plan.bf16() || plan.isa != Isa::kAvx512 || plan.lanes != kLanes)
      throw Error("dtype", "the llvm bf16 emitter needs a bf16 plan for avx512");
    if (plan.activation_row_pass) throw Error("plan", "a bf16 plan fuses its activation: no row pass");
    if (plan.tile_w < 1 || plan.oc_block < 1) throw Error("plan", "the bf16 plan has no register tile");
    llvm::LLVMContext& ctx = module.getContext();
    i16_ = llvm::Type::getInt16Ty(ctx);
    i32_ = llvm::Type::getInt32Ty(ctx);
    pairs_ = llvm::FixedVectorType::get(i32_, kLanes);
    halves_ = llvm::FixedVectorType::get(i16_, kLanes);
  }

  llvm::Function* emit(const std::string& name) {
    opmasks_.clear();
    llvm::LLVMContext& ctx = module_.getContext();
    llvm::StructType* args_type = kernel_args_type(ctx);
    auto* type = llvm::FunctionType::get(builder_.getVoidTy(), {llvm::PointerType::getUnqual(args_type)}, false);
    llvm::Function* f = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, module_);
    f->setDSOLocal(true);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    f->addFnAttr("no-builtins");
    f->addParamAttr(0, llvm::Attribute::NoAlias);
    f->addParamAttr(0, llvm::Attribute::ReadOnly);
    builder_.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", f));
    load_args(f->getArg(0), args_type);
    for (int rw = 0; rw < static_cast<int>(plan_.phases[2].size()); ++rw) emit_w_phase(rw);
    builder_.CreateRetVoid();
    return f;
  }

 private:
  // The KernelArgs fields typed for bf16: input and output hold bf16 (i16),
  // the weights dword pairs (i32), the bias float32.
  void load_args(llvm::Value* args, llvm::StructType* type) {
    auto& b = builder_;
    auto field = [&](unsigned index, llvm::Type* t, const char* n) {
      return b.CreateAlignedLoad(t, b.CreateStructGEP(type, args, index), llvm::Align(8), n);
    };
    input_ = b.CreateBitCast(field(0, ir_.f32_ptr(), "input"), llvm::PointerType::getUnqual(i16_));
    row_taps_ = field(1, llvm::PointerType::getUnqual(ir_.i64()), "row_taps");
    row_tap_count_ = field(2, ir_.i64(), "row_tap_count");
    weights_ = b.CreateBitCast(field(3, ir_.f32_ptr(), "weights"), llvm::PointerType::getUnqual(i32_));
    bias_ = field(4, ir_.f32_ptr(), "bias");
    output_ = b.CreateBitCast(field(5, ir_.f32_ptr(), "output"), llvm::PointerType::getUnqual(i16_));
  }

  int64_t cin() const { return plan_.geometry.in_channels; }
  int64_t cout() const { return plan_.geometry.out_channels; }

  llvm::Value* half_at(llvm::Value* p, llvm::Value* index) { return builder_.CreateGEP(i16_, p, index); }
  llvm::Value* half_at(llvm::Value* p, int64_t index) { return half_at(p, ir_.i64c(index)); }
  llvm::Value* pair_at(llvm::Value* p, llvm::Value* index) { return builder_.CreateGEP(i32_, p, index); }
  llvm::Value* pair_at(llvm::Value* p, int64_t index) { return pair_at(p, ir_.i64c(index)); }

  llvm::Value* load_pairs(llvm::Value* dword_ptr) {
    llvm::Value* p = builder_.CreateBitCast(dword_ptr, llvm::PointerType::getUnqual(pairs_));
    return builder_.CreateAlignedLoad(pairs_, p, llvm::Align(4));
  }
  // Channels 2u and 2u+1 of a voxel as one dword; half: only 2u, the upper half zero.
  llvm::Value* broadcast_pair(llvm::Value* half_ptr, bool half) {
    auto& b = builder_;
    llvm::Value* dword =
        half ? b.CreateZExt(b.CreateAlignedLoad(i16_, half_ptr, llvm::Align(2)), i32_)
             : b.CreateAlignedLoad(i32_, b.CreateBitCast(half_ptr, llvm::PointerType::getUnqual(i32_)), llvm::Align(2));
    return b.CreateVectorSplat(kLanes, dword);
  }
  llvm::Value* dot(llvm::Value* acc, llvm::Value* weights, llvm::Value* inputs) {
    return builder_.CreateIntrinsic(llvm::Intrinsic::x86_avx512bf16_dpbf16ps_512, {}, {acc, weights, inputs});
  }

  void emit_w_phase(int rw) {
    const AxisPhase& phase = plan_.phases[2][rw];
    if (phase.count == 0) return;
    if (plan_.only_group >= 0) {
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

  struct Group {
    llvm::Value* out = nullptr;      // output voxel of phase position 0, the group's first channel (i16)
    llvm::Value* bias = nullptr;     // bias of the group's first channel (float)
    llvm::Value* weights = nullptr;  // this W phase's and group's block inside a (kd, kh) tap (i32)
    int vectors = 0;
    bool masked = false;
  };

  void emit_channel_group(int rw, llvm::Value* group, int vectors, bool masked) {
    const AxisPhase& phase = plan_.phases[2][rw];
    auto& b = builder_;
    llvm::Value* channel0 = b.CreateMul(group, ir_.i64c(int64_t(plan_.oc_block) * kLanes));
    Group gr;
    gr.out = half_at(output_, b.CreateAdd(channel0, ir_.i64c(phase.first_out * cout())));
    gr.bias = ir_.at(bias_, channel0);
    gr.weights = pair_at(weights_, b.CreateAdd(ir_.i64c(plan_.weights_phase_offset(rw)),
                                               b.CreateMul(group, ir_.i64c(plan_.weights_group_stride(rw)))));
    gr.vectors = vectors;
    gr.masked = masked;
    const int64_t out_step = plan_.w_output_step(), in_step = plan_.w_input_step();
    for (const WSegment& s : plan_.w_segments[rw]) {
      const TapMask valid = plan_.w_tap_mask(rw, s);
      auto tile_at = [&](llvm::Value* j, int64_t first) {
        llvm::Value* out = half_at(gr.out, b.CreateMul(j, ir_.i64c(out_step * cout())));
        llvm::Value* in_index =
            b.CreateMul(b.CreateAdd(b.CreateMul(j, ir_.i64c(in_step)), ir_.i64c(phase.first_q)), ir_.i64c(cin()));
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

  void emit_tile(int rw, const TapMask& valid, int width, const Group& gr, llvm::Value* out, llvm::Value* in_index,
                 int64_t first) {
    auto& b = builder_;
    const int vectors = gr.vectors;
    std::vector<llvm::AllocaInst*> acc;
    for (int p = 0; p < width; ++p)
      for (int v = 0; v < vectors; ++v) {
        acc.push_back(ir_.entry_alloca(ir_.vec(), "acc"));
        b.CreateStore(ir_.load_vector(ir_.at(gr.bias, v * kLanes)), acc.back());
      }
    bool any = false;
    for (const auto& row : valid) any = any || std::find(row.begin(), row.end(), true) != row.end();
    if (any) {
      const int64_t pairs = cin() / 2;  // full pairs; an odd Cin adds a half pair
      const bool odd = cin() % 2 != 0;
      const int64_t w_step = plan_.w_taps(rw) * vectors * kLanes;  // dwords per pair
      const int unroll = std::max(1, std::min(plan_.cin_unroll, max_cin_unroll_));
      ir_.loop(row_tap_count_, [&](llvm::Value* k) {
        llvm::Value* entry = b.CreateInBoundsGEP(ir_.i64(), row_taps_, b.CreateMul(k, ir_.i64c(2)));
        llvm::Value* in_bytes = b.CreateAlignedLoad(ir_.i64(), entry, llvm::Align(8));
        llvm::Value* w_bytes =
            b.CreateAlignedLoad(ir_.i64(), b.CreateInBoundsGEP(ir_.i64(), entry, ir_.i64c(1)), llvm::Align(8));
        llvm::Value* in_row = half_at(input_, b.CreateAdd(in_index, b.CreateAShr(in_bytes, 1)));
        llvm::Value* w_row = pair_at(gr.weights, b.CreateAShr(w_bytes, 2));
        const int64_t iterations = pairs / unroll;
        const int remainder = static_cast<int>(pairs % unroll);
        ir_.loop(iterations, [&](llvm::Value* i) {
          llvm::Value* u0 = b.CreateMul(i, ir_.i64c(unroll));
          emit_pairs(rw, valid, width, vectors, unroll, false, acc,
                     ir_.opaque(half_at(in_row, b.CreateMul(u0, ir_.i64c(2)))),
                     ir_.opaque(pair_at(w_row, b.CreateMul(u0, ir_.i64c(w_step)))));
        }, "ci_pair");
        const int64_t done = iterations * unroll;
        if (remainder)
          emit_pairs(rw, valid, width, vectors, remainder, false, acc, half_at(in_row, 2 * done),
                     pair_at(w_row, done * w_step));
        if (odd)
          emit_pairs(rw, valid, width, vectors, 1, true, acc, half_at(in_row, 2 * pairs),
                     pair_at(w_row, pairs * w_step));
      }, "row_tap");
    }
    store_tile(width, gr, acc, out, first);
  }

  // `steps` channel pairs from `in` (bf16) and `w` (dwords); half: one half pair.
  void emit_pairs(int rw, const TapMask& valid, int width, int vectors, int steps, bool half,
                  const std::vector<llvm::AllocaInst*>& acc, llvm::Value* in, llvm::Value* w) {
    auto& b = builder_;
    const AxisPhase& phase = plan_.phases[2][rw];
    const int64_t taps = static_cast<int64_t>(phase.taps.size());
    const int64_t in_step = plan_.w_input_step();
    std::vector<llvm::Value*> sums;
    for (llvm::AllocaInst* a : acc) sums.push_back(b.CreateLoad(ir_.vec(), a));
    for (int u = 0; u < steps; ++u) {
      for (int64_t t = 0; t < taps; ++t) {
        const auto& use = valid[static_cast<size_t>(t)];
        if (std::find(use.begin(), use.end(), true) == use.end()) continue;
        std::vector<llvm::Value*> weight(static_cast<size_t>(vectors));
        for (int v = 0; v < vectors; ++v)
          weight[static_cast<size_t>(v)] = load_pairs(pair_at(w, ((u * taps + t) * vectors + v) * kLanes));
        for (int p = 0; p < width; ++p) {
          if (!use[static_cast<size_t>(p)]) continue;
          const int64_t offset = phase.taps[static_cast<size_t>(t)].offset;
          llvm::Value* x = broadcast_pair(half_at(in, (p * in_step - offset) * cin() + 2 * u), half);
          for (int v = 0; v < vectors; ++v) {
            // Lane-packed: the lanes of another phase's padding weights of
            // 0 keep their sum (0 * NaN or 0 * Inf: a NaN Keras does not
            // make), a merge-masked vdpbf16ps under an opaque opmask (a
            // constant one would become a blend after it).
            const uint32_t bits = plan_.w_pack_input_lanes(static_cast<size_t>(t), v) & 0xFFFFu;
            llvm::Value*& s = sums[static_cast<size_t>(p * vectors + v)];
            llvm::Value* sum = dot(s, weight[static_cast<size_t>(v)], x);
            s = bits == 0xFFFFu ? sum : b.CreateSelect(opmask(bits), sum, s);
          }
        }
        // One W tap's block ends here, as in the float32 kernel (ir_kernel.cc):
        // the next block's loads stay after it, so the tile keeps its registers.
        ir_.pin(sums);
      }
    }
    for (size_t i = 0; i < acc.size(); ++i) b.CreateStore(sums[i], acc[i]);
  }

  // The lane mask `bits` as a <16 x i1> LLVM cannot see through, made once
  // at the function's entry (as in ir_kernel.cc).
  llvm::Value* opmask(uint32_t bits) {
    for (const auto& [known, mask] : opmasks_)
      if (known == bits) return mask;
    llvm::BasicBlock& entry = builder_.GetInsertBlock()->getParent()->getEntryBlock();
    llvm::IRBuilder<> at(&entry, entry.getFirstInsertionPt());
    auto* type = llvm::FunctionType::get(at.getInt32Ty(), {at.getInt32Ty()}, false);
    llvm::Value* word = at.CreateCall(llvm::InlineAsm::get(type, "", "=r,0", false), {at.getInt32(bits)});
    llvm::Value* mask = at.CreateBitCast(at.CreateTrunc(word, at.getInt16Ty()),
                                         llvm::FixedVectorType::get(at.getInt1Ty(), kLanes));
    opmasks_.emplace_back(bits, mask);
    return mask;
  }

  void masked_store_halves(llvm::Value* value, llvm::Value* half_ptr, uint64_t lanes) {
    std::vector<llvm::Constant*> bits;
    for (int i = 0; i < kLanes; ++i) bits.push_back(builder_.getInt1((lanes >> i) & 1));
    llvm::Value* p = builder_.CreateBitCast(half_ptr, llvm::PointerType::getUnqual(halves_));
    builder_.CreateMaskedStore(value, p, llvm::Align(2), llvm::ConstantVector::get(bits));
  }

  // Activation in float32, round to bf16 (nearest even), store.
  void store_tile(int width, const Group& gr, const std::vector<llvm::AllocaInst*>& acc, llvm::Value* out,
                  int64_t first) {
    auto& b = builder_;
    const int64_t pitch = plan_.w_output_step() * cout();
    const uint64_t lane_all = (uint64_t(1) << kLanes) - 1;
    const bool packed_border = first >= 0 && plan_.w_pack > 1;
    const uint64_t voxel_all = packed_border ? (uint64_t(1) << plan_.vector_channels()) - 1 : 0;
    const bool activate = plan_.activation.kind != ActivationKind::kLinear;
    for (int p = 0; p < width; ++p) {
      const uint64_t stored = packed_border ? uint64_t(plan_.w_pack_lane_mask(first + p)) : voxel_all;
      for (int v = 0; v < gr.vectors; ++v) {
        llvm::Value* value = b.CreateLoad(ir_.vec(), acc[static_cast<size_t>(p * gr.vectors + v)]);
        if (activate) value = emit_activation(ir_, plan_.activation, value);
        llvm::Value* bits = b.CreateIntrinsic(llvm::Intrinsic::x86_avx512bf16_cvtneps2bf16_512, {}, {value});
        llvm::Value* dst = half_at(out, p * pitch + v * kLanes);
        if (stored != voxel_all) {
          const uint64_t lanes = v * kLanes < 64 ? (stored >> (v * kLanes)) & lane_all : 0;
          if (lanes) masked_store_halves(bits, dst, lanes);
        } else if (gr.masked && v == gr.vectors - 1) {
          masked_store_halves(bits, dst, (uint64_t(1) << plan_.tail_lanes) - 1);
        } else {
          b.CreateAlignedStore(bits, b.CreateBitCast(dst, llvm::PointerType::getUnqual(halves_)), llvm::Align(2));
        }
      }
    }
  }

  llvm::Module& module_;
  const KernelPlan& plan_;
  int max_cin_unroll_;
  llvm::IRBuilder<> builder_;
  std::vector<std::pair<uint32_t, llvm::Value*>> opmasks_;  // opmask(): the opaque masks, by bits
  IrSupport ir_;
  llvm::Type* i16_ = nullptr;
  llvm::Type* i32_ = nullptr;
  llvm::FixedVectorType* pairs_ = nullptr;   // 16 dwords: bf16 pairs
  llvm::FixedVectorType* halves_ = nullptr;  // 16 bf16
  llvm::Value* input_ = nullptr;
  llvm::Value* row_taps_ = nullptr;
  llvm::Value* row_tap_count_ = nullptr;
  llvm::Value* weights_ = nullptr;
  llvm::Value* bias_ = nullptr;
  llvm::Value* output_ = nullptr;
};

}  // namespace

llvm::Function* emit_bf16_row_kernel(llvm::Module& module, const KernelPlan& plan, const std::string& name,
                                     int max_cin_unroll) {
  return Bf16RowKernelEmitter(module, plan, max_cin_unroll).emit(name);
}

}  // namespace tconv3d::llvm_backend
