// What a model loader hands to tconv3d::Model: one transposed convolution,
// described well enough to specialize it for any input shape.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tconv3d/layer.hpp"
#include "tconv3d/model.hpp"

namespace tconv3d::model {

struct LayerRecipe {
  ModelLayer::Info info;
  // Builds the layer for one concrete input shape; throws tconv3d::Error.
  std::function<Layer(const std::vector<int64_t>& input_shape, const LayerOptions& options)> build;
};

struct LoadedModel {
  std::string format;
  std::vector<LayerRecipe> layers;
  std::vector<std::string> warnings;
};

// Every error while loading `file` is rethrown as Error(file, "layer 'NAME': ...").
[[noreturn]] void fail(const std::string& file, const std::string& layer, const std::string& problem);

}  // namespace tconv3d::model
