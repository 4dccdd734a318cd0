#include "emit/x64/tconv_emitter.hpp"

#include <algorithm>

#include "core/kernel_args.hpp"
#include "emit/x64/bf16_emitter.hpp"
#include "emit/x64/isa_traits.hpp"
#include "plan/kernel_name.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::x64 {
namespace {

using namespace Xbyak::util;
namespace off = codegen::args_offset;

// General-purpose registers, each with one role for the whole kernel (SysV:
// the argument arrives in rdi). rax is the only scratch.
const Xbyak::Reg64 reg_args = rdi;
const Xbyak::Reg64 reg_tap_ptr = rsi;    // current (input, weight) offset pair of the row
const Xbyak::Reg64 reg_tap_count = rdx;  // row taps left
const Xbyak::Reg64 reg_ci = rcx;         // Cin iterations left
const Xbyak::Reg64 reg_in = r8;          // input of the current row tap, tile, Cin step
const Xbyak::Reg64 reg_w = r9;           // weights of the current row tap, group, Cin step
const Xbyak::Reg64 reg_out = r10;        // first output voxel of the current tile
const Xbyak::Reg64 reg_tile_in = r11;    // byte offset of the tile's first input voxel in a row
const Xbyak::Reg64 reg_out_group = r12;  // output of the W phase's first voxel, current group
const Xbyak::Reg64 reg_bias = r13;       // bias of the current group
const Xbyak::Reg64 reg_input = r14;      // args->input
const Xbyak::Reg64 reg_wgroup = r15;     // weights of the current W phase and group
const Xbyak::Reg64 reg_groups = rbp;     // channel groups left
const Xbyak::Reg64 reg_tiles = rbx;      // interior tiles left
const Xbyak::Reg64 callee_saved[] = {rbx, rbp, r12, r13, r14, r15};

const Xbyak::Opmask tail_opmask = k4;  // k1-k3 belong to the activation emitter
const Xbyak::Opmask row_opmask = k5;
const Xbyak::Opmask store_opmask = k6;  // a partial super voxel's vector
// Lane-packed input lane patterns during the row tap loops (the activation's
// k1-k3 and store_opmask are used only after them; reloaded per tap loop).
const Xbyak::Opmask input_opmasks[] = {k1, k2, k3, k5, k6};
const Xbyak::Opmask spare_input_opmask = k7;  // patterns past the resident ones
// bf16 with an odd Cin: 0x5555...: the low bf16 of every dword, for the last
// (half) pair; takes the last resident input opmask, reloaded per tap loop.
const Xbyak::Opmask even_words = k6;

}  // namespace

template <typename Traits>
TConvEmitter<Traits>::TConvEmitter(const codegen::KernelPlan& plan)
    : Xbyak::CodeGenerator(16384, Xbyak::AutoGrow),
      plan_(plan),
      bf16_(plan.bf16()),
      activation_(*this, plan.activation) {
  if (plan.isa != Traits::kIsa || plan.lanes != Traits::kLanes || plan.vector_registers != Traits::kRegisters)
    throw Error("isa", "plan made for " + to_string(plan.isa) + " given to the " + to_string(Traits::kIsa) +
                           " emitter");
  if (bf16_) {
    if constexpr (!Traits::kHasOpmask) {
      throw Error("dtype", "bf16 kernels need AVX-512 (with AVX512_BF16), the plan is for " + to_string(plan.isa));
    }
    if (plan.activation_row_pass) throw Error("plan", "a bf16 plan fuses its activation: no row pass");
    odd_half_pair_ = plan.geometry.in_channels % 2 != 0;
  }
  // Accumulators, one weight register per vector, at least one broadcast.
  if (plan.tile_w < 1 || plan.oc_block < 1 || plan.tile_w * plan.oc_block + plan.oc_block + 1 > Traits::kRegisters)
    throw Error("plan", "register tile " + std::to_string(plan.tile_w) + "x" + std::to_string(plan.oc_block) +
                            " does not fit the " + std::to_string(Traits::kRegisters) + " vector registers of " +
                            to_string(Traits::kIsa));
  if constexpr (Traits::kHasOpmask && std::is_same_v<Vmm, Xbyak::Ymm>) {
    if (plan.activation_row_pass || (bf16_ && plan.activation.kind != ActivationKind::kLinear))
      wide_activation_ = std::make_unique<ActivationEmitter<Xbyak::Zmm>>(*this, plan.activation);
  }
  if (plan.w_pack > 1) {
    const int64_t all = (int64_t(1) << plan.vector_channels()) - 1;
    const uint32_t lane_all = (uint32_t(1) << plan.lanes) - 1;
    const int64_t count = plan.phases[2].front().count;
    for (int64_t j : {int64_t(0), count - 1}) {
      const int64_t mask = j >= 0 ? plan.w_pack_lane_mask(j) : all;
      if (mask == all) continue;
      for (int v = 0; v < plan.oc_vectors; ++v) {
        const uint32_t bits = static_cast<uint32_t>(mask >> (v * plan.lanes)) & lane_all;
        if (bits != 0 && bits != lane_all &&
            std::find(store_masks_.begin(), store_masks_.end(), bits) == store_masks_.end())
          store_masks_.push_back(bits);
      }
    }
    if (store_masks_.size() > kMaxStoreMasks) throw Error("plan", "too many partial super voxel masks");
    for (size_t t = 0; t < plan.phases[2].front().taps.size(); ++t)
      for (int v = 0; v < plan.oc_vectors; ++v) {
        const uint32_t bits = plan.w_pack_input_lanes(t, v) & lane_all;
        if (plan.w_pack_vector_used(t, v) && bits != lane_all &&
            std::find(input_masks_.begin(), input_masks_.end(), bits) == input_masks_.end())
          input_masks_.push_back(bits);
      }
    if (input_masks_.size() > kMaxInputMasks) throw Error("plan", "too many lane-packed input lane patterns");
    if constexpr (!Traits::kHasOpmask) {
      // The registers past the tile's (and the shared broadcasts' tap weights).
      int used = plan.tile_w * plan.oc_block + plan.oc_block + 2;
      for (const codegen::AxisPhase& phase : plan.phases[2])
        used = std::max(used, plan.tile_w * plan.oc_block + static_cast<int>(phase.taps.size()) * plan.oc_block + 2);
      if (!input_masks_.empty() && used < Traits::kRegisters) input_mask_register_ = Traits::kRegisters - 1;
    }
  }
}

template <typename Traits>
uint32_t TConvEmitter<Traits>::input_lanes(int t, int v) const {
  return plan_.w_pack_input_lanes(static_cast<size_t>(t), v) & ((uint32_t(1) << plan_.lanes) - 1);
}

template <typename Traits>
void TConvEmitter<Traits>::load_input_masks() {
  if constexpr (Traits::kHasOpmask) {
    for (size_t i = 0; i < input_masks_.size() && i < size_t(resident_input_masks()); ++i) {
      mov(eax, input_masks_[i]);
      kmovw(input_opmasks[i], eax);
    }
    if (odd_half_pair_) {
      mov(eax, 0x55555555u);
      kmovd(even_words, eax);
    }
  } else {
    if (input_mask_register_ >= 0) vmovups(Vmm(input_mask_register_), ptr[rip + input_mask_labels_[0]]);
  }
}

template <typename Traits>
void TConvEmitter<Traits>::emit_lane_fmas(const Vmm& b, const Xbyak::Address& src, const std::vector<LaneFma>& fmas) {
  const uint32_t lane_all = (uint32_t(1) << plan_.lanes) - 1;
  auto index_of = [&](uint32_t bits) {
    const auto found = std::find(input_masks_.begin(), input_masks_.end(), bits);
    if (found == input_masks_.end()) throw Error("plan", "a lane-packed input lane pattern was not collected");
    return static_cast<size_t>(found - input_masks_.begin());
  };
  if constexpr (Traits::kHasOpmask) {
    // Merge masking: the lanes left out keep their sum (no extra operation).
    for (const LaneFma& f : fmas) {
      if (f.bits == lane_all) {
        multiply_add(f.acc, f.w, b);
        continue;
      }
      const size_t i = index_of(f.bits);
      if (i < size_t(resident_input_masks())) {
        multiply_add(f.acc, input_opmasks[i], f.w, b);
      } else {
        kmovw(spare_input_opmask, ptr[rip + input_mask_labels_[i]]);
        multiply_add(f.acc, spare_input_opmask, f.w, b);
      }
    }
  } else {
    // No opmasks: the unmasked FMAs first, then b with each pattern's lanes
    // only (broadcast again for every pattern after the first). The two
    // halves of a ymm (two W phases of 4 channels, the common case) cost no
    // load: a VEX xmm move zeroes the upper half (renamed, not executed, on
    // Zen 4), vperm2f128 the lower; other patterns AND with a lane mask.
    for (const LaneFma& f : fmas)
      if (f.bits == lane_all) vfmadd231ps(f.acc, f.w, b);
    std::vector<uint32_t> patterns;
    for (const LaneFma& f : fmas)
      if (f.bits != lane_all && std::find(patterns.begin(), patterns.end(), f.bits) == patterns.end())
        patterns.push_back(f.bits);
    const uint32_t low = (uint32_t(1) << (plan_.lanes / 2)) - 1, high = lane_all & ~low;
    for (size_t k = 0; k < patterns.size(); ++k) {
      if (k) vbroadcastss(b, src);
      if (patterns[k] == low) {
        vmovaps(Xbyak::Xmm(b.getIdx()), Xbyak::Xmm(b.getIdx()));
      } else if (patterns[k] == high) {
        vperm2f128(Xbyak::Ymm(b.getIdx()), Xbyak::Ymm(b.getIdx()), Xbyak::Ymm(b.getIdx()), 0x08);
      } else {
        const size_t i = index_of(patterns[k]);
        if (i == 0 && input_mask_register_ >= 0)
          vandps(b, b, Vmm(input_mask_register_));
        else
          vandps(b, b, ptr[rip + input_mask_labels_[i]]);
      }
      for (const LaneFma& f : fmas)
        if (f.bits == patterns[k]) vfmadd231ps(f.acc, f.w, b);
    }
  }
}

template <typename Traits>
typename TConvEmitter<Traits>::Vmm TConvEmitter<Traits>::broadcast(int i) const {
  const int first = plan_.tile_w * plan_.oc_block + plan_.oc_block;
  const int available = std::min(2, Traits::kRegisters - first);
  return Vmm(first + i % available);
}

template <typename Traits>
void TConvEmitter<Traits>::broadcast_input(const Vmm& b, const Xbyak::Address& src, bool half) {
  if (!bf16_) {
    vbroadcastss(b, src);
  } else if (half) {
    vpbroadcastw(b | even_words | T_z, src);  // the last channel, the other half 0 (never 0 * Inf)
  } else {
    vpbroadcastd(b, src);
  }
}

template <typename Traits>
void TConvEmitter<Traits>::multiply_add(const Vmm& acc, const Vmm& w, const Vmm& b) {
  if (!bf16_) {
    vfmadd231ps(acc, w, b);
  } else if constexpr (Traits::kHasOpmask) {
    vdpbf16ps(acc, w, b);
  } else {
    throw Error("dtype", "vdpbf16ps needs AVX-512");  // the constructor refuses such a plan first
  }
}

template <typename Traits>
void TConvEmitter<Traits>::multiply_add(const Vmm& acc, const Xbyak::Opmask& k, const Vmm& w, const Vmm& b) {
  if constexpr (Traits::kHasOpmask) {
    if (bf16_)
      vdpbf16ps(acc | k, w, b);
    else
      vfmadd231ps(acc | k, w, b);
  } else {
    throw Error("isa", "merge masking needs AVX-512 opmasks");  // AVX2 masks its broadcasts instead
  }
}

template <typename Traits>
CompiledCode TConvEmitter<Traits>::generate() {
  preamble();
  if constexpr (Traits::kHasOpmask) {
    if (plan_.tail_lanes) {
      mov(eax, (1u << plan_.tail_lanes) - 1);
      kmovw(tail_opmask, eax);
    }
  }
  mov(reg_input, ptr[reg_args + off::kInput]);
  for (int rw = 0; rw < static_cast<int>(plan_.phases[2].size()); ++rw) emit_w_phase(rw);
  if (plan_.activation_row_pass) emit_activation_pass();
  postamble();
  emit_constants();
  ready(Xbyak::CodeArray::PROTECT_RW);  // resolves labels; the bytes are copied, never run here
  CompiledCode code;
  code.bytes.assign(getCode(), getCode() + getSize());
  code.name = codegen::kernel_name(plan_);
  return code;
}

template <typename Traits>
void TConvEmitter<Traits>::preamble() {
  for (const Xbyak::Reg64& r : callee_saved) push(r);
}

template <typename Traits>
void TConvEmitter<Traits>::postamble() {
  for (int i = 5; i >= 0; --i) pop(callee_saved[i]);
  vzeroupper();
  ret();
}

template <typename Traits>
void TConvEmitter<Traits>::emit_w_phase(int rw) {
  const codegen::AxisPhase& phase = plan_.phases[2][rw];
  if (phase.count == 0) return;
  // A group's bytes: outputs (float32 or bf16), float32 bias.
  const int64_t group_bytes = plan_.element_bytes() * int64_t(plan_.oc_block) * plan_.lanes;
  const int64_t bias_group_bytes = 4 * int64_t(plan_.oc_block) * plan_.lanes;
  mov(reg_out_group, ptr[reg_args + off::kOutput]);
  // Negative for a lane-packed row whose first super voxel starts before the
  // row: only its stored lanes are ever written.
  if (phase.first_out) lea(reg_out_group, ptr[reg_out_group + phase.first_out * output_voxel_bytes()]);
  mov(reg_bias, ptr[reg_args + off::kBias]);
  mov(reg_wgroup, ptr[reg_args + off::kWeights]);
  if (plan_.weights_phase_offset(rw)) add(reg_wgroup, static_cast<uint32_t>(4 * plan_.weights_phase_offset(rw)));

  if (plan_.only_group >= 0) {
    // A kernel for one channel group: every offset is a constant.
    const int g = plan_.only_group;
    const bool last = g == plan_.oc_groups - 1;
    add(reg_out_group, static_cast<uint32_t>(g * group_bytes));
    add(reg_bias, static_cast<uint32_t>(g * bias_group_bytes));
    add(reg_wgroup, static_cast<uint32_t>(4 * g * plan_.weights_group_stride(rw)));
    emit_channel_group(rw, last ? plan_.last_group_vectors : plan_.oc_block, last && plan_.tail_lanes != 0);
    return;
  }
  const bool last_differs = plan_.last_group_vectors != plan_.oc_block || plan_.tail_lanes != 0;
  const int uniform = plan_.oc_groups - (last_differs ? 1 : 0);
  auto advance_group = [&] {
    add(reg_out_group, static_cast<uint32_t>(group_bytes));
    add(reg_bias, static_cast<uint32_t>(bias_group_bytes));
    add(reg_wgroup, static_cast<uint32_t>(4 * plan_.weights_group_stride(rw)));
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

template <typename Traits>
void TConvEmitter<Traits>::emit_channel_group(int rw, int vectors, bool masked) {
  const int64_t out_step = plan_.w_output_step(), in_step = plan_.w_input_step();
  const codegen::AxisPhase& phase = plan_.phases[2][rw];
  for (const codegen::WSegment& s : plan_.w_segments[rw]) {
    if (s.interior) {
      emit_interior_segment(rw, s, vectors, masked);
      continue;
    }
    lea(reg_out, ptr[reg_out_group + s.first * out_step * output_voxel_bytes()]);
    mov(reg_tile_in, (phase.first_q + s.first * in_step) * input_voxel_bytes());
    emit_tile(rw, plan_.w_tap_mask(rw, s), s.width, vectors, masked, s.first);
  }
}

template <typename Traits>
void TConvEmitter<Traits>::emit_interior_segment(int rw, const codegen::WSegment& s, int vectors, bool masked) {
  const int64_t out_step = plan_.w_output_step(), in_step = plan_.w_input_step();
  const codegen::AxisPhase& phase = plan_.phases[2][rw];
  lea(reg_out, ptr[reg_out_group + s.first * out_step * output_voxel_bytes()]);
  mov(reg_tile_in, (phase.first_q + s.first * in_step) * input_voxel_bytes());
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

template <typename Traits>
void TConvEmitter<Traits>::emit_tile(int rw, const TapMask& valid, int width, int vectors, bool masked,
                                     int64_t first) {
  for (int p = 0; p < width; ++p)
    for (int v = 0; v < vectors; ++v) vmovups(accumulator(p, v, vectors), ptr[reg_bias + 4 * v * plan_.lanes]);
  bool any = false;
  for (const auto& row : valid) any = any || std::find(row.begin(), row.end(), true) != row.end();
  if (any) emit_row_tap_loop(rw, valid, width, vectors);
  if (bf16_)
    store_tile_bf16(width, vectors, masked, first);
  else
    store_tile(width, vectors, masked, first);
}

template <typename Traits>
void TConvEmitter<Traits>::emit_row_tap_loop(int rw, const TapMask& valid, int width, int vectors) {
  // Full contraction steps (bf16: channel pairs; an odd Cin adds a half pair
  // after them). A step is 4 input bytes either way (a float32, two bf16).
  const int64_t cin = bf16_ ? plan_.geometry.in_channels / 2 : plan_.geometry.in_channels;
  const int unroll = plan_.cin_unroll;
  const int64_t w_step_bytes = 4 * plan_.w_taps(rw) * vectors * plan_.lanes;  // per Cin step (dwords)
  Xbyak::Label next_tap, done;
  load_input_masks();
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
  const int64_t iterations = cin / unroll;
  const int remainder = static_cast<int>(cin % unroll);
  auto advance = [&] {
    add(reg_in, static_cast<uint32_t>(4 * unroll));
    add(reg_w, static_cast<uint32_t>(w_step_bytes * unroll));
  };
  if (iterations >= 2) {
    Xbyak::Label next_ci;
    mov(reg_ci, iterations);
    L(next_ci);
    emit_cin_steps(rw, valid, width, vectors, unroll);
    advance();
    dec(reg_ci);
    jnz(next_ci, T_NEAR);
  } else if (iterations == 1) {
    emit_cin_steps(rw, valid, width, vectors, unroll);
    if (remainder || odd_half_pair_) advance();
  }
  if (remainder || odd_half_pair_)
    emit_cin_steps(rw, valid, width, vectors, remainder + (odd_half_pair_ ? 1 : 0), odd_half_pair_);
  add(reg_tap_ptr, 16);
  dec(reg_tap_count);
  jnz(next_tap, T_NEAR);
  L(done);
}

template <typename Traits>
bool TConvEmitter<Traits>::shares_broadcasts(int rw, int vectors) const {
  // One vector per voxel makes a broadcast per FMA, and the loads (not the
  // FMAs) the limit; an input voxel that several W taps read (at
  // neighbouring tile voxels) is then broadcast once for all of them, with
  // every tap's weights held in registers (the 4-filter head: 12 broadcasts
  // for 22 FMAs instead of 22, 71 -> 75 % of the FMA peak on Zen 4).
  const int taps = static_cast<int>(plan_.w_taps(rw));
  return vectors == 1 && taps >= 2 && plan_.tile_w * plan_.oc_block + taps * vectors + 1 <= Traits::kRegisters;
}

template <typename Traits>
void TConvEmitter<Traits>::emit_shared_cin_step(int rw, const TapMask& valid, int width, int vectors, int u,
                                                bool half) {
  const codegen::AxisPhase& phase = plan_.phases[2][rw];
  const int taps = static_cast<int>(phase.taps.size());
  const int64_t in_step = plan_.w_input_step();
  const int first_weight = plan_.tile_w * plan_.oc_block;
  auto tap_weight = [&](int t, int v) { return Vmm(first_weight + t * vectors + v); };
  const int first_broadcast = first_weight + taps * vectors;
  const int broadcasts = std::min(2, Traits::kRegisters - first_broadcast);
  // (input voxel offset within the tile, tap, tile voxel) in input order.
  struct Use {
    int64_t at;
    int t, p;
  };
  std::vector<Use> uses;
  std::vector<std::vector<int>> used(static_cast<size_t>(taps));
  for (int t = 0; t < taps; ++t) {
    for (int v = 0; v < vectors; ++v)
      if (plan_.w_pack_vector_used(static_cast<size_t>(t), v)) used[static_cast<size_t>(t)].push_back(v);
    bool any = false;
    for (int p = 0; p < width; ++p) {
      if (!valid[static_cast<size_t>(t)][static_cast<size_t>(p)] || used[static_cast<size_t>(t)].empty()) continue;
      uses.push_back({p * in_step - phase.taps[static_cast<size_t>(t)].offset, t, p});
      any = true;
    }
    if (any)
      for (int v : used[static_cast<size_t>(t)])
        vmovups(tap_weight(t, v), ptr[reg_w + 4 * (((int64_t(u) * taps + t) * vectors + v) * plan_.lanes)]);
  }
  // Input order, each voxel broadcast once. bf16 walks it so that every
  // accumulator still adds its taps in tap order (a phase's offsets rise or,
  // in the input gradient, fall with the tap), as the unshared steps and the
  // LLVM kernel do: the same bits (float32 sums of bf16 products round
  // differently in another order).
  const bool reverse = bf16_ && taps >= 2 && phase.taps.back().offset > phase.taps.front().offset;
  // (Walked backwards, one voxel's later taps go first: measured 2 % faster
  // on the 4-filter head than tap order within a voxel. The tap order costs
  // it 1.5-3 % against float32's forward walk.)
  std::stable_sort(uses.begin(), uses.end(), [reverse](const Use& a, const Use& b) {
    if (a.at != b.at) return reverse ? a.at > b.at : a.at < b.at;
    return reverse && a.t > b.t;
  });
  for (size_t i = 0; i < uses.size();) {
    const Vmm b(first_broadcast + broadcast_turn_++ % broadcasts);
    const Xbyak::Address src = ptr[reg_in + uses[i].at * input_voxel_bytes() + 4 * u];
    broadcast_input(b, src, half);
    const int64_t at = uses[i].at;
    std::vector<LaneFma> fmas;
    for (; i < uses.size() && uses[i].at == at; ++i)
      for (int v : used[static_cast<size_t>(uses[i].t)])
        fmas.push_back({accumulator(uses[i].p, v, vectors), tap_weight(uses[i].t, v), input_lanes(uses[i].t, v)});
    emit_lane_fmas(b, src, fmas);
  }
}

template <typename Traits>
void TConvEmitter<Traits>::emit_cin_steps(int rw, const TapMask& valid, int width, int vectors, int steps,
                                          bool half_last) {
  const codegen::AxisPhase& phase = plan_.phases[2][rw];
  const int64_t taps = static_cast<int64_t>(phase.taps.size());
  const int64_t in_step = plan_.w_input_step();
  if (shares_broadcasts(rw, vectors)) {
    for (int u = 0; u < steps; ++u) emit_shared_cin_step(rw, valid, width, vectors, u, half_last && u == steps - 1);
    return;
  }
  for (int u = 0; u < steps; ++u) {
    const bool half = half_last && u == steps - 1;
    for (int64_t t = 0; t < taps; ++t) {
      const auto& use = valid[static_cast<size_t>(t)];
      if (std::find(use.begin(), use.end(), true) == use.end()) continue;
      // Lane-packed: the vectors no phase has this offset's tap for hold zeros.
      std::vector<int> used;
      for (int v = 0; v < vectors; ++v)
        if (plan_.w_pack_vector_used(static_cast<size_t>(t), v)) used.push_back(v);
      if (used.empty()) continue;
      for (int v : used) vmovups(weight(v), ptr[reg_w + 4 * (((u * taps + t) * vectors + v) * plan_.lanes)]);
      for (int p = 0; p < width; ++p) {
        if (!use[static_cast<size_t>(p)]) continue;
        const Vmm b = broadcast(broadcast_turn_++);
        const Xbyak::Address src =
            ptr[reg_in + (p * in_step - phase.taps[static_cast<size_t>(t)].offset) * input_voxel_bytes() + 4 * u];
        broadcast_input(b, src, half);
        std::vector<LaneFma> fmas;
        for (int v : used)
          fmas.push_back({accumulator(p, v, vectors), weight(v), input_lanes(static_cast<int>(t), v)});
        emit_lane_fmas(b, src, fmas);
      }
    }
  }
}

template <typename Traits>
void TConvEmitter<Traits>::store_lanes(const Xbyak::Address& dst, const Vmm& x, uint32_t bits) {
  if constexpr (Traits::kHasOpmask) {
    mov(eax, bits);
    kmovw(store_opmask, eax);
    vmovups(dst | store_opmask, x);
  } else {
    const auto found = std::find(store_masks_.begin(), store_masks_.end(), bits);
    if (found == store_masks_.end()) throw Error("plan", "a partial super voxel mask was not collected");
    const Vmm mask = broadcast(0);  // free once the tile is reduced; weight(0) may hold the tail mask
    vmovups(mask, ptr[rip + store_mask_labels_[found - store_masks_.begin()]]);
    vmaskmovps(dst, mask, x);
  }
}

template <typename Traits>
void TConvEmitter<Traits>::store_tile(int width, int vectors, bool masked, int64_t first) {
  const int64_t pitch = plan_.w_output_step() * output_voxel_bytes();
  const uint32_t lane_all = (uint32_t(1) << plan_.lanes) - 1;
  const int64_t voxel_all = plan_.w_pack > 1 ? (int64_t(1) << plan_.vector_channels()) - 1 : 0;
  if constexpr (!Traits::kHasOpmask) {
    if (masked) vmovups(weight(0), ptr[rip + tail_mask_]);
  }
  for (int p = 0; p < width; ++p) {
    // A lane-packed super voxel reaching outside the row stores only its
    // inside lanes, vector by vector (its lanes past the channels are 0 bits).
    const int64_t stored = first >= 0 && plan_.w_pack > 1 ? plan_.w_pack_lane_mask(first + p) : voxel_all;
    for (int v = 0; v < vectors; ++v) {
      const Xbyak::Address dst = ptr[reg_out + p * pitch + 4 * v * plan_.lanes];
      const Vmm acc = accumulator(p, v, vectors);
      if (stored != voxel_all) {
        const uint32_t bits = static_cast<uint32_t>(stored >> (v * plan_.lanes)) & lane_all;
        if (bits == lane_all)
          vmovups(dst, acc);
        else if (bits)
          store_lanes(dst, acc, bits);
      } else if (masked && v == vectors - 1) {
        if constexpr (Traits::kHasOpmask) {
          vmovups(dst | tail_opmask, acc);
        } else {
          vmaskmovps(dst, weight(0), acc);
        }
      } else {
        vmovups(dst, acc);
      }
    }
  }
}

template <typename Traits>
uint32_t TConvEmitter<Traits>::stored_lanes(int64_t first, int p, int v, int vectors, bool masked) const {
  const uint32_t lane_all = (uint32_t(1) << plan_.lanes) - 1;
  if (first >= 0 && plan_.w_pack > 1) {
    // A lane-packed super voxel reaching outside the row stores only its
    // inside lanes (its lanes past the channels are 0 bits).
    const int64_t voxel_all = (int64_t(1) << plan_.vector_channels()) - 1;
    const int64_t stored = plan_.w_pack_lane_mask(first + p);
    if (stored != voxel_all) return static_cast<uint32_t>(stored >> (v * plan_.lanes)) & lane_all;
  }
  if (masked && v == vectors - 1) return (uint32_t(1) << plan_.tail_lanes) - 1;
  return lane_all;
}

template <typename Traits>
template <typename Half>
void TConvEmitter<Traits>::store_bf16(const Xbyak::Address& dst, const Half& x, uint32_t bits) {
  if constexpr (Traits::kHasOpmask) {
    const uint32_t lane_all = (uint32_t(1) << plan_.lanes) - 1;
    if (bits == lane_all) {
      vmovdqu16(dst, x);
    } else if (plan_.tail_lanes && bits == (uint32_t(1) << plan_.tail_lanes) - 1) {
      vmovdqu16(dst | tail_opmask, x);
    } else if (bits) {
      mov(eax, bits);
      kmovw(store_opmask, eax);
      vmovdqu16(dst | store_opmask, x);
    }
  }
}

template <typename Traits>
void TConvEmitter<Traits>::store_tile_bf16(int width, int vectors, bool masked, int64_t first) {
  // Activation on the float32 accumulators, in zmm vectors (a ymm plan
  // activates two accumulators per zmm: half the operations), then
  // vcvtneps2bf16 (nearest even) and bf16 stores under the lane masks.
  if constexpr (Traits::kHasOpmask) {
    const int64_t pitch = plan_.w_output_step() * output_voxel_bytes();
    const bool activate = plan_.activation.kind != ActivationKind::kLinear;
    constexpr bool kYmm = std::is_same_v<Vmm, Xbyak::Ymm>;
    const int count = width * vectors;
    auto dst = [&](int a) {
      return ptr[reg_out + (a / vectors) * pitch + 2 * (a % vectors) * plan_.lanes];
    };
    auto bits = [&](int a) { return stored_lanes(first, a / vectors, a % vectors, vectors, masked); };
    // Scratch while accumulator a (and a + 1, moved into a's upper half) is
    // activated: every register but the accumulators not yet stored.
    auto scratch = [&](int a, bool pair) {
      std::vector<Xbyak::Zmm> free;
      for (int r = 0; r < Traits::kRegisters; ++r)
        if (r < a || r >= count || (pair && r == a + 1)) free.emplace_back(r);
      return free;
    };
    for (int a = 0; a < count;) {
      const Xbyak::Zmm acc(a);
      if (kYmm && activate && a + 1 < count) {
        // Accumulators a and a + 1 in the two halves of zmm a.
        vinsertf32x8(acc, acc, Xbyak::Ymm(a + 1), 1);
        wide_activation_->emit(acc, scratch(a, true));
        const Xbyak::Ymm both(a);
        vcvtneps2bf16(both, acc, Xbyak::EvexEncoding);
        const Xbyak::Xmm low(a), high(a + 1);
        vextracti32x4(high, both, 1);
        store_bf16(dst(a), low, bits(a));
        store_bf16(dst(a + 1), high, bits(a + 1));
        a += 2;
        continue;
      }
      if (activate) {
        if constexpr (kYmm)
          wide_activation_->emit(acc, scratch(a, false));
        else
          activation_.emit(acc, scratch(a, false));
      }
      if constexpr (kYmm) {
        const Xbyak::Xmm half(a);
        vcvtneps2bf16(half, Xbyak::Ymm(a), Xbyak::EvexEncoding);
        store_bf16(dst(a), half, bits(a));
      } else {
        const Xbyak::Ymm half(a);
        vcvtneps2bf16(half, acc, Xbyak::EvexEncoding);
        store_bf16(dst(a), half, bits(a));
      }
      ++a;
    }
  }
}

template <typename Traits>
void TConvEmitter<Traits>::emit_group_activation_pass() {
  // One group's channels of every voxel of the finished row.
  const int g = plan_.only_group;
  const bool last = g == plan_.oc_groups - 1;
  const int vectors = last ? plan_.last_group_vectors : plan_.oc_block;
  const bool masked = last && plan_.tail_lanes != 0;
  const Vmm x(0);
  const Vmm mask(Traits::kRegisters - 1);
  std::vector<Vmm> scratch;
  for (int i = 1; i < activation_registers() - 1; ++i) scratch.emplace_back(i);
  mov(rax, ptr[reg_args + off::kOutput]);
  if (g) add(rax, static_cast<uint32_t>(4 * g * plan_.oc_block * plan_.lanes));
  Xbyak::Label next_voxel;
  mov(reg_tiles, plan_.geometry.axes[2].out);
  L(next_voxel);
  for (int v = 0; v < vectors; ++v) {
    const Xbyak::Address at = ptr[rax + 4 * v * plan_.lanes];
    if (masked && v == vectors - 1) {
      if constexpr (Traits::kHasOpmask) {
        vmovups(x | tail_opmask | T_z, at);
        activate(x, scratch);
        vmovups(ptr[rax + 4 * v * plan_.lanes] | tail_opmask, x);
      } else {
        vmovups(mask, ptr[rip + tail_mask_]);
        vmaskmovps(x, mask, at);
        activate(x, scratch);
        vmaskmovps(at, mask, x);
      }
    } else {
      vmovups(x, at);
      activate(x, scratch);
      vmovups(at, x);
    }
  }
  add(rax, static_cast<uint32_t>(output_voxel_bytes()));
  dec(reg_tiles);
  jnz(next_voxel, T_NEAR);
}

template <typename Traits>
void TConvEmitter<Traits>::emit_activation_pass() {
  if (plan_.only_group >= 0) {
    emit_group_activation_pass();
    return;
  }
  if constexpr (Traits::kHasOpmask && std::is_same_v<Vmm, Xbyak::Ymm>) {
    // AVX-512 in ymm vectors: the row is contiguous, so the pass runs in zmm
    // vectors. The activation's long dependency chains then keep half as
    // many operations waiting in the FP scheduler per element (a zmm
    // operation is one, issued as two halves on Zen 4).
    emit_row_pass(*wide_activation_, 16, 32);
  } else {
    emit_row_pass(activation_, plan_.lanes, activation_registers());
  }
}

template <typename Traits>
template <typename RowVmm>
void TConvEmitter<Traits>::emit_row_pass(ActivationEmitter<RowVmm>& act, int lanes, int registers) {
  // The row is finished and L1-hot: load, activate, store, every register free.
  const int64_t total = plan_.geometry.axes[2].out * plan_.geometry.out_channels;
  const int64_t full = total / lanes;
  const int rest = static_cast<int>(total % lanes);
  const RowVmm x(0);
  const RowVmm mask(registers - 1);
  std::vector<RowVmm> scratch;
  for (int i = 1; i < registers - 1; ++i) scratch.emplace_back(i);
  mov(rax, ptr[reg_args + off::kOutput]);
  if (full > 0) {
    Xbyak::Label next;
    mov(reg_ci, full);
    L(next);
    vmovups(x, ptr[rax]);
    act.emit(x, scratch);
    vmovups(ptr[rax], x);
    add(rax, 4 * lanes);
    dec(reg_ci);
    jnz(next, T_NEAR);
  }
  if (rest) {
    if constexpr (Traits::kHasOpmask) {
      mov(edx, (1u << rest) - 1);
      kmovw(row_opmask, edx);
      vmovups(x | row_opmask | T_z, ptr[rax]);
      act.emit(x, scratch);
      vmovups(ptr[rax] | row_opmask, x);
    } else {
      vmovups(mask, ptr[rip + row_mask_]);
      vmaskmovps(x, mask, ptr[rax]);
      act.emit(x, scratch);
      vmaskmovps(ptr[rax], mask, x);
    }
  }
}

template <typename Traits>
void TConvEmitter<Traits>::emit_constants() {
  if constexpr (!Traits::kHasOpmask) {
    const int64_t total = plan_.geometry.axes[2].out * plan_.geometry.out_channels;
    const int rest = static_cast<int>(total % plan_.lanes);
    align(32);
    L(tail_mask_);
    for (int i = 0; i < plan_.lanes; ++i) dd(i < plan_.tail_lanes ? 0xFFFFFFFFu : 0u);
    L(row_mask_);
    for (int i = 0; i < plan_.lanes; ++i) dd(i < rest ? 0xFFFFFFFFu : 0u);
    for (size_t m = 0; m < store_masks_.size(); ++m) {
      L(store_mask_labels_[m]);
      for (int i = 0; i < plan_.lanes; ++i) dd((store_masks_[m] >> i) & 1 ? 0xFFFFFFFFu : 0u);
    }
  }
  if (!input_masks_.empty()) {
    align(32);
    for (size_t m = 0; m < input_masks_.size(); ++m) {
      L(input_mask_labels_[m]);
      if constexpr (Traits::kHasOpmask) {
        dd(input_masks_[m]);  // kmovw reads the low 16 bits
      } else {
        for (int i = 0; i < plan_.lanes; ++i) dd((input_masks_[m] >> i) & 1 ? 0xFFFFFFFFu : 0u);
      }
    }
  }
  activation_.emit_constants();
  if (wide_activation_) wide_activation_->emit_constants();
}

template <typename Traits>
void TConvEmitter<Traits>::activate(const Vmm& x, const std::vector<Vmm>& scratch) {
  activation_.emit(x, scratch);
}

template class TConvEmitter<Avx2Traits>;
template class TConvEmitter<Avx512Traits>;
template class TConvEmitter<Avx512YmmTraits>;

CompiledCode emit_tconv_kernel(const codegen::KernelPlan& plan) {
  if (plan.bf16()) return emit_bf16_kernel(plan);
  return emit_tconv_template_kernel(plan);
}

CompiledCode emit_tconv_template_kernel(const codegen::KernelPlan& plan) {
  try {
    if (plan.isa == Isa::kAvx512 && plan.lanes == Avx512YmmTraits::kLanes)
      return TConvEmitter<Avx512YmmTraits>(plan).generate();
    if (plan.isa == Isa::kAvx512) return TConvEmitter<Avx512Traits>(plan).generate();
    if (plan.isa == Isa::kAvx2) return TConvEmitter<Avx2Traits>(plan).generate();
  } catch (const Xbyak::Error& e) {
    throw Error("xbyak", std::string("code generation failed: ") + e.what());
  }
  throw Error("isa", "the xbyak emitter needs avx2 or avx512, got " + to_string(plan.isa));
}

const codegen::CodeBackend& xbyak_code_backend() {
  static const codegen::CodeBackend backend{
      Backend::kXbyak, "", [](const codegen::KernelPlan& plan) { return plan.cache_key(); }, emit_tconv_kernel};
  return backend;
}

}  // namespace tconv3d::x64
