#include "emit/llvm/ir_support.hpp"

#include <llvm/IR/InlineAsm.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsX86.h>

#include <vector>

namespace tconv3d::llvm_backend {

IrSupport::IrSupport(llvm::IRBuilder<>& builder, llvm::Module& module, int lanes)
    : b_(builder), module_(module), lanes_(lanes), vec_(llvm::FixedVectorType::get(builder.getFloatTy(), lanes)) {}

llvm::Value* IrSupport::splat(float v) { return llvm::ConstantFP::get(vec_, v); }

llvm::Value* IrSupport::splat(llvm::Value* scalar) { return b_.CreateVectorSplat(lanes_, scalar); }

llvm::Value* IrSupport::int_splat(int32_t v) {
  return llvm::ConstantInt::get(llvm::FixedVectorType::get(b_.getInt32Ty(), lanes_), static_cast<uint64_t>(v), true);
}

llvm::Value* IrSupport::at(llvm::Value* float_ptr, llvm::Value* index) {
  return b_.CreateInBoundsGEP(f32(), float_ptr, index);
}

llvm::Value* IrSupport::at_any(llvm::Value* float_ptr, llvm::Value* index) {
  return b_.CreateGEP(f32(), float_ptr, index);
}

llvm::Value* IrSupport::load_vector(llvm::Value* float_ptr) {
  llvm::Value* p = b_.CreateBitCast(float_ptr, llvm::PointerType::getUnqual(vec_));
  return b_.CreateAlignedLoad(vec_, p, llvm::Align(4));
}

void IrSupport::store_vector(llvm::Value* value, llvm::Value* float_ptr) {
  llvm::Value* p = b_.CreateBitCast(float_ptr, llvm::PointerType::getUnqual(vec_));
  b_.CreateAlignedStore(value, p, llvm::Align(4));
}

namespace {
llvm::Constant* lane_bits(llvm::IRBuilder<>& b, int lanes, uint64_t set) {
  std::vector<llvm::Constant*> bits;
  for (int i = 0; i < lanes; ++i) bits.push_back(b.getInt1((set >> i) & 1));
  return llvm::ConstantVector::get(bits);
}

llvm::Constant* lane_mask(llvm::IRBuilder<>& b, int lanes, int valid) {
  return lane_bits(b, lanes, valid >= 64 ? ~uint64_t(0) : (uint64_t(1) << valid) - 1);
}
}  // namespace

llvm::Value* IrSupport::masked_load(llvm::Value* float_ptr, int valid) {
  llvm::Value* p = b_.CreateBitCast(float_ptr, llvm::PointerType::getUnqual(vec_));
  return b_.CreateMaskedLoad(vec_, p, llvm::Align(4), lane_mask(b_, lanes_, valid), splat(0.0f));
}

void IrSupport::masked_store(llvm::Value* value, llvm::Value* float_ptr, int valid) {
  llvm::Value* p = b_.CreateBitCast(float_ptr, llvm::PointerType::getUnqual(vec_));
  b_.CreateMaskedStore(value, p, llvm::Align(4), lane_mask(b_, lanes_, valid));
}

void IrSupport::masked_store_lanes(llvm::Value* value, llvm::Value* float_ptr, uint64_t lanes) {
  llvm::Value* p = b_.CreateBitCast(float_ptr, llvm::PointerType::getUnqual(vec_));
  b_.CreateMaskedStore(value, p, llvm::Align(4), lane_bits(b_, lanes_, lanes));
}

llvm::Value* IrSupport::load_scalar(llvm::Value* float_ptr) { return b_.CreateAlignedLoad(f32(), float_ptr, llvm::Align(4)); }

llvm::Value* IrSupport::fma(llvm::Value* a, llvm::Value* b, llvm::Value* c) {
  return b_.CreateIntrinsic(llvm::Intrinsic::fma, {a->getType()}, {a, b, c});
}

llvm::Value* IrSupport::dpbf16ps(llvm::Value* acc, llvm::Value* a, llvm::Value* b) {
  llvm::Function* f = llvm::Intrinsic::getDeclaration(&module_, llvm::Intrinsic::x86_avx512bf16_dpbf16ps_512);
  llvm::FunctionType* type = f->getFunctionType();
  return b_.CreateCall(f,
                       {acc, b_.CreateBitCast(a, type->getParamType(1)), b_.CreateBitCast(b, type->getParamType(2))});
}

llvm::Value* IrSupport::opaque_mask(uint32_t bits) {
  llvm::Function* f = b_.GetInsertBlock()->getParent();
  for (const OpaqueMask& m : opaque_masks_)
    if (m.function == f && m.bits == bits) return m.mask;
  llvm::BasicBlock& entry = f->getEntryBlock();
  llvm::IRBuilder<> at(&entry, entry.getFirstInsertionPt());
  auto* type = llvm::FunctionType::get(at.getInt32Ty(), {at.getInt32Ty()}, false);
  llvm::Value* word = at.CreateCall(llvm::InlineAsm::get(type, "", "=r,0", false), {at.getInt32(bits)});
  llvm::Value* mask = at.CreateBitCast(at.CreateTrunc(word, at.getIntNTy(static_cast<unsigned>(lanes_))),
                                       llvm::FixedVectorType::get(at.getInt1Ty(), static_cast<unsigned>(lanes_)));
  opaque_masks_.push_back({f, bits, mask});
  return mask;
}

std::pair<llvm::Value*, llvm::Value*> IrSupport::load_i64_pair(llvm::Value* table, llvm::Value* index) {
  llvm::Value* entry = b_.CreateInBoundsGEP(i64(), table, b_.CreateMul(index, i64c(2)));
  llvm::Value* first = b_.CreateAlignedLoad(i64(), entry, llvm::Align(8));
  llvm::Value* second = b_.CreateAlignedLoad(i64(), b_.CreateInBoundsGEP(i64(), entry, i64c(1)), llvm::Align(8));
  return {first, second};
}

llvm::Value* IrSupport::unary(llvm::Intrinsic::ID id, llvm::Value* x) {
  return b_.CreateIntrinsic(id, {x->getType()}, {x});
}

llvm::Value* IrSupport::min(llvm::Value* a, llvm::Value* b) { return b_.CreateSelect(b_.CreateFCmpOLT(b, a), b, a); }

llvm::Value* IrSupport::max(llvm::Value* a, llvm::Value* b) { return b_.CreateSelect(b_.CreateFCmpOLT(a, b), b, a); }

llvm::Value* IrSupport::opaque(llvm::Value* pointer) {
  auto* type = llvm::FunctionType::get(pointer->getType(), {pointer->getType()}, false);
  return b_.CreateCall(llvm::InlineAsm::get(type, "", "=r,0", false), {pointer});
}

void IrSupport::memory_barrier() {
  auto* type = llvm::FunctionType::get(b_.getVoidTy(), {}, false);
  b_.CreateCall(llvm::InlineAsm::get(type, "", "~{memory}", true), {});
}

namespace {
constexpr const char* kPinMetadata = "tconv3d.pin";
}  // namespace

void IrSupport::pin(std::vector<llvm::Value*>& values) {
  if (values.empty()) return memory_barrier();
  std::vector<llvm::Type*> types;
  std::string constraints;
  for (llvm::Value* v : values) types.push_back(v->getType());
  for (size_t i = 0; i < values.size(); ++i) constraints += "=v,";
  for (size_t i = 0; i < values.size(); ++i) constraints += std::to_string(i) + ",";
  constraints += "~{memory}";
  llvm::Type* result = llvm::StructType::get(b_.getContext(), types);
  auto* type = llvm::FunctionType::get(result, types, false);
  llvm::CallInst* call = b_.CreateCall(llvm::InlineAsm::get(type, "", constraints, true), values);
  call->setMetadata(kPinMetadata, llvm::MDNode::get(b_.getContext(), {}));
  for (size_t i = 0; i < values.size(); ++i) values[i] = b_.CreateExtractValue(call, {static_cast<unsigned>(i)});
}

void lower_pins_to_barriers(llvm::Module& module) {
  std::vector<llvm::CallInst*> pins;
  for (llvm::Function& f : module)
    for (llvm::BasicBlock& block : f)
      for (llvm::Instruction& i : block)
        if (auto* call = llvm::dyn_cast<llvm::CallInst>(&i); call && call->getMetadata(kPinMetadata))
          pins.push_back(call);
  for (llvm::CallInst* call : pins) {
    llvm::IRBuilder<> b(call);
    b.CreateCall(llvm::InlineAsm::get(llvm::FunctionType::get(b.getVoidTy(), {}, false), "", "~{memory}", true), {});
    std::vector<llvm::Instruction*> extracts;
    for (llvm::User* user : call->users()) extracts.push_back(llvm::cast<llvm::Instruction>(user));
    for (llvm::Instruction* e : extracts) {
      const unsigned index = llvm::cast<llvm::ExtractValueInst>(e)->getIndices()[0];
      e->replaceAllUsesWith(call->getArgOperand(index));
      e->eraseFromParent();
    }
    call->eraseFromParent();
  }
}

llvm::AllocaInst* IrSupport::entry_alloca(llvm::Type* type, const char* name) {
  llvm::Function* f = b_.GetInsertBlock()->getParent();
  llvm::IRBuilder<> entry(&f->getEntryBlock(), f->getEntryBlock().begin());
  return entry.CreateAlloca(type, nullptr, name);
}

void IrSupport::loop(llvm::Value* count, const std::function<void(llvm::Value*)>& body, const char* name) {
  llvm::LLVMContext& ctx = b_.getContext();
  if (!no_unroll_) no_unroll_ = llvm::MDNode::get(ctx, {llvm::MDString::get(ctx, "llvm.loop.unroll.disable")});
  llvm::Function* f = b_.GetInsertBlock()->getParent();
  llvm::BasicBlock* before = b_.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(ctx, name, f);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx, std::string(name) + ".end", f);
  llvm::Value* zero = i64c(0);
  b_.CreateCondBr(b_.CreateICmpSGT(count, zero), header, exit);
  b_.SetInsertPoint(header);
  llvm::PHINode* i = b_.CreatePHI(i64(), 2, std::string(name) + ".i");
  i->addIncoming(zero, before);
  body(i);
  llvm::Value* next = b_.CreateAdd(i, i64c(1));
  i->addIncoming(next, b_.GetInsertBlock());
  llvm::BranchInst* back = b_.CreateCondBr(b_.CreateICmpSLT(next, count), header, exit);
  // Each loop gets its own distinct, self-referencing ID saying "do not
  // unroll": the plan already chose the unrolling.
  llvm::TempMDTuple placeholder = llvm::MDTuple::getTemporary(ctx, {});
  llvm::MDNode* id = llvm::MDNode::getDistinct(ctx, {placeholder.get(), no_unroll_});
  id->replaceOperandWith(0, id);
  back->setMetadata(llvm::LLVMContext::MD_loop, id);
  b_.SetInsertPoint(exit);
}

llvm::Function* begin_kernel_function(llvm::IRBuilder<>& builder, llvm::Module& module, llvm::StructType* args,
                                      const std::string& name) {
  auto* type = llvm::FunctionType::get(builder.getVoidTy(), {llvm::PointerType::getUnqual(args)}, false);
  llvm::Function* f = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, module);
  f->setDSOLocal(true);
  f->addFnAttr(llvm::Attribute::NoUnwind);
  f->addFnAttr("no-builtins");
  f->addParamAttr(0, llvm::Attribute::NoAlias);
  f->addParamAttr(0, llvm::Attribute::ReadOnly);
  builder.SetInsertPoint(llvm::BasicBlock::Create(module.getContext(), "entry", f));
  return f;
}

std::vector<llvm::Value*> load_arg_fields(llvm::IRBuilder<>& builder, llvm::StructType* args_type, llvm::Value* args,
                                          const std::vector<const char*>& names) {
  std::vector<llvm::Value*> fields;
  for (unsigned i = 0; i < args_type->getNumElements(); ++i)
    fields.push_back(builder.CreateAlignedLoad(args_type->getElementType(i),
                                               builder.CreateStructGEP(args_type, args, i), llvm::Align(8),
                                               i < names.size() ? names[i] : ""));
  return fields;
}

}  // namespace tconv3d::llvm_backend
