#include "emit/llvm/aot_module.hpp"

#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include "emit/llvm/compile.hpp"
#include "emit/llvm/ir_kernel.hpp"
#include "emit/llvm/ir_support.hpp"
#include "plan/row_taps.hpp"
#include "plan/weight_pack.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::llvm_backend {
namespace {

using codegen::KernelPlan;

class AotModuleEmitter {
 public:
  AotModuleEmitter(llvm::Module& module, const AotModuleRequest& request)
      : module_(module),
        request_(request),
        plan_(*request.plan),
        ctx_(module.getContext()),
        b_(ctx_),
        ir_(b_, module, plan_.lanes) {}

  void emit() {
    // The JIT's kernels: one per channel group when the plan splits them.
    const int kernels = plan_.split_groups ? plan_.oc_groups : 1;
    if (!request_.row_kernel_bytes.empty() && request_.row_kernel_bytes.size() != size_t(kernels))
      throw Error("plan", "expected " + std::to_string(kernels) + " row kernels, got " +
                              std::to_string(request_.row_kernel_bytes.size()));
    for (int k = 0; k < kernels; ++k) {
      const std::string name = request_.symbol + "__row" + std::to_string(k);
      if (request_.row_kernel_bytes.empty()) {
        row_kernels_.push_back(emit_row_kernel(module_, plan_.split_groups ? plan_.for_group(k) : plan_, name));
        row_kernels_.back()->setLinkage(llvm::GlobalValue::InternalLinkage);
      } else {
        embed_row_kernel_bytes(name, request_.row_kernel_bytes[static_cast<size_t>(k)]);
      }
    }
    const bool baked = !request_.packed_weights.empty();
    emit_constant_function(request_.symbol + "_workspace_size", workspace_bytes());
    if (!baked) {
      emit_constant_function(request_.symbol + "_packed_size", packed_floats());
      emit_pack();
    }
    emit_driver(baked);
  }

 private:
  int64_t packed_floats() const { return plan_.packed_weight_count() + plan_.padded_out_channels(); }
  int64_t workspace_bytes() const {
    if (!plan_.transpose_channels_first) return 0;
    return 4 * (aligned(plan_.geometry.input_elements()) + plan_.geometry.output_elements());
  }
  static int64_t aligned(int64_t floats) { return (floats + 15) / 16 * 16; }

  llvm::Function* exported(const std::string& name, llvm::Type* result, std::vector<llvm::Type*> params) {
    auto* f = llvm::Function::Create(llvm::FunctionType::get(result, params, false), llvm::Function::ExternalLinkage,
                                     name, module_);
    f->setDSOLocal(true);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    f->addFnAttr("no-builtins");  // no memset/memcpy calls: the object needs no library
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", f));
    return f;
  }

  // The Xbyak bytes become a local function symbol in .text, written by the
  // integrated assembler exactly as given: position-independent code needs no
  // relocation, so the bytes run unchanged wherever the linker puts them.
  void embed_row_kernel_bytes(const std::string& name, const std::vector<uint8_t>& bytes) {
    auto* type = llvm::FunctionType::get(b_.getVoidTy(), {llvm::PointerType::getUnqual(kernel_args_type(ctx_))}, false);
    llvm::Function* kernel = llvm::Function::Create(type, llvm::Function::ExternalLinkage, name, module_);
    kernel->setDSOLocal(true);
    kernel->setVisibility(llvm::GlobalValue::HiddenVisibility);
    row_kernels_.push_back(kernel);
    std::string text = "\t.section .text." + name + ",\"ax\",@progbits\n\t.p2align 6\n\t.type " + name +
                       ",@function\n\t.hidden " + name + "\n" + name + ":\n";
    for (size_t i = 0; i < bytes.size(); i += 32) {
      text += "\t.byte ";
      for (size_t j = i; j < std::min(bytes.size(), i + 32); ++j)
        text += (j > i ? "," : "") + std::to_string(static_cast<unsigned>(bytes[j]));
      text += "\n";
    }
    text += "\t.size " + name + ", .-" + name + "\n\t.text\n";
    module_.appendModuleInlineAsm(text);
  }

  llvm::GlobalVariable* constant_array(const std::string& name, llvm::Constant* init) {
    auto* g = new llvm::GlobalVariable(module_, init->getType(), true, llvm::GlobalValue::InternalLinkage, init,
                                       request_.symbol + "__" + name);
    g->setAlignment(llvm::Align(64));
    g->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    return g;
  }

  llvm::Value* first_element(llvm::GlobalVariable* g) {
    return b_.CreateConstInBoundsGEP2_64(g->getValueType(), g, 0, 0);
  }

  void emit_constant_function(const std::string& name, int64_t value) {
    exported(name, ir_.i64(), {});
    b_.CreateRet(ir_.i64c(value));
  }

  // NAME_pack: zeros, then the plan's packing runs (plan/weight_pack.hpp),
  // embedded as a table of (dst, src, count) and applied by one loop, so the
  // layout has no second description here. The bias (zeros when the layer
  // has none or bias is NULL) follows the weights.
  void emit_pack() {
    llvm::Function* f = exported(request_.symbol + "_pack", b_.getVoidTy(), {ir_.f32_ptr(), ir_.f32_ptr(), ir_.f32_ptr()});
    llvm::Value* kernel = f->getArg(0);
    llvm::Value* bias = f->getArg(1);
    llvm::Value* packed = f->getArg(2);
    ir_.loop(packed_floats(), [&](llvm::Value* i) {
      b_.CreateStore(llvm::ConstantFP::get(ir_.f32(), 0.0), ir_.at(packed, i));
    }, "zero");
    const PackRuns runs = packing_runs(plan_);
    emit_apply_runs(runs.weights, runs.weight_stride, kernel, packed, "weights");
    if (runs.bias.empty()) {
      b_.CreateRetVoid();
      return;
    }
    llvm::BasicBlock* with_bias = llvm::BasicBlock::Create(ctx_, "with_bias", f);
    llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx_, "done", f);
    b_.CreateCondBr(b_.CreateIsNotNull(bias), with_bias, done);
    b_.SetInsertPoint(with_bias);
    emit_apply_runs(runs.bias, 1, bias, ir_.at(packed, plan_.packed_weight_count()), "bias");
    b_.CreateBr(done);
    b_.SetInsertPoint(done);
    b_.CreateRetVoid();
  }

  // for each run: packed[dst + i] = source[src + i * stride], i < count.
  void emit_apply_runs(const std::vector<PackRun>& runs, int64_t stride, llvm::Value* source, llvm::Value* packed,
                       const std::string& name) {
    if (runs.empty()) return;
    std::vector<int64_t> flat;
    for (const PackRun& r : runs) flat.insert(flat.end(), {r.dst, r.src, r.count});
    llvm::Value* table = first_element(
        constant_array(name + "_runs", llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<int64_t>(flat))));
    auto field = [&](llvm::Value* run, int k) {
      llvm::Value* index = b_.CreateAdd(b_.CreateMul(run, ir_.i64c(3)), ir_.i64c(k));
      return b_.CreateAlignedLoad(ir_.i64(), b_.CreateInBoundsGEP(ir_.i64(), table, index), llvm::Align(8));
    };
    ir_.loop(static_cast<int64_t>(runs.size()), [&](llvm::Value* run) {
      llvm::Value* dst = field(run, 0);
      llvm::Value* src = field(run, 1);
      ir_.loop(field(run, 2), [&](llvm::Value* i) {
        llvm::Value* value = ir_.load_scalar(ir_.at(source, b_.CreateAdd(src, b_.CreateMul(i, ir_.i64c(stride)))));
        b_.CreateStore(value, ir_.at(packed, b_.CreateAdd(dst, i)));
      }, "element");
    }, "run");
  }

  // dst[(n*S + s)*C + c] = src[(n*C + c)*S + s] (to_last) or the reverse.
  void emit_transpose(llvm::Value* src, llvm::Value* dst, int64_t batch, int64_t channels, int64_t spatial,
                      bool to_last) {
    ir_.loop(batch, [&](llvm::Value* n) {
      ir_.loop(channels, [&](llvm::Value* c) {
        llvm::Value* first = b_.CreateMul(b_.CreateAdd(b_.CreateMul(n, ir_.i64c(channels)), c), ir_.i64c(spatial));
        ir_.loop(spatial, [&](llvm::Value* s) {
          llvm::Value* cf = b_.CreateAdd(first, s);
          llvm::Value* cl = b_.CreateAdd(
              b_.CreateMul(b_.CreateAdd(b_.CreateMul(n, ir_.i64c(spatial)), s), ir_.i64c(channels)), c);
          llvm::Value* from = to_last ? cf : cl;
          llvm::Value* to = to_last ? cl : cf;
          b_.CreateStore(ir_.load_scalar(ir_.at(src, from)), ir_.at(dst, to));
        }, "spatial");
      }, "channel");
    }, "batch");
  }

  void emit_driver(bool baked) {
    std::vector<llvm::Type*> params = {ir_.f32_ptr(), ir_.f32_ptr()};
    if (!baked) params.push_back(ir_.f32_ptr());
    params.push_back(b_.getInt8PtrTy());
    llvm::Function* f = exported(request_.symbol, b_.getVoidTy(), params);
    llvm::Value* input = f->getArg(0);
    llvm::Value* output = f->getArg(1);
    llvm::Value* workspace = f->getArg(baked ? 2 : 3);
    const ConvGeometry& g = plan_.geometry;

    llvm::Value* weights = nullptr;
    llvm::Value* bias = nullptr;
    if (baked) {
      weights = first_element(constant_array("weights", llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<float>(request_.packed_weights))));
      bias = first_element(constant_array("bias", llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<float>(request_.packed_bias))));
    } else {
      weights = f->getArg(2);
      bias = ir_.at(weights, plan_.packed_weight_count());
    }
    const RowTaps rows = build_row_taps(plan_);
    std::vector<int64_t> pairs = rows.pairs;
    if (pairs.empty()) pairs = {0, 0};  // a zero-length array cannot be addressed
    llvm::Value* pair_table = first_element(constant_array("row_taps", llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<int64_t>(pairs))));
    llvm::Value* begin_table = first_element(constant_array("row_begin", llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<int64_t>(rows.begin))));

    llvm::Value* x = input;
    llvm::Value* y = output;
    const int64_t spatial_in = g.axes[0].in * g.axes[1].in * g.axes[2].in;
    const int64_t spatial_out = g.axes[0].out * g.axes[1].out * g.axes[2].out;
    if (plan_.transpose_channels_first) {
      llvm::Value* scratch = b_.CreateBitCast(workspace, ir_.f32_ptr());
      x = scratch;
      y = ir_.at(scratch, aligned(g.input_elements()));
      emit_transpose(input, x, g.batch, g.in_channels, spatial_in, /*to_last=*/true);
    }

    llvm::StructType* args_type = kernel_args_type(ctx_);
    llvm::AllocaInst* args = ir_.entry_alloca(args_type, "args");
    auto set = [&](unsigned field, llvm::Value* value) {
      b_.CreateAlignedStore(value, b_.CreateStructGEP(args_type, args, field), llvm::Align(8));
    };
    set(3, weights);
    set(4, bias);
    const int64_t per_item = g.axes[0].out * g.axes[1].out;
    const int64_t in_item = g.input_elements() / g.batch;
    const int64_t out_row = g.axes[2].out * g.out_channels;
    ir_.loop(g.batch * per_item, [&](llvm::Value* r) {
      llvm::Value* n = b_.CreateUDiv(r, ir_.i64c(per_item));
      llvm::Value* dh = b_.CreateURem(r, ir_.i64c(per_item));
      llvm::Value* begin = b_.CreateAlignedLoad(ir_.i64(), b_.CreateInBoundsGEP(ir_.i64(), begin_table, dh), llvm::Align(8));
      llvm::Value* end = b_.CreateAlignedLoad(
          ir_.i64(), b_.CreateInBoundsGEP(ir_.i64(), begin_table, b_.CreateAdd(dh, ir_.i64c(1))), llvm::Align(8));
      set(0, ir_.at(x, b_.CreateMul(n, ir_.i64c(in_item))));
      set(1, b_.CreateInBoundsGEP(ir_.i64(), pair_table, begin));
      set(2, b_.CreateAShr(b_.CreateSub(end, begin), 1));
      set(5, ir_.at(y, b_.CreateMul(r, ir_.i64c(out_row))));
      for (llvm::Function* kernel : row_kernels_) b_.CreateCall(kernel, {args});
    }, "row");

    if (plan_.transpose_channels_first)
      emit_transpose(y, output, g.batch, g.out_channels, spatial_out, /*to_last=*/false);
    b_.CreateRetVoid();
  }

  llvm::Module& module_;
  const AotModuleRequest& request_;
  const KernelPlan& plan_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  IrSupport ir_;
  std::vector<llvm::Function*> row_kernels_;  // one, or one per channel group
};

}  // namespace

std::vector<uint8_t> build_aot_object(const AotModuleRequest& request) {
  if (!request.plan) throw Error("plan", "missing");
  llvm::LLVMContext context;
  llvm::Module module(request.symbol, context);
  AotModuleEmitter(module, request).emit();
  auto machine = make_target_machine(request.target);
  return compile_to_object(module, *machine);
}

}  // namespace tconv3d::llvm_backend
