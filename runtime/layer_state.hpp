// What a Layer holds, shared by the files that implement Layer's methods
// (layer.cc: creation and forward; layer_backward.cc: the backward pass).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/backward_executor.hpp"
#include "runtime/bf16_backward_executor.hpp"
#include "runtime/backward_scratch.hpp"
#include "runtime/executor.hpp"
#include "runtime/weight_store.hpp"
#include "tconv3d/layer.hpp"

namespace tconv3d {

struct Layer::State {
  LayerConfig config;
  ConvGeometry geometry;
  bool explicit_geometry = false;        // from create_from_geometry: reshape keeps its crops
  std::shared_ptr<WeightStore> weights;  // shared by every shape of the layer
  std::vector<std::string> warnings;
  std::unique_ptr<Executor> executor;
  LayerOptions options;
  int threads = 1;
  // Built on the first backward() (a layer that only infers never pays for
  // them), once, whichever thread gets there first.
  mutable std::once_flag backward_once, preactivation_once;
  mutable std::unique_ptr<BackwardExecutor> backward;
  mutable std::unique_ptr<Executor> preactivation;  // the forward with a linear activation: z
  // A bf16 layer's (layer_backward_bf16.cc); its z comes from `preactivation`,
  // a bf16 executor there.
  mutable std::once_flag bf16_backward_once;
  mutable std::unique_ptr<Bf16BackwardExecutor> bf16_backward;
  mutable BackwardScratch backward_scratch;         // z, dz and channels_last copies, kept between calls
};

}  // namespace tconv3d
