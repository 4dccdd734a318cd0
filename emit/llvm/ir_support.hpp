// Small IRBuilder helpers shared by the LLVM emitters: the kernel function
// and its argument fields, counted loops that LLVM will not unroll (the plan
// already decided the unrolling), vector constants, splats, FMAs, vdpbf16ps,
// opaque lane masks and masked memory operations.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

namespace tconv3d::llvm_backend {

class IrSupport {
 public:
  IrSupport(llvm::IRBuilder<>& builder, llvm::Module& module, int lanes);

  llvm::IRBuilder<>& b() { return b_; }
  int lanes() const { return lanes_; }
  llvm::Type* f32() const { return b_.getFloatTy(); }
  llvm::Type* i64() const { return b_.getInt64Ty(); }
  llvm::FixedVectorType* vec() const { return vec_; }
  llvm::PointerType* f32_ptr() const { return llvm::PointerType::getUnqual(b_.getFloatTy()); }

  llvm::Value* i64c(int64_t v) { return b_.getInt64(static_cast<uint64_t>(v)); }
  llvm::Value* splat(float v);
  llvm::Value* splat(llvm::Value* scalar);
  llvm::Value* int_splat(int32_t v);

  // ptr + index floats.
  llvm::Value* at(llvm::Value* float_ptr, llvm::Value* index);
  llvm::Value* at(llvm::Value* float_ptr, int64_t index) { return at(float_ptr, i64c(index)); }
  // Same, for a pointer that may lie outside the object (never dereferenced there).
  llvm::Value* at_any(llvm::Value* float_ptr, llvm::Value* index);
  llvm::Value* at_any(llvm::Value* float_ptr, int64_t index) { return at_any(float_ptr, i64c(index)); }
  llvm::Value* load_vector(llvm::Value* float_ptr);
  void store_vector(llvm::Value* value, llvm::Value* float_ptr);
  // Lanes [0, valid) only; the others read as zero and are not written.
  llvm::Value* masked_load(llvm::Value* float_ptr, int valid);
  void masked_store(llvm::Value* value, llvm::Value* float_ptr, int valid);
  // Lanes whose bit is set in `lanes` only.
  void masked_store_lanes(llvm::Value* value, llvm::Value* float_ptr, uint64_t lanes);
  llvm::Value* load_scalar(llvm::Value* float_ptr);

  llvm::Value* fma(llvm::Value* a, llvm::Value* b, llvm::Value* c);  // a*b + c, fused
  // vdpbf16ps: acc (16 floats) + the products of the bf16 pairs of a and b
  // (16 dwords each, any 512-bit vector type), through
  // llvm.x86.avx512bf16.dpbf16ps.512 (a and b become the operand types the
  // LLVM version declares: 16 x i32, or 32 x bfloat in newer ones).
  llvm::Value* dpbf16ps(llvm::Value* acc, llvm::Value* a, llvm::Value* b);
  llvm::Value* unary(llvm::Intrinsic::ID id, llvm::Value* x);         // fabs, sqrt, rint...
  // std::min/std::max semantics: min(a, b) = b < a ? b : a.
  llvm::Value* min(llvm::Value* a, llvm::Value* b);
  llvm::Value* max(llvm::Value* a, llvm::Value* b);

  // The same pointer through an empty asm the optimizer cannot see through
  // (no instruction; at most a register copy). Loads from constant offsets
  // of it are not loop induction variables, so code generation's loop
  // strength reduction, slow on large unrolled bodies, has nothing to rewrite.
  llvm::Value* opaque(llvm::Value* pointer);

  // The lane mask `bits` (bit l: lane l) as a <lanes x i1> LLVM cannot see
  // through, made once per function at its entry block. A constant mask in a
  // select after an FMA becomes a blend (an extra operation per FMA); an
  // opaque one becomes an opmask the select folds into a merge-masked FMA.
  llvm::Value* opaque_mask(uint32_t bits);

  // Entries 2*index and 2*index + 1 of an i64 table (the row-tap and pair
  // lists the kernels get at run time: two byte offsets per entry).
  std::pair<llvm::Value*, llvm::Value*> load_i64_pair(llvm::Value* table, llvm::Value* index);

  // An empty asm that may touch memory: loads are neither merged nor moved across it.
  void memory_barrier();

  // Replaces `values` (vectors) by themselves passed through an empty x86
  // asm that also acts as a memory barrier: everything computing them stays
  // before it, every load after it stays after, and no load is merged with
  // one on the other side. Costs no instruction. This is how the emitter
  // keeps LLVM from reordering an FMA block into more live vectors than the
  // register file holds (see ir_kernel.cc). Non-x86 targets cannot name the
  // registers this way: compile_to_object calls lower_pins_to_barriers.
  void pin(std::vector<llvm::Value*>& values);

  // An alloca in the function's entry block (so SROA turns it into registers).
  llvm::AllocaInst* entry_alloca(llvm::Type* type, const char* name);

  // for (i = 0; i < count; ++i) body(i); count is an i64 value (may be 0).
  void loop(llvm::Value* count, const std::function<void(llvm::Value*)>& body, const char* name = "loop");
  void loop(int64_t count, const std::function<void(llvm::Value*)>& body, const char* name = "loop") {
    if (count > 0) loop(i64c(count), body, name);
  }

 private:
  llvm::IRBuilder<>& b_;
  llvm::Module& module_;
  int lanes_;
  llvm::FixedVectorType* vec_;
  llvm::MDNode* no_unroll_ = nullptr;
  struct OpaqueMask {
    llvm::Function* function;
    uint32_t bits;
    llvm::Value* mask;
  };
  std::vector<OpaqueMask> opaque_masks_;  // opaque_mask()'s, per function and bits
};

// Every kernel's shape: `void name(const Args*)`, externally visible, the
// argument noalias and read-only, no builtins (a loop never becomes a
// memset/memcpy call). Adds it to `module`, starts its entry block at
// `builder` and returns it; its argument is f->getArg(0).
llvm::Function* begin_kernel_function(llvm::IRBuilder<>& builder, llvm::Module& module, llvm::StructType* args,
                                      const std::string& name);

// Every field of the argument struct at `args`, in order, typed as the
// struct types it (8-byte aligned loads), the i-th named names[i].
std::vector<llvm::Value*> load_arg_fields(llvm::IRBuilder<>& builder, llvm::StructType* args_type, llvm::Value* args,
                                          const std::vector<const char*>& names);

// Turns every pin in `module` into a plain memory_barrier, for targets whose
// vector registers the pins' "v" constraint does not name.
void lower_pins_to_barriers(llvm::Module& module);

}  // namespace tconv3d::llvm_backend
