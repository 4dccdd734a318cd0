// The kernel plan: everything the code generators need to know about one
// layer, decided once, before any byte is emitted. A pure function of the
// Problem and the ISA; ISA-neutral apart from the vector width and register
// count it was sized for, so the Xbyak and LLVM emitters read the same plan.
//
// Polyphase, output-stationary: per axis, output o gets input i through tap a
// iff o + crop_begin = i*stride + a*dilation. With r = (o + crop_begin) mod
// stride and q = (o + crop_begin) div stride, phase r uses exactly the taps
// with (a*dilation) mod stride == r, at input i = q - t_a where
// t_a = (a*dilation - r) / stride. Each phase is a dense stride-1
// correlation; a phase without taps holds only bias + activation.
//
// The same plan also describes the input gradient of the layer, dx, a
// strided forward convolution of dz (make_input_gradient_plan): see
// KernelPlan::pass.
//
// What runs: one generated call per output row (n, od, oh). The D and H taps
// valid for that row come in at run time as a list of (input row, weight
// block) pairs; the W axis is resolved entirely at generation time (border
// tiles straight-line, interior tiles in a loop). Per W phase and output
// channel group, a register tile of `tile_w` same-phase voxels x `oc_block`
// vectors accumulates the whole reduction over (row taps, Cin, W taps).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/problem.hpp"
#include "tconv3d/options.hpp"

namespace tconv3d::codegen {

struct PhaseTap {
  int64_t tap = 0;     // kernel index a along the axis
  int64_t offset = 0;  // t_a: the tap reads input q - t_a
};

// The outputs of one axis that share a phase: first_out, first_out + stride, ...
// Voxel j of a phase (j = 0..count-1) is output first_out + j * output step
// and reads input first_q + j * input step - offset through each tap (steps:
// KernelPlan::w_output_step / w_input_step, stride and 1 in the forward pass).
struct AxisPhase {
  int64_t residue = 0;    // r = (o + crop_begin) mod stride
  int64_t first_out = 0;  // smallest o >= 0 of this phase (lane-packed W: may be < 0, see w_pack)
  int64_t count = 0;      // how many outputs have this phase
  int64_t first_q = 0;    // q of first_out
  std::vector<PhaseTap> taps;
};

// What a plan's row kernel computes.
enum class PlanPass {
  kForward,        // y of the transposed convolution (make_plan)
  kInputGradient,  // dx from dz (make_input_gradient_plan)
};

// Same-shaped W tiles of one W phase, positions j counted within the phase.
struct WSegment {
  int64_t first = 0;      // position of the first tile's first voxel
  int64_t tiles = 0;      // consecutive tiles of `width` voxels
  int width = 0;          // voxels per tile (<= KernelPlan::tile_w)
  bool interior = false;  // every W tap valid for every voxel: emitted as a loop
};

// Choices a backend may decline: every field names a feature its emitter
// implements. Which backend takes which is decided in one place,
// plan_for_backend().
struct PlanOptions {
  bool pack_w_phases = true;
  // Lane packing whose super voxel spans several vectors (see
  // KernelPlan::w_pack): the emitter skips the all-zero weight vectors of an
  // input offset and masks each vector of a partial super voxel on its own.
  bool pack_w_multi_vector = true;
  // AVX-512 with 8-lane (ymm) vectors and all 32 registers and opmasks,
  // where that needs at least 1/8 fewer 256-bit FMAs (bf16: vdpbf16ps) than
  // zmm vectors (see make_plan).
  bool narrow_avx512 = true;
  // Only what every emitter implements.
  static PlanOptions baseline() {
    return PlanOptions{.pack_w_phases = false, .pack_w_multi_vector = false, .narrow_avx512 = false};
  }
};

struct KernelPlan {
  Isa isa = Isa::kAvx2;
  int lanes = 8;              // fp32 lanes per vector register (AVX-512: 16, or 8 in ymm registers)
  int vector_registers = 16;  // architectural vector registers

  // The forward pass: geometry is the layer's, a row kernel reads the input
  // x (in_channels, the contraction) and writes the output y (out_channels,
  // the vector lanes), output o of an axis gets input i through tap a iff
  // o + crop_begin = i*stride + a*dilation.
  //
  // The input gradient: a row kernel reads dz and writes dx, so geometry is
  // the layer's seen from the kernel: in_channels = filters (the
  // contraction), out_channels = the layer's input channels (the lanes),
  // axes[a].in = the layer's output extent (dz), axes[a].out = the layer's
  // input extent (dx), kernel, stride, dilation and crop_begin the layer's;
  // channels_last. Output o (of dx) gets input i (of dz) through tap a iff
  // i = o*stride + a*dilation - crop_begin: one phase per axis holding every
  // tap, with offset -a*dilation and first_q = -crop_begin, and along W an
  // input step of stride. No bias (zeros), no activation, no lane packing.
  PlanPass pass = PlanPass::kForward;
  // bf16 (AVX-512 only): input, output and packed weights in bf16, the
  // contraction over channel pairs (one vdpbf16ps per pair; the packed
  // weights hold one dword = two bf16 per (pair, lane), see weight_pack.hpp),
  // float32 accumulators, bias and activation (fused into the store: no row
  // pass). Every float32 plan's keys and names stay as they were.
  DataType dtype = DataType::kFloat32;
  bool bf16() const { return dtype == DataType::kBfloat16; }
  int64_t element_bytes() const { return bf16() ? 2 : 4; }
  // Steps of the contraction: input channels, or channel pairs in bf16.
  int64_t contraction_steps() const { return bf16() ? (geometry.in_channels + 1) / 2 : geometry.in_channels; }
  ConvGeometry geometry;
  bool has_bias = true;
  Activation activation;  // elementwise; linear means none

  std::array<std::vector<AxisPhase>, 3> phases;  // D, H, W; one entry per residue

  // Lane packing, for few output channels and a W stride > 1 (e.g. a 4-filter
  // head: 4 of 8 or 16 lanes would idle). One vector then holds the channels
  // of w_pack = stride consecutive output voxels, one of each W phase, which
  // are adjacent in a channels_last row. phases[2] is then a single phase of
  // such "super voxels" q: its taps are the distinct input offsets t of all W
  // phases (PhaseTap::tap is unused), lane r * Cout + c of offset t holds
  // tap a with a * dilation = t * stride + r, or zero. Super voxel j covers
  // outputs first_out + j * stride + r; the first and last may reach outside
  // 0..out-1, and their stores mask those lanes (w_pack_lane_mask).
  // A super voxel may span several vectors (e.g. 2 phases x 20 filters = 5
  // ymm vectors, against 3 vectors of 8 with 4 idle lanes per phase voxel
  // unpacked); an input offset then skips the vectors none of its phases
  // has a tap for (w_pack_vector_used), so the zero weights cost no FMA.
  int w_pack = 1;
  int64_t w_pack_lane_mask(int64_t j) const;  // bit l: lane l of super voxel j is stored (< 63 lanes)
  // Lane-packed: whether vector v (of oc_vectors) of W tap (input offset)
  // widx holds a weight of some phase; true for every unpacked plan.
  bool w_pack_vector_used(size_t widx, int v) const;
  // Lane-packed: the lanes of vector v of W tap widx that must see the input
  // (bit l: lane l holds a weight of some phase, or lies past the channels and
  // is never stored); all lanes for an unpacked plan. A lane left out holds a
  // padding weight of 0, and 0 * NaN or 0 * Inf would put a NaN into an output
  // Keras computes finite, so the emitters mask the input out of those lanes.
  uint32_t w_pack_input_lanes(size_t widx, int v) const;
  int64_t vector_channels() const { return w_pack * geometry.out_channels; }  // channels the lanes hold

  // Output channels: oc_vectors vectors of `lanes`, in groups of oc_block.
  int oc_vectors = 0;
  int oc_block = 0;
  int oc_groups = 0;
  int last_group_vectors = 0;  // vectors in the last group (<= oc_block)
  int tail_lanes = 0;          // valid lanes of the last vector; 0: all (of vector_channels())

  int tile_w = 0;      // voxels per register tile along W
  int cin_unroll = 0;  // Cin steps per loop iteration
  std::vector<std::vector<WSegment>> w_segments;  // per W phase

  // Large weight sets: one kernel (and one call per row) per channel group,
  // with the groups in the outer loop, so a group's weights stay in L2.
  bool split_groups = false;
  int only_group = -1;  // the group this kernel computes; -1: every group
  KernelPlan for_group(int group) const;  // throws unless 0 <= group < oc_groups

  // Non-linear activations run as a load-activate-store pass over each
  // finished output row (L1-hot), which keeps every register free for tiles.
  bool activation_row_pass = false;
  // channels_first: transpose in and out around the channels_last kernel.
  // (Reading the input in place was measured 1.9x slower on unet_up_k2s2_cf:
  // its channel planes are 16 KB apart, so every channel of a tile maps to
  // the same L1 set and the tile's input lines evict each other.)
  bool transpose_channels_first = false;

  // Along W, between consecutive voxels of a phase: output voxels (the
  // forward pass: stride, the phase's outputs are stride apart; the input
  // gradient: 1) and input voxels (forward: 1; input gradient: stride).
  int64_t w_output_step() const { return pass == PlanPass::kForward ? geometry.axes[2].stride : 1; }
  int64_t w_input_step() const { return pass == PlanPass::kForward ? 1 : geometry.axes[2].stride; }

  // Derived sizes (floats; bf16: dwords of two bf16) of the packed weight layout, see weight_pack.hpp.
  int64_t w_taps(int rw) const { return static_cast<int64_t>(phases[2][rw].taps.size()); }
  int64_t padded_out_channels() const { return int64_t(oc_vectors) * lanes; }  // lanes per voxel (super voxel)
  int64_t weights_per_dh_tap() const;          // all W phases (offsets) and channels of one (kd, kh) tap
  int64_t weights_phase_offset(int rw) const;  // start of W phase rw inside a (kd, kh) block
  int64_t weights_group_stride(int rw) const;  // between uniform channel groups of phase rw
  int64_t packed_weight_count() const;

  // Whether W tap `widx` of phase rw reads a valid input for voxel j.
  bool w_tap_valid(int rw, int64_t j, size_t widx) const;
  // valid[t][p]: W tap t of phase rw reads a valid input for voxel p of a
  // tile of `segment` (every entry true in an interior segment).
  using WTapMask = std::vector<std::vector<bool>>;
  WTapMask w_tap_mask(int rw, const WSegment& segment) const;

  std::string to_string() const;   // human-readable, for `tconv3d plan`
  std::string cache_key() const;   // everything that changes the generated code
  // Everything the packed weights' layout depends on. Only the layer and the
  // ISA enter it, never the input's size, so every input shape of a layer
  // shares one packing.
  std::string weight_layout_key() const;
};

// The polyphase split of one axis: one entry per residue r = 0..stride-1,
// with the taps (a * dilation) mod stride == r, in tap order. Every kernel
// that computes by phases (generated and generic) takes its split from here.
std::vector<AxisPhase> axis_phases(const AxisGeometry& axis);

// isa must be kAvx2 or kAvx512 (resolved); the problem's activation must be
// elementwise. An AVX-512 plan (float32 or bf16) uses 8-lane (ymm) vectors
// where their plan needs at least 1/8 fewer 256-bit FMAs (vdpbf16ps) than
// 16-lane ones (w_fma_halves; options.narrow_avx512): few filters that leave
// zmm lanes idle (k3s2_op1_odd: 20 filters x 2 W phases in 5 ymm vectors
// against 3 zmm with 8 lanes idle; the 4-filter head: 8 lanes). It is AVX2's
// vector with twice the registers (larger tiles) and opmasks. Throws
// tconv3d::Error for shapes the generated code cannot address (offsets
// beyond 32-bit displacements).
KernelPlan make_plan(const Problem& problem, Isa isa, const PlanOptions& options = {});

// The plan a code-generating backend (kXbyak or kLlvm) runs for a problem:
// the one function every sink (JIT executor, AOT object, benchmark,
// `tconv3d plan`) takes its plan from, so the same layer, ISA and backend
// always get the same kernel. Throws tconv3d::Error for other backends.
KernelPlan plan_for_backend(const Problem& problem, Isa isa, Backend backend);

// The FMA work of `stride` consecutive outputs along W (one voxel of each W
// phase, or one lane-packed super voxel; D/H taps and Cin aside, the same
// for every ISA) in 256-bit FMAs: vector FMAs over the W taps, the vectors a
// lane-packed offset skips left out, a zmm FMA counted as two. Independent
// of the input's size, like the packed weight layout it helps choose. Zen 4 issues a zmm FMA as two ymm halves (the FMA peak
// is the same for both), as do Intel cores with one 512-bit FMA unit.
int64_t w_fma_halves(const KernelPlan& plan);

// The vector ISA `--isa auto` generates a layer's forward kernel for with a
// code backend (kXbyak or kLlvm), given the widest one the CPU runs: AVX2
// where its plan needs at least 1/8 fewer 256-bit FMAs (w_fma_halves) than
// the backend's AVX-512 plan, else `widest`. That is where AVX-512 leaves
// lanes idle that AVX2 fills: the 4-filter head (two W phases x 4 filters
// fill a ymm, half a zmm: 34 % of the FMA peak against 71 % measured on
// Zen 4). The Xbyak AVX-512 plan switches to ymm vectors itself in that case
// (make_plan), so with Xbyak this stays AVX-512; the LLVM backend's plans
// keep zmm vectors and narrow to AVX2 here. On a CPU with two 512-bit FMA
// units a zmm FMA costs one ymm FMA's issue slot, and a layer between half
// and 8/9 full would run faster in zmm vectors; force --isa avx512 with the
// LLVM backend there.
Isa automatic_forward_isa(const Problem& problem, Isa widest, Backend backend = Backend::kXbyak);

// Cost of one output row (n, od, oh) in FMA vector instructions, used to
// balance threads: rows differ in how many D/H taps they see.
int64_t row_cost(const KernelPlan& plan, int64_t od, int64_t oh);

// The (tap, input index) pairs of one axis that reach output o, in tap order
// (the plan's pass decides the relation).
std::vector<std::pair<int64_t, int64_t>> valid_taps(const KernelPlan& plan, int axis, int64_t o);

}  // namespace tconv3d::codegen
