#include "emit/llvm/ir_kernel_gradient.hpp"

#include <llvm/IR/IRBuilder.h>

#include <vector>

#include "emit/llvm/ir_support.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

using codegen::KernelGradientPlan;
using codegen::KgWSegment;
using codegen::RowTileClass;

class KernelGradientIrEmitter {
 public:
  KernelGradientIrEmitter(llvm::Module& module, const KernelGradientPlan& plan)
      : module_(module), plan_(plan), builder_(module.getContext()), ir_(builder_, module, plan.lanes) {
    if (plan.rows < 1 || plan.ci_vectors < 1 || plan.classes.empty() ||
        plan.w_segments.size() != plan.classes.size())
      throw Error("plan", "the kernel-gradient plan has no register tile (rows " + std::to_string(plan.rows) +
                              ", ci vectors " + std::to_string(plan.ci_vectors) + ")");
    // The voxel-pair (bf16) variant is vdpbf16ps over 16 lanes of dword pairs.
    if (plan.bf16() && (plan.isa != Isa::kAvx512 || plan.lanes != 16))
      throw Error("plan", "the llvm bf16 kernel-gradient kernel needs an avx512 plan with 16 lanes; this one has " +
                              std::to_string(plan.lanes) + " lanes for " + to_string(plan.isa));
  }

  // bf16: x and dz are the voxel-pair arrays (kernel_gradient_plan.hpp), one
  // dword (two bf16) per channel, read through float pointers like float32
  // data: every offset below counts dwords either way.
  llvm::Function* emit(const std::string& name) {
    llvm::StructType* type = kernel_gradient_args_type(module_.getContext());
    llvm::Function* f = begin_kernel_function(builder_, module_, type, name);
    const std::vector<llvm::Value*> a =
        load_arg_fields(builder_, type, f->getArg(0),
                        {"x", "dz", "pairs", "pair_count", "dk", "accumulate", "tile_begin", "tile_end", "block_begin",
                         "block_end"});
    x_ = a[0], dz_ = a[1], pairs_ = a[2], pair_count_ = a[3], dk_ = a[4];
    accumulate_ = a[5], tile_begin_ = a[6], tile_end_ = a[7], block_begin_ = a[8], block_end_ = a[9];
    for (size_t k = 0; k < plan_.classes.size(); ++k) emit_class(k);
    builder_.CreateRetVoid();
    return f;
  }

 private:
  int64_t ci() const { return plan_.geometry.in_channels; }
  int64_t co() const { return plan_.geometry.out_channels; }
  int64_t block_floats() const { return int64_t(plan_.ci_vectors) * plan_.lanes; }

  llvm::Value* smax(llvm::Value* a, int64_t b) {
    llvm::Value* c = ir_.i64c(b);
    return builder_.CreateSelect(builder_.CreateICmpSGT(a, c), a, c);
  }
  llvm::Value* smin(llvm::Value* a, int64_t b) {
    llvm::Value* c = ir_.i64c(b);
    return builder_.CreateSelect(builder_.CreateICmpSLT(a, c), a, c);
  }

  // The tiles of class k inside [tile_begin, tile_end).
  void emit_class(size_t k) {
    const RowTileClass& c = plan_.classes[k];
    auto& b = builder_;
    llvm::Value* first = smax(tile_begin_, c.first_tile);
    llvm::Value* end = smin(tile_end_, c.first_tile + c.count);
    ir_.loop(b.CreateSub(end, first), [&](llvm::Value* i) {
      // The tile's first output channel: co_first + (tile - first_tile) * co_count.
      llvm::Value* index = b.CreateSub(b.CreateAdd(first, i), ir_.i64c(c.first_tile));
      llvm::Value* co0 = b.CreateAdd(ir_.i64c(c.co_first), b.CreateMul(index, ir_.i64c(c.co_count)));
      llvm::Value* dk_tile =
          ir_.at_any(dk_, b.CreateMul(b.CreateAdd(ir_.i64c(int64_t(c.kw_first) * co()), co0), ir_.i64c(ci())));
      emit_blocks(k, co0, dk_tile);
    }, "tile");
  }

  // The ci blocks inside [block_begin, block_end): a loop over the uniform
  // ones, then the last block when it is narrower.
  void emit_blocks(size_t k, llvm::Value* co0, llvm::Value* dk_tile) {
    auto& b = builder_;
    const int uniform = plan_.uniform_blocks;
    if (uniform > 0) {
      llvm::Value* end = smin(block_end_, uniform);
      ir_.loop(b.CreateSub(end, block_begin_), [&](llvm::Value* i) {
        llvm::Value* block = b.CreateAdd(block_begin_, i);
        emit_body(k, co0, dk_tile, b.CreateMul(block, ir_.i64c(block_floats())), plan_.ci_vectors, false);
      }, "block");
    }
    if (plan_.tail_block_vectors) {
      llvm::LLVMContext& ctx = module_.getContext();
      llvm::Function* f = b.GetInsertBlock()->getParent();
      llvm::BasicBlock* tail = llvm::BasicBlock::Create(ctx, "tail_block", f);
      llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx, "tail_block.end", f);
      llvm::Value* runs = b.CreateAnd(b.CreateICmpSLE(block_begin_, ir_.i64c(uniform)),
                                      b.CreateICmpSGT(block_end_, ir_.i64c(uniform)));
      b.CreateCondBr(runs, tail, done);
      b.SetInsertPoint(tail);
      emit_body(k, co0, dk_tile, ir_.i64c(int64_t(uniform) * block_floats()), plan_.tail_block_vectors,
                plan_.tail_lanes != 0);
      b.CreateBr(done);
      b.SetInsertPoint(done);
    }
  }

  // Row r of a tile (kw_first + r / co_count, its co + r % co_count) in dK,
  // relative to the tile's first row, in floats.
  int64_t dk_row_offset(const RowTileClass& c, int r) const {
    return (int64_t(r / c.co_count) * co() + r % c.co_count) * ci();
  }

  llvm::Value* load(llvm::Value* at, bool masked_vector) {
    return masked_vector ? ir_.masked_load(at, plan_.tail_lanes) : ir_.load_vector(at);
  }

  // One tile and ci block over every pair of the call.
  void emit_body(size_t k, llvm::Value* co0, llvm::Value* dk_tile, llvm::Value* block_offset, int vectors,
                 bool masked) {
    const RowTileClass& c = plan_.classes[k];
    auto& b = builder_;
    llvm::LLVMContext& ctx = module_.getContext();
    llvm::Function* f = b.GetInsertBlock()->getParent();
    const int rows = c.rows();
    llvm::Value* dk_block = ir_.at_any(dk_tile, block_offset);
    auto dk_at = [&](int r, int v) { return ir_.at_any(dk_block, dk_row_offset(c, r) + int64_t(v) * plan_.lanes); };

    std::vector<llvm::AllocaInst*> acc;
    for (int i = 0; i < rows * vectors; ++i) acc.push_back(ir_.entry_alloca(ir_.vec(), "acc"));
    llvm::BasicBlock* from_dk = llvm::BasicBlock::Create(ctx, "acc_load", f);
    llvm::BasicBlock* zero = llvm::BasicBlock::Create(ctx, "acc_zero", f);
    llvm::BasicBlock* ready = llvm::BasicBlock::Create(ctx, "acc_ready", f);
    b.CreateCondBr(b.CreateICmpNE(accumulate_, ir_.i64c(0)), from_dk, zero);
    b.SetInsertPoint(from_dk);
    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < vectors; ++v)
        b.CreateStore(load(dk_at(r, v), masked && v == vectors - 1), acc[static_cast<size_t>(r * vectors + v)]);
    b.CreateBr(ready);
    b.SetInsertPoint(zero);
    for (llvm::AllocaInst* a : acc) b.CreateStore(ir_.splat(0.0f), a);
    b.CreateBr(ready);
    b.SetInsertPoint(ready);

    ir_.loop(pair_count_, [&](llvm::Value* p) {
      const auto [x_bytes, dz_bytes] = ir_.load_i64_pair(pairs_, p);
      llvm::Value* x_row = ir_.at_any(x_, b.CreateAdd(b.CreateAShr(x_bytes, 2), block_offset));
      llvm::Value* dz_row = ir_.at_any(dz_, b.CreateAdd(b.CreateAShr(dz_bytes, 2), co0));
      for (const KgWSegment& s : plan_.w_segments[k]) emit_segment(c, s, x_row, dz_row, vectors, masked, acc);
    }, "pair");

    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < vectors; ++v) {
        llvm::Value* value = b.CreateLoad(ir_.vec(), acc[static_cast<size_t>(r * vectors + v)]);
        if (masked && v == vectors - 1)
          ir_.masked_store(value, dk_at(r, v), plan_.tail_lanes);
        else
          ir_.store_vector(value, dk_at(r, v));
      }
  }

  // W voxels [first, first + count): straight-line for a single voxel, else
  // a loop of w_unroll voxels per iteration and a straight-line remainder.
  // (bf16: W steps are voxel pairs, two voxels' strides apart in dz.)
  void emit_segment(const RowTileClass& c, const KgWSegment& s, llvm::Value* x_row, llvm::Value* dz_row, int vectors,
                    bool masked, const std::vector<llvm::AllocaInst*>& acc) {
    auto& b = builder_;
    const int64_t dz_step = (plan_.bf16() ? 2 : 1) * plan_.geometry.axes[2].stride * co();
    llvm::Value* x = ir_.at_any(x_row, s.first * ci());
    llvm::Value* dz = ir_.at_any(dz_row, s.first * dz_step);
    const int unroll = s.count == 1 ? 1 : plan_.w_unroll;
    const int64_t iterations = s.count / unroll;
    auto steps = [&](llvm::Value* x_at, llvm::Value* dz_at, int64_t count) {
      std::vector<llvm::Value*> sums;
      for (llvm::AllocaInst* a : acc) sums.push_back(b.CreateLoad(ir_.vec(), a));
      for (int64_t u = 0; u < count; ++u)
        emit_step(c, s, ir_.at_any(x_at, u * ci()), ir_.at_any(dz_at, u * dz_step), vectors, masked, sums);
      for (size_t i = 0; i < acc.size(); ++i) b.CreateStore(sums[i], acc[i]);
    };
    if (iterations == 1) {
      steps(x, dz, unroll);
    } else if (iterations > 1) {
      ir_.loop(iterations, [&](llvm::Value* i) {
        llvm::Value* voxel = b.CreateMul(i, ir_.i64c(unroll));
        steps(ir_.at_any(x, b.CreateMul(voxel, ir_.i64c(ci()))), ir_.at_any(dz, b.CreateMul(voxel, ir_.i64c(dz_step))),
              unroll);
      }, "w");
    }
    const int64_t done = iterations * unroll;
    if (s.count > done) steps(ir_.at_any(x, done * ci()), ir_.at_any(dz, done * dz_step), s.count - done);
  }

  // One input voxel: its x vectors times the dz value of every valid row.
  // bf16: one voxel pair, its x pairs dotted with the dz pair of every valid
  // row (vdpbf16ps: x as the first operand, the broadcast as the second, as
  // in the Xbyak kernel).
  void emit_step(const RowTileClass& c, const KgWSegment& s, llvm::Value* x, llvm::Value* dz, int vectors,
                 bool masked, std::vector<llvm::Value*>& sums) {
    const AxisGeometry& w = plan_.geometry.axes[2];
    std::vector<llvm::Value*> xv(static_cast<size_t>(vectors));
    for (int v = 0; v < vectors; ++v)
      xv[static_cast<size_t>(v)] = load(ir_.at_any(x, int64_t(v) * plan_.lanes), masked && v == vectors - 1);
    for (int kk = 0; kk < c.kw_count; ++kk) {
      if (!s.kw_valid[static_cast<size_t>(kk)]) continue;
      const int64_t tap = ((c.kw_first + kk) * w.dilation - w.crop_begin) * co();
      for (int col = 0; col < c.co_count; ++col) {
        const int r = kk * c.co_count + col;
        llvm::Value* d = ir_.splat(ir_.load_scalar(ir_.at_any(dz, tap + col)));
        for (int v = 0; v < vectors; ++v) {
          llvm::Value*& sum = sums[static_cast<size_t>(r * vectors + v)];
          llvm::Value* xs = xv[static_cast<size_t>(v)];
          sum = plan_.bf16() ? ir_.dpbf16ps(sum, xs, d) : ir_.fma(xs, d, sum);
        }
      }
    }
    // One voxel's block ends here, as in the Xbyak kernel: without the pin,
    // LLVM may hoist the next voxel's loads above these FMAs and keep more
    // vectors live than the plan's tile leaves registers for.
    ir_.pin(sums);
  }

  llvm::Module& module_;
  const KernelGradientPlan& plan_;
  llvm::IRBuilder<> builder_;
  IrSupport ir_;
  // The KernelGradientArgs fields (emit()).
  llvm::Value *x_ = nullptr, *dz_ = nullptr, *pairs_ = nullptr, *pair_count_ = nullptr, *dk_ = nullptr;
  llvm::Value *accumulate_ = nullptr, *tile_begin_ = nullptr, *tile_end_ = nullptr, *block_begin_ = nullptr,
              *block_end_ = nullptr;
};

}  // namespace

llvm::StructType* kernel_gradient_args_type(llvm::LLVMContext& ctx) {
  namespace off = codegen::gradient_args_offset;
  static_assert(off::kX == 0 && off::kDz == 8 && off::kPairs == 16 && off::kPairCount == 24 && off::kDk == 32 &&
                    off::kAccumulate == 40 && off::kTileBegin == 48 && off::kTileEnd == 56 &&
                    off::kBlockBegin == 64 && off::kBlockEnd == 72 && sizeof(codegen::KernelGradientArgs) == 80,
                "KernelGradientArgs changed: update kernel_gradient_args_type()");
  if (auto* existing = llvm::StructType::getTypeByName(ctx, "tconv3d.KernelGradientArgs")) return existing;
  llvm::Type* f32p = llvm::PointerType::getUnqual(llvm::Type::getFloatTy(ctx));
  llvm::Type* i64 = llvm::Type::getInt64Ty(ctx);
  return llvm::StructType::create(ctx, {f32p, f32p, llvm::PointerType::getUnqual(i64), i64, f32p, i64, i64, i64, i64, i64},
                                  "tconv3d.KernelGradientArgs");
}

llvm::Function* emit_kernel_gradient_kernel(llvm::Module& module, const KernelGradientPlan& plan,
                                            const std::string& name) {
  return KernelGradientIrEmitter(module, plan).emit(name);
}

}  // namespace tconv3d::llvm_backend
