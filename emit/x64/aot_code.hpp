// The code generator every part of an Xbyak ahead-of-time object is emitted
// into (driver, packing function, axis activations): one position-dependent
// blob placed in .text after the row kernels, whose references to the
// object's read-only tables are 32-bit PC-relative fields that the object
// writer turns into relocations. Internal to emit/x64.
#pragma once

#include <xbyak/xbyak.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "emit/x64/aot_driver_emitter.hpp"

namespace tconv3d::x64 {

class AotCode : public Xbyak::CodeGenerator {
 public:
  AotCode() : Xbyak::CodeGenerator(4096, Xbyak::AutoGrow) {}

  // lea reg, [rip + table], recorded for a relocation.
  void lea_table(const Xbyak::Reg64& reg, AotTable table);
  // A double constant in xmm (through rax).
  void load_double(const Xbyak::Xmm& x, double value);
  // for (i = first; i < end; ++i) body(); `i` must survive the body. The
  // bounds are known when the code is generated (throws beyond 32 bits).
  void counted_loop(const Xbyak::Reg64& i, int64_t first, int64_t end, const std::function<void()>& body);
  // reg += value, through rax when the value needs more than 32 bits.
  void add_constant(const Xbyak::Reg64& reg, int64_t value);

  std::vector<AotTableReference> references;
};

// size_t NAME_packed_size(void) and void NAME_pack(kernel, bias, packed):
// zeros, then the packing runs (plan/weight_pack.hpp) from the run tables.
// Returns the two entry offsets.
struct AotPackEntries {
  uint64_t packed_size = 0;
  uint64_t pack = 0;
};
AotPackEntries emit_pack_functions(AotCode& code, const AotDriverShape& shape);

// The axis activation from the float rows at r12 to those at r13 (the same
// rows, in place, except for glu), with r15 pointing at its scratch. Uses
// every register but rsp; the exp/log subroutines it calls are emitted by
// emit_subroutines, after the caller's last instruction.
class AxisActivationEmitter {
 public:
  AxisActivationEmitter(AotCode& code, const AotAxisActivation& activation) : c_(code), a_(activation) {}
  void emit_apply();
  void emit_subroutines();

 private:
  void softmax_row(bool log);
  void glu_row();
  void sparsemax_row();
  void emit_exp();      // xmm0 = exp(xmm0); clobbers rax, rcx, xmm0-xmm5
  void emit_log();      // xmm0 = log(xmm0) for normal x > 0; clobbers rax, rcx, rdx, xmm0-xmm5
  void emit_sigmoid();  // xmm0 = sigmoid(xmm0) as core/activation.hpp; clobbers as exp

  AotCode& c_;
  AotAxisActivation a_;
  Xbyak::Label exp_, log_, sigmoid_;
};

}  // namespace tconv3d::x64
