#include "emit/x64/aot_driver_emitter.hpp"

#include <limits>

#include "core/kernel_args.hpp"
#include "emit/x64/aot_code.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::x64 {
namespace {

using namespace Xbyak::util;
namespace off = codegen::args_offset;

// Stack frame after the six pushes: KernelArgs, then the caller's pointers.
constexpr int kInputSlot = 48, kOutputSlot = 56, kWorkspaceSlot = 64, kPackedSlot = 72;
// After the return address and six pushes rsp is 8 mod 16; this keeps calls aligned.
constexpr int kFrame = 88;
static_assert(sizeof(codegen::KernelArgs) <= kInputSlot && kPackedSlot + 8 <= kFrame);

class AotDriverEmitter {
 public:
  AotDriverEmitter(const AotDriverShape& shape, uint64_t text_offset) : s_(shape), text_offset_(text_offset) {}

  AotDriverCode generate() {
    AotDriverCode code;
    code.workspace_size = c_.getSize();
    c_.mov(rax, s_.workspace_bytes);
    c_.ret();
    if (!s_.baked_weights) {
      const AotPackEntries pack = emit_pack_functions(c_, s_);
      code.packed_size = pack.packed_size;
      code.pack = pack.pack;
    }
    c_.align(16);
    code.entry = c_.getSize();
    AxisActivationEmitter activation(c_, s_.activation);
    emit_driver(activation);
    activation.emit_subroutines();
    c_.ready(Xbyak::CodeArray::PROTECT_RW);
    code.bytes.assign(c_.getCode(), c_.getCode() + c_.getSize());
    code.references = c_.references;
    return code;
  }

 private:
  bool glu() const { return s_.activation.kind == ActivationKind::kGlu; }
  bool has_activation() const { return s_.activation.kind != ActivationKind::kLinear; }

  // reg = workspace + offset.
  void workspace_at(const Xbyak::Reg64& reg, int64_t offset) {
    c_.mov(reg, c_.ptr[rsp + kWorkspaceSlot]);
    c_.add_constant(reg, offset);
  }

  // The table of contents: save, [transpose in], rows, [transpose out], [activation], restore.
  void emit_driver(AxisActivationEmitter& activation) {
    const Xbyak::Reg64 callee_saved[] = {rbx, rbp, r12, r13, r14, r15};
    for (const auto& r : callee_saved) c_.push(r);
    c_.sub(rsp, kFrame);
    c_.mov(c_.ptr[rsp + kInputSlot], rdi);
    c_.mov(c_.ptr[rsp + kOutputSlot], rsi);
    c_.mov(c_.ptr[rsp + kWorkspaceSlot], s_.baked_weights ? rdx : rcx);
    if (!s_.baked_weights) c_.mov(c_.ptr[rsp + kPackedSlot], rdx);
    if (s_.channels_first) {
      c_.mov(r8, c_.ptr[rsp + kInputSlot]);
      workspace_at(r9, s_.input_cl_offset);
      emit_transpose(s_.in_channels, s_.in_spatial, /*to_last=*/true);
    }
    emit_rows();
    // Where the pre-activation result lies in its final layout.
    if (s_.channels_first) {
      workspace_at(r8, s_.output_cl_offset);
      if (glu())
        workspace_at(r9, s_.pre_activation_offset);
      else
        c_.mov(r9, c_.ptr[rsp + kOutputSlot]);
      emit_transpose(s_.out_channels, s_.out_spatial, /*to_last=*/false);
    }
    if (has_activation()) {
      if (glu())
        workspace_at(r12, s_.pre_activation_offset);
      else
        c_.mov(r12, c_.ptr[rsp + kOutputSlot]);
      c_.mov(r13, c_.ptr[rsp + kOutputSlot]);
      workspace_at(r15, s_.activation.scratch_offset);
      activation.emit_apply();
    }
    c_.vzeroupper();
    c_.add(rsp, kFrame);
    for (int i = 5; i >= 0; --i) c_.pop(callee_saved[i]);
    c_.ret();
  }

  // Every row of every batch item, once per row kernel.
  void emit_rows() {
    if (s_.batch <= 0 || s_.rows <= 0) return;
    if (s_.baked_weights) {
      c_.lea_table(rax, AotTable::kWeights);
      c_.mov(c_.ptr[rsp + off::kWeights], rax);
      c_.lea_table(rax, AotTable::kBias);
      c_.mov(c_.ptr[rsp + off::kBias], rax);
    } else {
      c_.mov(rcx, c_.ptr[rsp + kPackedSlot]);
      c_.mov(c_.ptr[rsp + off::kWeights], rcx);
      c_.add_constant(rcx, 4 * s_.packed_weight_floats);
      c_.mov(c_.ptr[rsp + off::kBias], rcx);
    }
    c_.lea_table(r14, AotTable::kRowIndex);
    c_.lea_table(r15, AotTable::kRowTaps);
    for (uint64_t kernel : s_.kernel_offsets) {
      if (s_.channels_first)
        workspace_at(r12, s_.input_cl_offset);
      else
        c_.mov(r12, c_.ptr[rsp + kInputSlot]);
      if (s_.channels_first)
        workspace_at(r13, s_.output_cl_offset);
      else if (glu())
        workspace_at(r13, s_.pre_activation_offset);
      else
        c_.mov(r13, c_.ptr[rsp + kOutputSlot]);
      emit_row_loop(kernel);
    }
  }

  // r12: input of the batch item, r13: output row, r14/r15: row index and taps.
  void emit_row_loop(uint64_t kernel) {
    Xbyak::Label next_item, next_row;
    c_.mov(rbx, s_.batch);
    c_.L(next_item);
    c_.xor_(ebp, ebp);
    c_.L(next_row);
    c_.mov(c_.ptr[rsp + off::kInput], r12);
    c_.mov(rax, rbp);
    c_.shl(rax, 4);
    c_.mov(rcx, c_.ptr[r14 + rax]);
    c_.add(rcx, r15);
    c_.mov(c_.ptr[rsp + off::kRowTaps], rcx);
    c_.mov(rcx, c_.ptr[r14 + rax + 8]);
    c_.mov(c_.ptr[rsp + off::kRowTapCount], rcx);
    c_.mov(c_.ptr[rsp + off::kOutput], r13);
    c_.mov(rdi, rsp);
    call_kernel(kernel);
    c_.add_constant(r13, s_.output_row_bytes);
    c_.inc(rbp);
    c_.mov(rax, s_.rows);
    c_.cmp(rbp, rax);
    c_.jb(next_row, c_.T_NEAR);
    c_.add_constant(r12, s_.input_item_bytes);
    c_.dec(rbx);
    c_.jnz(next_item, c_.T_NEAR);
  }

  // NCDHW <-> NDHWC per batch item, from r8 to r9: the channels_first side
  // is walked linearly, the channels_last side with a stride of C floats.
  void emit_transpose(int64_t channels, int64_t spatial, bool to_last) {
    if (s_.batch <= 0 || channels <= 0 || spatial <= 0) return;
    const Xbyak::Reg64& linear = to_last ? r8 : r9;
    const Xbyak::Reg64& strided = to_last ? r9 : r8;
    c_.mov(r10, s_.batch);
    Xbyak::Label next_item;
    c_.L(next_item);
    c_.counted_loop(r11, 0, channels, [&] {
      Xbyak::Label next;
      c_.lea(rax, c_.ptr[strided + r11 * 4]);
      c_.mov(rcx, spatial);
      c_.mov(rdx, 4 * channels);
      c_.L(next);
      c_.vmovss(xmm0, c_.dword[to_last ? linear : rax]);
      c_.vmovss(c_.dword[to_last ? rax : linear], xmm0);
      c_.add(linear, 4);
      c_.add(rax, rdx);
      c_.dec(rcx);
      c_.jnz(next, c_.T_NEAR);
    });
    c_.add_constant(strided, 4 * channels * spatial);
    c_.dec(r10);
    c_.jnz(next_item, c_.T_NEAR);
  }

  // call rel32 to a row kernel, both in .text.
  void call_kernel(uint64_t kernel) {
    const int64_t field = static_cast<int64_t>(text_offset_ + c_.getSize() + 1);
    const int64_t displacement = static_cast<int64_t>(kernel) - (field + 4);
    if (displacement < std::numeric_limits<int32_t>::min() || displacement > std::numeric_limits<int32_t>::max())
      throw Error("aot", "row kernel out of reach of a 32-bit call");
    c_.db(0xE8);
    c_.dd(static_cast<uint32_t>(static_cast<int32_t>(displacement)));
  }

  AotDriverShape s_;
  uint64_t text_offset_;
  AotCode c_;
};

}  // namespace

AotDriverCode emit_aot_driver(const AotDriverShape& shape, uint64_t text_offset) {
  if (shape.batch < 0 || shape.rows < 0 || shape.input_item_bytes < 0 || shape.output_row_bytes < 0 ||
      shape.workspace_bytes < 0 || shape.packed_floats < 0)
    throw Error("aot", "negative size in the driver shape");
  if (!shape.baked_weights && shape.packed_floats <= 0) throw Error("aot", "run-time weights need a packed size");
  try {
    return AotDriverEmitter(shape, text_offset).generate();
  } catch (const Xbyak::Error& e) {
    throw Error("xbyak", std::string("driver generation failed: ") + e.what());
  }
}

}  // namespace tconv3d::x64
