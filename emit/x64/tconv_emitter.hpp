// The Xbyak code generator for tconv3d: reads a KernelPlan, writes the machine
// code of one layer's row kernel (see plan/plan.hpp for what a call
// computes and core/kernel_args.hpp for its argument): the forward pass's or
// the input gradient's (plan.pass), which differ only in the plan's phases
// and W steps. One template serves AVX2 and AVX-512 through the ISA traits,
// and float32 and bf16 plans (plan.dtype, AVX-512 only: see bf16_emitter.hpp
// for what bf16 changes). The bytes are position-independent (relative
// jumps, rip-relative constants after the final ret), ready to be copied
// into W^X memory by runtime/exec_memory.hpp.
#pragma once

#include <memory>
#include <type_traits>
#include <vector>

#include <xbyak/xbyak.h>

#include "core/compiled_code.hpp"
#include "emit/x64/activation_emitter.hpp"
#include "plan/code_backend.hpp"
#include "plan/plan.hpp"

namespace tconv3d::x64 {

template <typename Traits>
class TConvEmitter : public Xbyak::CodeGenerator {
 public:
  using Vmm = typename Traits::Vmm;

  explicit TConvEmitter(const codegen::KernelPlan& plan);
  // Emits the whole kernel; call once.
  CompiledCode generate();

 private:
  using TapMask = codegen::KernelPlan::WTapMask;

  void preamble();
  void postamble();
  void emit_w_phase(int rw);
  void emit_channel_group(int rw, int vectors, bool masked);
  void emit_interior_segment(int rw, const codegen::WSegment& segment, int vectors, bool masked);
  // first: the tile's first voxel within the phase, for the lane masks of
  // partial super voxels (lane-packed W); -1 in loops, which never hold one.
  void emit_tile(int rw, const TapMask& valid, int width, int vectors, bool masked, int64_t first);
  void emit_row_tap_loop(int rw, const TapMask& valid, int width, int vectors);
  // Contraction steps 0..steps-1 after reg_in / reg_w; half_last: the last
  // is a bf16 half pair (an odd Cin's last channel alone).
  void emit_cin_steps(int rw, const TapMask& valid, int width, int vectors, int steps, bool half_last = false);
  bool shares_broadcasts(int rw, int vectors) const;
  void emit_shared_cin_step(int rw, const TapMask& valid, int width, int vectors, int u, bool half);
  // b = the contraction step's input at src: a float32, or a bf16 pair (one
  // dword; half: the low bf16 alone, the high one 0, never 0 * Inf).
  void broadcast_input(const Vmm& b, const Xbyak::Address& src, bool half);
  // acc += w * b (float32 FMA, or the bf16 pair's dot product), optionally
  // merge-masked.
  void multiply_add(const Vmm& acc, const Vmm& w, const Vmm& b);
  void multiply_add(const Vmm& acc, const Xbyak::Opmask& k, const Vmm& w, const Vmm& b);
  // Lane-packed W: the lanes of W tap t's vector v that see the input (all
  // lanes but those holding another phase's padding weight of 0).
  uint32_t input_lanes(int t, int v) const;
  // One input broadcast into (accumulator, weight) pairs, each FMA under its
  // input lanes: a NaN or Inf input never meets a padding weight of 0, so it
  // reaches exactly the outputs Keras gives it. src: where b came from (AVX2
  // broadcasts it again for a second lane pattern).
  struct LaneFma {
    Vmm acc, w;
    uint32_t bits;
  };
  void emit_lane_fmas(const Vmm& b, const Xbyak::Address& src, const std::vector<LaneFma>& fmas);
  void load_input_masks();
  void store_tile(int width, int vectors, bool masked, int64_t first);
  // bf16: activation (float32, in zmm vectors), rounding to bf16, stores.
  void store_tile_bf16(int width, int vectors, bool masked, int64_t first);
  // The stored lanes of accumulator (p, v): a bit per lane, all for a full vector.
  uint32_t stored_lanes(int64_t first, int p, int v, int vectors, bool masked) const;
  // Stores the lanes `bits` of x (a partial vector of a lane-packed super voxel).
  void store_lanes(const Xbyak::Address& dst, const Vmm& x, uint32_t bits);
  // bf16: stores the `bits` lanes of the bf16 vector x (an xmm or ymm).
  template <typename Half>
  void store_bf16(const Xbyak::Address& dst, const Half& x, uint32_t bits);
  void emit_activation_pass();
  template <typename RowVmm>
  void emit_row_pass(ActivationEmitter<RowVmm>& act, int lanes, int registers);
  void emit_group_activation_pass();
  void emit_constants();
  void activate(const Vmm& x, const std::vector<Vmm>& scratch);

  // Registers the activation code may use: its ymm code is AVX2's (VEX
  // only), so registers 0-15 even where AVX-512 gives 32.
  static constexpr int activation_registers() {
    return std::is_same_v<Vmm, Xbyak::Ymm> ? 16 : Traits::kRegisters;
  }
  Vmm accumulator(int p, int v, int vectors) const { return Vmm(p * vectors + v); }
  Vmm weight(int v) const { return Vmm(plan_.tile_w * plan_.oc_block + v); }
  Vmm broadcast(int i) const;

  // Byte offsets of the layer's fixed strides.
  int64_t input_voxel_bytes() const { return plan_.element_bytes() * plan_.geometry.in_channels; }
  int64_t output_voxel_bytes() const { return plan_.element_bytes() * plan_.geometry.out_channels; }

  const codegen::KernelPlan& plan_;
  const bool bf16_;
  ActivationEmitter<Vmm> activation_;
  // AVX-512 in ymm vectors: the row pass's activation, and a bf16 plan's
  // fused one, in zmm vectors.
  std::unique_ptr<ActivationEmitter<Xbyak::Zmm>> wide_activation_;
  Xbyak::Label tail_mask_;  // AVX2: lanes of the last output vector
  Xbyak::Label row_mask_;   // AVX2: lanes of the activation pass's last vector
  // Lane-packed W: the super voxels that reach outside the row (at most the
  // first and the last) store each vector under its own lane mask; AVX2
  // reads them as constants (at most 2 super voxels x 8 vectors).
  static constexpr int kMaxStoreMasks = 16;
  std::vector<uint32_t> store_masks_;
  Xbyak::Label store_mask_labels_[kMaxStoreMasks];
  // Lane-packed W: the partial input lane patterns (input_lanes) of the
  // plan. AVX-512 holds the first kResidentInputMasks in opmasks through
  // each row tap loop and reads the rest from constants; AVX2 ANDs the
  // broadcast with the pattern, the first one held in a spare vector
  // register where the tile leaves one (input_mask_register_), else read.
  static constexpr int kMaxInputMasks = 64;
  static constexpr int kResidentInputMasks = 5;
  // Fewer for a bf16 plan with an odd Cin: its half pair's word mask takes one.
  int resident_input_masks() const { return odd_half_pair_ ? kResidentInputMasks - 1 : kResidentInputMasks; }
  bool odd_half_pair_ = false;  // bf16 with an odd Cin
  std::vector<uint32_t> input_masks_;
  Xbyak::Label input_mask_labels_[kMaxInputMasks];
  int input_mask_register_ = -1;
  int broadcast_turn_ = 0;
};

// Emits the kernel for plan.isa (kAvx2 or kAvx512) and plan.dtype (a bf16
// plan through emit_bf16_kernel, which checks it first).
CompiledCode emit_tconv_kernel(const codegen::KernelPlan& plan);
// The template's kernel for plan.isa and plan.lanes, float32 or bf16 alike.
CompiledCode emit_tconv_template_kernel(const codegen::KernelPlan& plan);

// The Xbyak emitter as a code backend.
const codegen::CodeBackend& xbyak_code_backend();

}  // namespace tconv3d::x64
