// Weights reordered once, at layer creation, into the layout the generated
// kernel reads: for each (kd, kh) tap, for each W phase, for each output
// channel group, for each input channel, for each W tap of the phase, the
// group's channel vectors (zero-padded to full vectors):
//   [kd][kh][W phase][group][ci][W tap][vector][lane]
// so one Cin step of a tile reads consecutive vectors. A lane-packed plan
// (plan.w_pack > 1) has one W "phase" whose taps are input offsets, see
// plan/plan.hpp. An input-gradient plan (plan.pass) packs the same layout
// from the kernel's view, transposed: its Cin steps run over the filters and
// its lanes over the layer's input channels.
//
// The layout is described once, as data (packing_runs): a list of runs that
// copy consecutive output channels of the Keras kernel into consecutive
// packed floats; every float no run writes is zero. The C++ packer below,
// the LLVM AOT module's NAME_pack and the Xbyak AOT object's NAME_pack all
// apply the same table, so no second description of the layout exists.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <vector>

#include "plan/plan.hpp"

namespace tconv3d {

// 64-byte aligned float storage (one cache line, one zmm).
class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(size_t count);  // zero-filled; throws std::bad_alloc
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> data_;
  size_t size_ = 0;
};

// packed[dst + i] = source[src + i * stride] for i < count.
struct PackRun {
  int64_t dst = 0;
  int64_t src = 0;
  int64_t count = 0;
};

struct PackRuns {
  // Into the packed weights (packed_weight_count() floats) from the Keras
  // kernel (kd, kh, kw, filters, in_channels): consecutive lanes are
  // consecutive filters, so the source stride is in_channels (input
  // gradient: consecutive input channels, stride 1).
  std::vector<PackRun> weights;
  int64_t weight_stride = 1;
  // Into the packed bias (padded_out_channels() floats) from the (filters,)
  // bias, stride 1; none when the plan has no bias.
  std::vector<PackRun> bias;
};

PackRuns packing_runs(const codegen::KernelPlan& plan);

// Applies runs; `packed` must already hold zeros where no run writes.
void apply_pack_runs(const std::vector<PackRun>& runs, int64_t stride, const float* source, float* packed);

// kernel: Keras layout (kd, kh, kw, filters, in_channels).
AlignedFloats pack_weights(const codegen::KernelPlan& plan, const float* kernel);

// (filters,) bias, or zeros without one, padded to oc_vectors * lanes.
AlignedFloats pack_bias(const codegen::KernelPlan& plan, const float* bias);

}  // namespace tconv3d
