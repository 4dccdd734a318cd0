// ONNX ConvTranspose nodes with 5-D inputs, as tconv3d layers in NCDHW.
#pragma once

#include <string>

#include "runtime/model/layer_recipe.hpp"
#include "tconv3d/model.hpp"

namespace tconv3d::model {

LoadedModel load_onnx(const std::string& path, const std::string& bytes, const ModelOptions& options);

}  // namespace tconv3d::model
