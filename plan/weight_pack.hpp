// Weights reordered once, at layer creation, into the layout the generated
// kernel reads: for each (kd, kh) tap, for each W phase, for each output
// channel group, for each input channel, for each W tap of the phase, the
// group's channel vectors (zero-padded to full vectors):
//   [kd][kh][W phase][group][ci][W tap][vector][lane]
// so one Cin step of a tile reads consecutive vectors. A lane-packed plan
// (plan.w_pack > 1) has one W "phase" whose taps are input offsets, see
// plan/plan.hpp.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

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

// kernel: Keras layout (kd, kh, kw, filters, in_channels).
AlignedFloats pack_weights(const codegen::KernelPlan& plan, const float* kernel);

// (filters,) bias, or zeros without one, padded to oc_vectors * lanes.
AlignedFloats pack_bias(const codegen::KernelPlan& plan, const float* bias);

}  // namespace tconv3d
