#include "python/src/specialization_cache.hpp"

#include <cstring>
#include <utility>

#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d::python {

SpecializationCache::SpecializationCache(LayerConfig config, LayerOptions options)
    : config_(std::move(config)), options_(options) {}

bool SpecializationCache::same_weights(const Entry& entry, const ConstTensor& kernel, const ConstTensor& bias,
                                       bool compare_weights) const {
  if (!compare_weights) return true;
  const std::vector<float>& k = entry.layer->kernel();
  const std::vector<float>& b = entry.layer->bias();
  if (!kernel.data) return false;
  int64_t kernel_elements = 1;
  for (int64_t d : kernel.shape) kernel_elements *= d;
  if (kernel_elements != static_cast<int64_t>(k.size())) return false;
  if (std::memcmp(k.data(), kernel.data, k.size() * sizeof(float)) != 0) return false;
  if (!b.empty() && (!bias.data || std::memcmp(b.data(), bias.data, b.size() * sizeof(float)) != 0)) return false;
  return true;
}

std::shared_ptr<const Layer> SpecializationCache::get(const std::vector<int64_t>& input_shape,
                                                      const ConstTensor& kernel, const ConstTensor& bias,
                                                      bool compare_weights) {
  std::shared_ptr<const Layer> same_weights_other_shape;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (!same_weights(*it, kernel, bias, compare_weights)) continue;
      if (it->input_shape != input_shape) {
        if (!same_weights_other_shape) same_weights_other_shape = it->layer;
        continue;
      }
      entries_.splice(entries_.begin(), entries_, it);
      return entries_.front().layer;
    }
  }
  // The same weights at another shape: reshape shares their packing. Otherwise
  // Layer::create validates the shape and the weights against the config and
  // copies both, so the caller's buffers may be gone after this returns.
  auto layer = std::make_shared<const Layer>(same_weights_other_shape
                                                 ? same_weights_other_shape->reshape(input_shape)
                                                 : Layer::create(config_, input_shape, kernel, bias, options_));
  std::lock_guard<std::mutex> lock(mutex_);
  ++builds_;
  entries_.push_front(Entry{input_shape, layer});
  if (entries_.size() > kCapacity) entries_.pop_back();
  return layer;
}

std::shared_ptr<const Layer> SpecializationCache::latest() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.empty() ? nullptr : entries_.front().layer;
}

int64_t SpecializationCache::builds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return builds_;
}

void check_weight_shapes(const LayerConfig& config, const std::vector<int64_t>& kernel_shape,
                         const std::vector<int64_t>* bias_shape) {
  const auto& k = config.kernel_size;
  if (kernel_shape.size() != 5 || kernel_shape[0] != k[0] || kernel_shape[1] != k[1] ||
      kernel_shape[2] != k[2] || kernel_shape[3] != config.filters || kernel_shape[4] <= 0) {
    throw Error("kernel", "expected shape (" + std::to_string(k[0]) + ", " + std::to_string(k[1]) + ", " +
                              std::to_string(k[2]) + ", " + std::to_string(config.filters) +
                              ", in_channels) in Keras's layout, got " + shape_to_string(kernel_shape));
  }
  if (config.use_bias && !bias_shape) throw Error("bias", "the config has use_bias=True but no bias was given");
  if (!config.use_bias && bias_shape) throw Error("bias", "the config has use_bias=False but a bias was given");
  if (bias_shape && (bias_shape->size() != 1 || (*bias_shape)[0] != config.filters)) {
    throw Error("bias", "expected shape (" + std::to_string(config.filters) + ",), got " +
                            shape_to_string(*bias_shape));
  }
}

}  // namespace tconv3d::python
