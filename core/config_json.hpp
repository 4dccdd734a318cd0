// Keras JSON (get_config() dicts, model-file layer entries) to LayerConfig.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/keras_objects_json.hpp"
#include "tconv3d/config.hpp"

namespace tconv3d {

LayerConfig config_from_json(const nlohmann::json& json, std::optional<Flavor> flavor,
                             std::vector<std::string>* warnings);

}  // namespace tconv3d
