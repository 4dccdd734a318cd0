// A layer's weights, as given and as packed, shared by every input shape of
// the layer. The packed layout depends only on the layer and the ISA
// (KernelPlan::weight_layout_key), so a new batch or spatial size finds its
// packing here and never repacks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plan/plan.hpp"
#include "plan/weight_pack.hpp"

namespace tconv3d {

struct PackedWeights {
  AlignedFloats weights;
  AlignedFloats bias;
};

class WeightStore {
 public:
  // kernel: Keras layout (kd, kh, kw, filters, in_channels); bias: (filters,)
  // or empty for none.
  WeightStore(std::vector<float> kernel, std::vector<float> bias);

  const std::vector<float>& kernel() const { return kernel_; }
  const std::vector<float>& bias() const { return bias_; }
  const float* bias_or_null() const { return bias_.empty() ? nullptr : bias_.data(); }

  // The weights packed for the plan's layout: packed on the first request
  // of that layout, shared afterwards. Thread-safe.
  std::shared_ptr<const PackedWeights> packed_for(const codegen::KernelPlan& plan);
  int64_t packs() const;  // layouts packed so far

 private:
  const std::vector<float> kernel_;
  const std::vector<float> bias_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const PackedWeights>> packed_;
};

}  // namespace tconv3d
