#include "emit/x64/aot_driver_emitter.hpp"

#include <xbyak/xbyak.h>

#include <limits>

#include "core/kernel_args.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::x64 {
namespace {

using namespace Xbyak::util;
namespace off = codegen::args_offset;

class AotDriverEmitter : public Xbyak::CodeGenerator {
 public:
  AotDriverEmitter(const AotDriverShape& shape, uint64_t text_offset, uint64_t kernel_offset)
      : Xbyak::CodeGenerator(4096, Xbyak::AutoGrow), shape_(shape), text_offset_(text_offset),
        kernel_offset_(kernel_offset) {}

  AotDriverCode generate() {
    AotDriverCode code;
    code.workspace_size = getSize();
    xor_(eax, eax);  // channels_last needs no scratch
    ret();
    align(16);
    code.entry = getSize();
    emit_driver(code);
    ready(Xbyak::CodeArray::PROTECT_RW);
    code.bytes.assign(getCode(), getCode() + getSize());
    return code;
  }

 private:
  // lea reg, [rip + table]: the disp32 is the instruction's last 4 bytes.
  void lea_table(const Xbyak::Reg64& reg, AotTable table, AotDriverCode& code) {
    lea(reg, ptr[rip + 0x12345678]);  // a non-zero placeholder keeps the 32-bit form
    code.references.push_back({getSize() - 4, table});
  }

  void emit_driver(AotDriverCode& code) {
    const Xbyak::Reg64 callee_saved[] = {rbx, rbp, r12, r13, r14, r15};
    for (const auto& r : callee_saved) push(r);
    // After the return address and six pushes rsp is 8 mod 16; the frame
    // holds KernelArgs and keeps the call aligned.
    constexpr int kFrame = 56;
    static_assert(sizeof(codegen::KernelArgs) <= kFrame);
    sub(rsp, kFrame);
    if (shape_.batch > 0 && shape_.rows > 0) {
      mov(r12, rdi);  // input of the current batch item
      mov(r13, rsi);  // output of the current row
      lea_table(r14, AotTable::kRowIndex, code);
      lea_table(r15, AotTable::kRowTaps, code);
      lea_table(rax, AotTable::kWeights, code);
      mov(ptr[rsp + off::kWeights], rax);
      lea_table(rax, AotTable::kBias, code);
      mov(ptr[rsp + off::kBias], rax);
      mov(rbx, shape_.batch);
      Xbyak::Label next_item, next_row;
      L(next_item);
      xor_(ebp, ebp);
      L(next_row);
      mov(ptr[rsp + off::kInput], r12);
      mov(rax, rbp);
      shl(rax, 4);
      mov(rcx, ptr[r14 + rax]);
      add(rcx, r15);
      mov(ptr[rsp + off::kRowTaps], rcx);
      mov(rcx, ptr[r14 + rax + 8]);
      mov(ptr[rsp + off::kRowTapCount], rcx);
      mov(ptr[rsp + off::kOutput], r13);
      mov(rdi, rsp);
      call_kernel();
      mov(rax, shape_.output_row_bytes);
      add(r13, rax);
      inc(rbp);
      mov(rax, shape_.rows);
      cmp(rbp, rax);
      jb(next_row, T_NEAR);
      mov(rax, shape_.input_item_bytes);
      add(r12, rax);
      dec(rbx);
      jnz(next_item, T_NEAR);
    }
    add(rsp, kFrame);
    for (int i = 5; i >= 0; --i) pop(callee_saved[i]);
    ret();
  }

  // call rel32 to the row kernel, both in .text.
  void call_kernel() {
    const int64_t field = static_cast<int64_t>(text_offset_ + getSize() + 1);
    const int64_t displacement = static_cast<int64_t>(kernel_offset_) - (field + 4);
    if (displacement < std::numeric_limits<int32_t>::min() || displacement > std::numeric_limits<int32_t>::max())
      throw Error("aot", "row kernel out of reach of a 32-bit call");
    db(0xE8);
    dd(static_cast<uint32_t>(static_cast<int32_t>(displacement)));
  }

  AotDriverShape shape_;
  uint64_t text_offset_;
  uint64_t kernel_offset_;
};

}  // namespace

AotDriverCode emit_aot_driver(const AotDriverShape& shape, uint64_t text_offset, uint64_t kernel_offset) {
  if (shape.batch < 0 || shape.rows < 0 || shape.input_item_bytes < 0 || shape.output_row_bytes < 0)
    throw Error("aot", "negative size in the driver shape");
  try {
    return AotDriverEmitter(shape, text_offset, kernel_offset).generate();
  } catch (const Xbyak::Error& e) {
    throw Error("xbyak", std::string("driver generation failed: ") + e.what());
  }
}

}  // namespace tconv3d::x64
