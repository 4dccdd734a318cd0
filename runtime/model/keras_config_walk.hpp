// Finds every Conv3DTranspose in a Keras model config (Sequential,
// Functional, and models nested inside them), with what the config says
// about its input shape and where its weights live.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tconv3d::model {

// One step of a layer's path: the Keras layer name, and the group name
// Keras's saving library gives it in a `.keras`/`.weights.h5` file (the
// snake_case class name, numbered among its siblings: conv3d_transpose_1).
struct KerasPathStep {
  std::string name;
  std::string saved_name;
};

struct KerasLayerSite {
  std::vector<KerasPathStep> steps;  // enclosing models, then the layer itself
  nlohmann::json entry;              // {"class_name": "Conv3DTranspose", "config": {...}, ...}
  // From build_config, the inbound tensor, or the input layer feeding it:
  // -1 for a free dimension (the batch), empty when the config says nothing.
  std::vector<int64_t> input_shape;

  std::string path() const;  // names joined by '/'
};

// Throws tconv3d::Error("config", ...) for a config that is not a model.
std::vector<KerasLayerSite> find_transposed_convolutions(const nlohmann::json& model_config);

// Keras's to_snake_case: "Conv3DTranspose" -> "conv3d_transpose".
std::string keras_snake_case(const std::string& class_name);

// True for a layer class that is a 3D transposed convolution.
bool is_conv3d_transpose_class(const std::string& class_name);

}  // namespace tconv3d::model
