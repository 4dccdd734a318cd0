// The generic kernel's plan: the polyphase split of each axis, the microkernel
// (register tile) chosen for the channel counts, the weights packed per phase,
// and the work tiles that threads share. Everything here is fixed at layer
// creation; the tiles never depend on the thread count, so every output is
// computed by the same instructions in the same order whatever the threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/kernels/generic_microkernel.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d::generic {

// One axis split by stride phase. Output o is in class (o + crop_begin) mod
// stride; the taps a of that class (a * dilation == class mod stride) are the
// only ones that reach it, each from input (o + crop_begin - a * dilation) / stride.
struct AxisPhases {
  std::vector<std::vector<int64_t>> taps;     // class -> kernel taps, ascending
  std::vector<std::vector<int64_t>> outputs;  // class -> output indices, ascending
  std::vector<int64_t> output_class;          // o -> class
  std::vector<int64_t> input_begin;           // o -> first slot in input_index
  std::vector<int64_t> input_index;           // (o, tap slot) -> input index, or -1 outside
  // Where every slot of o's class is inside the input, slot k reads input
  // input_of(o, 0) - slot_shift[class][k]: the fast path needs no table lookups.
  std::vector<std::vector<int64_t>> slot_shift;  // class -> per slot
  std::vector<uint8_t> all_slots_inside;         // o -> 1 when no slot falls outside

  explicit AxisPhases(const AxisGeometry& axis);
  int64_t classes() const { return int64_t(taps.size()); }
  int64_t input_of(int64_t o, int64_t slot) const { return input_index[size_t(input_begin[o] + slot)]; }
};

// A dense sub-convolution: the taps of one (D, H, W) class triple.
struct Phase {
  int64_t class_d = 0, class_h = 0, class_w = 0;
  int64_t taps = 0;            // taps_d * taps_h * taps_w of these classes
  int64_t weight_offset = 0;   // floats into the packed weights
};

// A unit of work: blocks [block_begin, block_end) of R voxels of one phase
// plane, the outputs (n, od, oh in class_h, ow in class_w) in raster order.
// Tiles of one phase are consecutive, so its packed weights stay in cache.
struct Tile {
  int64_t n = 0, od = 0, class_h = 0, class_w = 0;
  int64_t block_begin = 0, block_end = 0;
};

struct Plan {
  GenericIsa isa = GenericIsa::kSse2;
  MicroKernel kernel;           // lanes VL, vectors FV, voxels R
  int64_t block_channels = 0;   // FV * VL output channels per microkernel call
  int64_t channel_blocks = 0;   // ceil(filters / block_channels)
  std::vector<AxisPhases> axes;  // D, H, W
  std::vector<Phase> phases;    // index (class_d * classes_h + class_h) * classes_w + class_w
  std::vector<Tile> tiles;      // grouped by phase, heaviest phases first
  int64_t max_phase_taps = 0;

  const Phase& phase(int64_t cd, int64_t ch, int64_t cw) const {
    return phases[size_t((cd * axes[1].classes() + ch) * axes[2].classes() + cw)];
  }
  std::string describe() const;  // e.g. generic_polyphase__avx512_16x2_r12
};

// Picks the microkernel of `isa` for the filter count and lays out the work.
Plan make_plan(const ConvGeometry& geometry, GenericIsa isa);

// Keras kernel (kd, kh, kw, filters, in_channels) -> per phase, per channel
// block: [tap][in_channel][block_channels], zero-padded past the last filter.
// `packed` must hold packed_weight_count(plan, geometry) floats.
int64_t packed_weight_count(const Plan& plan, const ConvGeometry& geometry);
void pack_weights(const Plan& plan, const ConvGeometry& geometry, const float* kernel, float* packed);

}  // namespace tconv3d::generic
