#include "emit/x64/bf16_emitter.hpp"

#include <algorithm>
#include <iterator>
#include <vector>

#include <xbyak/xbyak.h>

#include "core/kernel_args.hpp"
#include "emit/x64/activation_emitter.hpp"
#include "plan/kernel_name.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::x64 {
namespace {

using namespace Xbyak::util;
using Xbyak::Zmm;
using Xbyak::Ymm;
namespace off = codegen::args_offset;

// The float32 kernel's register roles (tconv_emitter.cc); rax is the row base
// in the tap loop and scratch elsewhere.
const Xbyak::Reg64 reg_args = rdi;
const Xbyak::Reg64 reg_tap_ptr = rsi;
const Xbyak::Reg64 reg_tap_count = rdx;
const Xbyak::Reg64 reg_ci = rcx;
const Xbyak::Reg64 reg_in = r8;
const Xbyak::Reg64 reg_w = r9;
const Xbyak::Reg64 reg_out = r10;
const Xbyak::Reg64 reg_tile_in = r11;
const Xbyak::Reg64 reg_out_group = r12;
const Xbyak::Reg64 reg_bias = r13;
const Xbyak::Reg64 reg_input = r14;
const Xbyak::Reg64 reg_wgroup = r15;
const Xbyak::Reg64 reg_groups = rbp;
const Xbyak::Reg64 reg_tiles = rbx;
const Xbyak::Reg64 callee_saved[] = {rbx, rbp, r12, r13, r14, r15};

constexpr int kLanes = 16;
constexpr int kRegisters = 32;
const Xbyak::Opmask tail_opmask = k4;  // k1-k3 belong to the activation emitter
const Xbyak::Opmask even_words = k5;   // 0x5555...: the low bf16 of every dword
const Xbyak::Opmask partial_opmasks[2] = {k6, k7};
// Lane-packed input lane patterns during the row tap loops (the activation
// uses k1-k3 only in store_tile; reloaded at each tap loop's start).
const Xbyak::Opmask input_opmasks[] = {k1, k2};
const Xbyak::Opmask spare_input_opmask = k3;  // patterns past the resident ones, read from constants

using TapMask = codegen::KernelPlan::WTapMask;

class Bf16Emitter : public Xbyak::CodeGenerator {
 public:
  explicit Bf16Emitter(const codegen::KernelPlan& plan)
      : Xbyak::CodeGenerator(16384, Xbyak::AutoGrow), plan_(plan), activation_(*this, plan.activation) {
    if (!plan.bf16() || plan.isa != Isa::kAvx512 || plan.lanes != kLanes || plan.vector_registers != kRegisters)
      throw Error("dtype", "the bf16 emitter needs a bf16 plan for avx512");
    if (plan.activation_row_pass) throw Error("plan", "a bf16 plan fuses its activation: no row pass");
    if (plan.tile_w < 1 || plan.oc_block < 1 || plan.tile_w * plan.oc_block + plan.oc_block + 1 > kRegisters)
      throw Error("plan", "register tile " + std::to_string(plan.tile_w) + "x" + std::to_string(plan.oc_block) +
                              " does not fit 32 vector registers");
    if (plan.w_pack > 1) {
      const int64_t all = (int64_t(1) << plan.vector_channels()) - 1;
      const int64_t count = plan.phases[2].front().count;
      for (int64_t j : {int64_t(0), count - 1}) {
        const int64_t mask = j >= 0 ? plan.w_pack_lane_mask(j) : all;
        if (mask != all && std::find(partial_masks_.begin(), partial_masks_.end(), mask) == partial_masks_.end())
          partial_masks_.push_back(mask);
      }
      // The lanes of each tap's vector that hold a weight of some phase: the
      // others hold a padding weight of 0, which must never meet a NaN or
      // Inf input (0 * Inf: a NaN Keras does not make), so their dot
      // products are merge-masked away.
      for (size_t t = 0; t < plan.phases[2].front().taps.size(); ++t)
        for (int v = 0; v < plan.oc_vectors; ++v) {
          const uint32_t bits = input_lanes(static_cast<int>(t), v);
          if (bits != 0xFFFFu && std::find(input_masks_.begin(), input_masks_.end(), bits) == input_masks_.end())
            input_masks_.push_back(bits);
        }
      if (input_masks_.size() > kMaxInputMasks) throw Error("plan", "too many lane-packed input lane patterns");
    }
  }

  CompiledCode generate() {
    for (const Xbyak::Reg64& r : callee_saved) push(r);
    if (plan_.tail_lanes) {
      mov(eax, (1u << plan_.tail_lanes) - 1);
      kmovw(tail_opmask, eax);
    }
    if (plan_.geometry.in_channels % 2) {
      mov(eax, 0x55555555u);
      kmovd(even_words, eax);
    }
    for (size_t i = 0; i < partial_masks_.size(); ++i) {
      mov(eax, static_cast<uint32_t>(partial_masks_[i]));
      kmovw(partial_opmasks[i], eax);
    }
    mov(reg_input, ptr[reg_args + off::kInput]);
    for (int rw = 0; rw < static_cast<int>(plan_.phases[2].size()); ++rw) emit_w_phase(rw);
    for (int i = 5; i >= 0; --i) pop(callee_saved[i]);
    vzeroupper();
    ret();
    activation_.emit_constants();
    if (!input_masks_.empty()) {
      align(4);
      for (size_t m = 0; m < input_masks_.size(); ++m) {
        L(input_mask_labels_[m]);
        dd(input_masks_[m]);  // kmovw reads the low 16 bits
      }
    }
    ready(Xbyak::CodeArray::PROTECT_RW);
    CompiledCode code;
    code.bytes.assign(getCode(), getCode() + getSize());
    code.name = codegen::kernel_name(plan_);
    return code;
  }

 private:
  Zmm accumulator(int p, int v, int vectors) const { return Zmm(p * vectors + v); }
  Zmm weight(int v) const { return Zmm(plan_.tile_w * plan_.oc_block + v); }
  Zmm broadcast(int i) const {
    const int first = plan_.tile_w * plan_.oc_block + plan_.oc_block;
    return Zmm(first + i % std::min(2, kRegisters - first));
  }
  uint32_t input_lanes(int t, int v) const {
    return plan_.w_pack_input_lanes(static_cast<size_t>(t), v) & 0xFFFFu;
  }
  // acc += dot(w, b) in the lanes `bits` (the others keep their sum).
  void dot_lanes(const Zmm& acc, const Zmm& w, const Zmm& b, uint32_t bits) {
    if (bits == 0xFFFFu) {
      vdpbf16ps(acc, w, b);
      return;
    }
    const auto found = std::find(input_masks_.begin(), input_masks_.end(), bits);
    if (found == input_masks_.end()) throw Error("plan", "a lane-packed input lane pattern was not collected");
    const size_t i = static_cast<size_t>(found - input_masks_.begin());
    if (i < std::size(input_opmasks)) {
      vdpbf16ps(acc | input_opmasks[i], w, b);
    } else {
      kmovw(spare_input_opmask, ptr[rip + input_mask_labels_[i]]);
      vdpbf16ps(acc | spare_input_opmask, w, b);
    }
  }
  int64_t input_voxel_bytes() const { return 2 * plan_.geometry.in_channels; }
  int64_t output_voxel_bytes() const { return 2 * plan_.geometry.out_channels; }

  int partial_mask_of(int64_t j) const {
    if (partial_masks_.empty()) return -1;
    const auto found = std::find(partial_masks_.begin(), partial_masks_.end(), plan_.w_pack_lane_mask(j));
    return found == partial_masks_.end() ? -1 : static_cast<int>(found - partial_masks_.begin());
  }

  void emit_w_phase(int rw) {
    const codegen::AxisPhase& phase = plan_.phases[2][rw];
    if (phase.count == 0) return;
    // A group's bytes: bf16 outputs, float32 bias, dword weights.
    const uint32_t out_group = static_cast<uint32_t>(2 * plan_.oc_block * kLanes);
    const uint32_t bias_group = static_cast<uint32_t>(4 * plan_.oc_block * kLanes);
    const uint32_t weight_group = static_cast<uint32_t>(4 * plan_.weights_group_stride(rw));
    mov(reg_out_group, ptr[reg_args + off::kOutput]);
    if (phase.first_out) lea(reg_out_group, ptr[reg_out_group + phase.first_out * output_voxel_bytes()]);
    mov(reg_bias, ptr[reg_args + off::kBias]);
    mov(reg_wgroup, ptr[reg_args + off::kWeights]);
    if (plan_.weights_phase_offset(rw)) add(reg_wgroup, static_cast<uint32_t>(4 * plan_.weights_phase_offset(rw)));
    if (plan_.only_group >= 0) {
      const int g = plan_.only_group;
      const bool last = g == plan_.oc_groups - 1;
      if (g) {
        add(reg_out_group, g * out_group);
        add(reg_bias, g * bias_group);
        add(reg_wgroup, g * weight_group);
      }
      emit_channel_group(rw, last ? plan_.last_group_vectors : plan_.oc_block, last && plan_.tail_lanes != 0);
      return;
    }
    const bool last_differs = plan_.last_group_vectors != plan_.oc_block || plan_.tail_lanes != 0;
    const int uniform = plan_.oc_groups - (last_differs ? 1 : 0);
    auto advance_group = [&] {
      add(reg_out_group, out_group);
      add(reg_bias, bias_group);
      add(reg_wgroup, weight_group);
    };
    if (uniform >= 2) {
      Xbyak::Label next_group;
      mov(reg_groups, uniform);
      L(next_group);
      emit_channel_group(rw, plan_.oc_block, false);
      advance_group();
      dec(reg_groups);
      jnz(next_group, T_NEAR);
    } else if (uniform == 1) {
      emit_channel_group(rw, plan_.oc_block, false);
      if (last_differs) advance_group();
    }
    if (last_differs) emit_channel_group(rw, plan_.last_group_vectors, plan_.tail_lanes != 0);
  }

  void emit_channel_group(int rw, int vectors, bool masked) {
    const int64_t out_step = plan_.w_output_step(), in_step = plan_.w_input_step();
    const codegen::AxisPhase& phase = plan_.phases[2][rw];
    for (const codegen::WSegment& s : plan_.w_segments[rw]) {
      lea(reg_out, ptr[reg_out_group + s.first * out_step * output_voxel_bytes()]);
      mov(reg_tile_in, (phase.first_q + s.first * in_step) * input_voxel_bytes());
      if (!s.interior) {
        emit_tile(rw, plan_.w_tap_mask(rw, s), s.width, vectors, masked, s.first);
        continue;
      }
      const TapMask valid = plan_.w_tap_mask(rw, s);
      Xbyak::Label next_tile;
      if (s.tiles > 1) {
        mov(reg_tiles, s.tiles);
        L(next_tile);
      }
      emit_tile(rw, valid, s.width, vectors, masked, -1);
      if (s.tiles > 1) {
        add(reg_out, static_cast<uint32_t>(s.width * out_step * output_voxel_bytes()));
        add(reg_tile_in, static_cast<uint32_t>(s.width * in_step * input_voxel_bytes()));
        dec(reg_tiles);
        jnz(next_tile, T_NEAR);
      }
    }
  }

  void emit_tile(int rw, const TapMask& valid, int width, int vectors, bool masked, int64_t first) {
    for (int p = 0; p < width; ++p)
      for (int v = 0; v < vectors; ++v) vmovups(accumulator(p, v, vectors), ptr[reg_bias + 4 * v * kLanes]);
    bool any = false;
    for (const auto& row : valid) any = any || std::find(row.begin(), row.end(), true) != row.end();
    if (any) emit_row_tap_loop(rw, valid, width, vectors);
    store_tile(width, vectors, masked, first);
  }

  void emit_row_tap_loop(int rw, const TapMask& valid, int width, int vectors) {
    const int64_t pairs = plan_.geometry.in_channels / 2;  // full pairs; an odd Cin adds a half pair
    const bool odd = plan_.geometry.in_channels % 2 != 0;
    const int unroll = plan_.cin_unroll;
    const int64_t w_step_bytes = 4 * plan_.w_taps(rw) * vectors * kLanes;  // per pair
    Xbyak::Label next_tap, done;
    for (size_t i = 0; i < input_masks_.size() && i < std::size(input_opmasks); ++i) {
      mov(eax, input_masks_[i]);
      kmovw(input_opmasks[i], eax);
    }
    mov(reg_tap_ptr, ptr[reg_args + off::kRowTaps]);
    mov(reg_tap_count, ptr[reg_args + off::kRowTapCount]);
    lea(rax, ptr[reg_input + reg_tile_in]);
    test(reg_tap_count, reg_tap_count);
    jz(done, T_NEAR);
    L(next_tap);
    mov(reg_in, ptr[reg_tap_ptr]);
    add(reg_in, rax);
    mov(reg_w, ptr[reg_tap_ptr + 8]);
    add(reg_w, reg_wgroup);
    const int64_t iterations = pairs / unroll;
    const int remainder = static_cast<int>(pairs % unroll);
    auto advance = [&] {
      add(reg_in, static_cast<uint32_t>(4 * unroll));  // a pair: two bf16
      add(reg_w, static_cast<uint32_t>(w_step_bytes * unroll));
    };
    auto steps = [&](int count) {
      for (int u = 0; u < count; ++u) emit_pair(rw, valid, width, vectors, u, false);
    };
    if (iterations >= 2) {
      Xbyak::Label next_ci;
      mov(reg_ci, iterations);
      L(next_ci);
      steps(unroll);
      advance();
      dec(reg_ci);
      jnz(next_ci, T_NEAR);
    } else if (iterations == 1) {
      steps(unroll);
      if (remainder || odd) advance();
    }
    steps(remainder);
    if (odd) emit_pair(rw, valid, width, vectors, remainder, true);
    add(reg_tap_ptr, 16);
    dec(reg_tap_count);
    jnz(next_tap, T_NEAR);
    L(done);
  }

  // Pair u after reg_in / reg_w; half: only its first channel exists.
  void emit_pair(int rw, const TapMask& valid, int width, int vectors, int u, bool half) {
    const codegen::AxisPhase& phase = plan_.phases[2][rw];
    const int64_t taps = static_cast<int64_t>(phase.taps.size());
    const int64_t in_step = plan_.w_input_step();
    for (int64_t t = 0; t < taps; ++t) {
      const auto& use = valid[static_cast<size_t>(t)];
      if (std::find(use.begin(), use.end(), true) == use.end()) continue;
      for (int v = 0; v < vectors; ++v)
        vmovups(weight(v), ptr[reg_w + 4 * (((u * taps + t) * vectors + v) * kLanes)]);
      for (int p = 0; p < width; ++p) {
        if (!use[static_cast<size_t>(p)]) continue;
        const Zmm b = broadcast(broadcast_turn_++);
        const Xbyak::Address at =
            ptr[reg_in + (p * in_step - phase.taps[static_cast<size_t>(t)].offset) * input_voxel_bytes() + 4 * u];
        if (half)
          vpbroadcastw(b | even_words | T_z, at);  // the last channel, the other half 0 (never 0 * Inf)
        else
          vpbroadcastd(b, at);
        for (int v = 0; v < vectors; ++v)
          dot_lanes(accumulator(p, v, vectors), weight(v), b, input_lanes(static_cast<int>(t), v));
      }
    }
  }

  // Activation in float32, round to bf16, store (masked tails / partial super voxels).
  void store_tile(int width, int vectors, bool masked, int64_t first) {
    const int64_t pitch = plan_.w_output_step() * output_voxel_bytes();
    const bool activate = plan_.activation.kind != ActivationKind::kLinear;
    for (int p = 0; p < width; ++p) {
      const int which = first < 0 ? -1 : partial_mask_of(first + p);
      for (int v = 0; v < vectors; ++v) {
        const Zmm acc = accumulator(p, v, vectors);
        if (activate) {
          // Free: every register but the accumulators not yet stored.
          std::vector<Zmm> scratch;
          const int live_from = p * vectors + v, live_to = width * vectors;
          for (int r = 0; r < kRegisters; ++r)
            if (r < live_from || r >= live_to) scratch.emplace_back(r);
          activation_.emit(acc, scratch);
        }
        const Ymm half(acc.getIdx());
        vcvtneps2bf16(half, acc, Xbyak::EvexEncoding);
        const Xbyak::Address dst = ptr[reg_out + p * pitch + 2 * v * kLanes];
        if (which >= 0)
          vmovdqu16(dst | partial_opmasks[which], half);
        else if (masked && v == vectors - 1)
          vmovdqu16(dst | tail_opmask, half);
        else
          vmovdqu16(dst, half);
      }
    }
  }

  const codegen::KernelPlan& plan_;
  ActivationEmitter<Zmm> activation_;
  std::vector<int64_t> partial_masks_;
  static constexpr size_t kMaxInputMasks = 64;
  std::vector<uint32_t> input_masks_;  // lane-packed input lane patterns (input_lanes), not all lanes
  Xbyak::Label input_mask_labels_[kMaxInputMasks];
  int broadcast_turn_ = 0;
};

}  // namespace

CompiledCode emit_bf16_kernel(const codegen::KernelPlan& plan) {
  try {
    return Bf16Emitter(plan).generate();
  } catch (const Xbyak::Error& e) {
    throw Error("xbyak", std::string("bf16 code generation failed: ") + e.what());
  }
}

}  // namespace tconv3d::x64
