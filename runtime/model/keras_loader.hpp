// Keras model files: `.keras` zips (Keras 3 and tf.keras 2.x), legacy `.h5`
// full models, and bare weights files paired with a model config.
#pragma once

#include <string>

#include "runtime/model/layer_recipe.hpp"
#include "tconv3d/model.hpp"

namespace tconv3d::model {

// `bytes` is the whole file; `is_zip` says which container it is.
LoadedModel load_keras_zip(const std::string& path, const std::string& bytes, const ModelOptions& options);
LoadedModel load_keras_hdf5(const std::string& path, std::string bytes, const ModelOptions& options);

}  // namespace tconv3d::model
