// Shared by the fuzz targets: a loaded model's layers are also built for
// their known shapes (small ones), so the geometry and weight checks run on
// whatever the parser accepted. Only tconv3d::Error may escape a loader.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/model/layer_recipe.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::fuzz {

inline void build_small_layers(const model::LoadedModel& loaded) {
  for (const auto& recipe : loaded.layers) {
    std::vector<int64_t> shape = recipe.info.input_shape;
    if (shape.size() != 5) continue;
    double elements = 1;
    for (auto& d : shape) {
      if (d < 0) d = 1;
      elements *= double(d);
    }
    if (elements > 1e5 || recipe.info.weight_bytes > 4e6) continue;
    LayerOptions options;
    options.backend = Backend::kGeneric;
    options.threads = 1;
    try {
      recipe.build(shape, options);
    } catch (const Error&) {
    }
  }
}

}  // namespace tconv3d::fuzz
