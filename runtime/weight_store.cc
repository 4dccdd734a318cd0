#include "runtime/weight_store.hpp"

namespace tconv3d {

WeightStore::WeightStore(std::vector<float> kernel, std::vector<float> bias)
    : kernel_(std::move(kernel)), bias_(std::move(bias)) {}

std::shared_ptr<const PackedWeights> WeightStore::packed_for(const codegen::KernelPlan& plan) {
  const std::string key = plan.weight_layout_key();
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = packed_.find(key);
  if (found != packed_.end()) return found->second;
  auto packed = std::make_shared<PackedWeights>();
  packed->weights = pack_weights(plan, kernel_.data());
  packed->bias = pack_bias(plan, plan.has_bias ? bias_or_null() : nullptr);
  packed_.emplace(key, packed);
  return packed;
}

int64_t WeightStore::packs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(packed_.size());
}

}  // namespace tconv3d
