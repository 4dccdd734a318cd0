#include "emit/llvm/ir_bf16_kernel.hpp"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/IntrinsicsX86.h>

#include <algorithm>
#include <vector>

#include "emit/llvm/ir_activation.hpp"
#include "emit/llvm/ir_kernel.hpp"
#include "emit/llvm/ir_row_loops.hpp"
#include "emit/llvm/ir_support.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

using codegen::AxisPhase;
using codegen::KernelPlan;

using TapMask = KernelPlan::WTapMask;

constexpr int kLanes = 16;

class Bf16RowKernelEmitter {
 public:
  Bf16RowKernelEmitter(llvm::Module& module, const KernelPlan& plan, int max_cin_unroll)
      : module_(module), plan_(plan), max_cin_unroll_(max_cin_unroll), builder_(module.getContext()),
        ir_(builder_, module, kLanes) {
    if (!plan.bf16()) throw Error("dtype", "the llvm bf16 emitter was given a float32 plan");
    if (plan.isa != Isa::kAvx512)
      throw Error("isa", "bf16 kernels are AVX-512 code, but the plan is for " + to_string(plan.isa));
    // A plan variant this emitter does not implement is refused, never
    // emitted as something else (e.g. 8-lane ymm bf16 plans, Xbyak's alone).
    if (plan.lanes != kLanes)
      throw Error("plan", "the llvm bf16 emitter has 16-lane (zmm) vectors only; this plan has " +
                              std::to_string(plan.lanes) + "-lane vectors (run it with --backend xbyak)");
    if (plan.activation_row_pass) throw Error("plan", "a bf16 plan fuses its activation: no row pass");
    if (plan.tile_w < 1 || plan.oc_block < 1) throw Error("plan", "the bf16 plan has no register tile");
    llvm::LLVMContext& ctx = module.getContext();
    i16_ = llvm::Type::getInt16Ty(ctx);
    i32_ = llvm::Type::getInt32Ty(ctx);
    pairs_ = llvm::FixedVectorType::get(i32_, kLanes);
    halves_ = llvm::FixedVectorType::get(i16_, kLanes);
  }

  // The KernelArgs fields typed for bf16: input and output hold bf16 (i16),
  // the weights dword pairs (i32), the bias float32.
  llvm::Function* emit(const std::string& name) {
    auto& b = builder_;
    args_ = begin_row_kernel(b, module_, name);
    args_.input = b.CreateBitCast(args_.input, llvm::PointerType::getUnqual(i16_));
    args_.weights = b.CreateBitCast(args_.weights, llvm::PointerType::getUnqual(i32_));
    args_.output = b.CreateBitCast(args_.output, llvm::PointerType::getUnqual(i16_));
    for (int rw = 0; rw < static_cast<int>(plan_.phases[2].size()); ++rw) emit_w_phase(rw);
    b.CreateRetVoid();
    return args_.function;
  }

 private:
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
    return ir_.dpbf16ps(acc, weights, inputs);
  }

  void emit_w_phase(int rw) {
    if (plan_.phases[2][rw].count == 0) return;
    for_each_channel_group(ir_, plan_, [&](llvm::Value* g, int vectors, bool masked) {
      emit_channel_group(rw, g, vectors, masked);
    });
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
    gr.out = half_at(args_.output, b.CreateAdd(channel0, ir_.i64c(phase.first_out * cout())));
    gr.bias = ir_.at(args_.bias, channel0);
    gr.weights = pair_at(args_.weights, b.CreateAdd(ir_.i64c(plan_.weights_phase_offset(rw)),
                                                      b.CreateMul(group, ir_.i64c(plan_.weights_group_stride(rw)))));
    gr.vectors = vectors;
    gr.masked = masked;
    const int64_t out_step = plan_.w_output_step(), in_step = plan_.w_input_step();
    for_each_w_tile(ir_, plan_, rw, [&](const TapMask& valid, int width, llvm::Value* j, int64_t first) {
      llvm::Value* out = half_at(gr.out, b.CreateMul(j, ir_.i64c(out_step * cout())));
      llvm::Value* in_index =
          b.CreateMul(b.CreateAdd(b.CreateMul(j, ir_.i64c(in_step)), ir_.i64c(phase.first_q)), ir_.i64c(cin()));
      emit_tile(rw, valid, width, gr, out, in_index, first);
    });
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
    if (any_valid(valid)) {
      const int64_t pairs = cin() / 2;  // full pairs; an odd Cin adds a half pair
      const bool odd = cin() % 2 != 0;
      const int64_t w_step = plan_.w_taps(rw) * vectors * kLanes;  // dwords per pair
      const int unroll = std::max(1, std::min(plan_.cin_unroll, max_cin_unroll_));
      ir_.loop(args_.row_tap_count, [&](llvm::Value* k) {
        const auto [in_bytes, w_bytes] = ir_.load_i64_pair(args_.row_taps, k);
        llvm::Value* in_row = half_at(args_.input, b.CreateAdd(in_index, b.CreateAShr(in_bytes, 1)));
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
    const int64_t taps = plan_.w_taps(rw);
    const int64_t in_step = plan_.w_input_step();
    TapSteps step;
    step.weights = [&](int u, int64_t t) {
      std::vector<llvm::Value*> weight(static_cast<size_t>(vectors));
      for (int v = 0; v < vectors; ++v)
        weight[static_cast<size_t>(v)] = load_pairs(pair_at(w, ((u * taps + t) * vectors + v) * kLanes));
      return weight;
    };
    step.input = [&](int u, int p, int64_t offset) {
      return broadcast_pair(half_at(in, (p * in_step - offset) * cin() + 2 * u), half);
    };
    step.accumulate = [&](llvm::Value*& s, llvm::Value* weight, llvm::Value* x, size_t t, int v) {
      // Lane-packed: the lanes of another phase's padding weights of 0 keep
      // their sum (0 * NaN or 0 * Inf: a NaN Keras does not make), a
      // merge-masked vdpbf16ps under an opaque opmask (a constant one would
      // become a blend after it).
      const uint32_t bits = plan_.w_pack_input_lanes(t, v) & 0xFFFFu;
      llvm::Value* sum = dot(s, weight, x);
      s = bits == 0xFFFFu ? sum : builder_.CreateSelect(ir_.opaque_mask(bits), sum, s);
    };
    emit_tap_steps(ir_, plan_, rw, valid, width, vectors, steps, acc, step);
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
    const bool activate = plan_.activation.kind != ActivationKind::kLinear;
    for (int p = 0; p < width; ++p) {
      for (int v = 0; v < gr.vectors; ++v) {
        llvm::Value* value = b.CreateLoad(ir_.vec(), acc[static_cast<size_t>(p * gr.vectors + v)]);
        if (activate) value = emit_activation(ir_, plan_.activation, value);
        llvm::Value* bits = b.CreateIntrinsic(llvm::Intrinsic::x86_avx512bf16_cvtneps2bf16_512, {}, {value});
        llvm::Value* dst = half_at(out, p * pitch + v * kLanes);
        const uint64_t lanes = tile_store_lanes(plan_, first, p, v, gr.vectors, gr.masked);
        if (lanes == kAllLanes)
          b.CreateAlignedStore(bits, b.CreateBitCast(dst, llvm::PointerType::getUnqual(halves_)), llvm::Align(2));
        else if (lanes)
          masked_store_halves(bits, dst, lanes);
      }
    }
  }

  llvm::Module& module_;
  const KernelPlan& plan_;
  int max_cin_unroll_;
  llvm::IRBuilder<> builder_;
  IrSupport ir_;
  RowKernelArgs args_;  // bf16: input and output as i16 pointers, weights as i32
  llvm::Type* i16_ = nullptr;
  llvm::Type* i32_ = nullptr;
  llvm::FixedVectorType* pairs_ = nullptr;   // 16 dwords: bf16 pairs
  llvm::FixedVectorType* halves_ = nullptr;  // 16 bf16
};

}  // namespace

llvm::Function* emit_bf16_row_kernel(llvm::Module& module, const KernelPlan& plan, const std::string& name,
                                     int max_cin_unroll) {
  return Bf16RowKernelEmitter(module, plan, max_cin_unroll).emit(name);
}

}  // namespace tconv3d::llvm_backend
