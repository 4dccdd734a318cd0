// SpecializationCache: the layers one Keras config has been specialized into,
// one per (input shape, weights). Shared by the NumPy API (weights fixed at
// construction) and the XLA FFI handler (weights arrive with every call and
// may change between calls: an optimizer step, set_weights).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d::python {

class SpecializationCache {
 public:
  // How many (shape, weights) specializations one config keeps. Enough for a
  // train/eval pair of batch sizes and a couple of weight sets alternating
  // through one functional call site; beyond it the least recently used goes.
  static constexpr size_t kCapacity = 8;

  SpecializationCache(LayerConfig config, LayerOptions options);

  // A layer for exactly this input shape and these weights. With
  // `compare_weights` a cached layer is reused only if its weights equal the
  // given ones byte for byte (the check stops at the first difference, so a
  // changed kernel costs almost nothing to detect); without it the caller
  // promises the weights never change. Thread-safe; building happens outside
  // the lock so concurrent calls for other shapes do not wait.
  std::shared_ptr<const Layer> get(const std::vector<int64_t>& input_shape, const ConstTensor& kernel,
                                   const ConstTensor& bias, bool compare_weights);

  // The most recently used specialization, or null before the first.
  std::shared_ptr<const Layer> latest() const;
  // How many layers get() has built (specialized) so far: the observable "no
  // respecializing per call" of the tests. A new shape with weights seen
  // before reshapes their layer, which shares its packing.
  int64_t builds() const;

  const LayerConfig& config() const { return config_; }
  const LayerOptions& options() const { return options_; }

 private:
  struct Entry {
    std::vector<int64_t> input_shape;
    std::shared_ptr<const Layer> layer;
  };
  // Whether the entry's layer holds these weights (always, without compare_weights).
  bool same_weights(const Entry& entry, const ConstTensor& kernel, const ConstTensor& bias,
                    bool compare_weights) const;

  LayerConfig config_;
  LayerOptions options_;
  mutable std::mutex mutex_;
  std::list<Entry> entries_;  // most recently used first
  int64_t builds_ = 0;
};

// Checks a weight tensor's shape against the config before anything is built,
// so a wrong kernel fails at construction rather than at the first call.
void check_weight_shapes(const LayerConfig& config, const std::vector<int64_t>& kernel_shape,
                         const std::vector<int64_t>* bias_shape);

}  // namespace tconv3d::python
