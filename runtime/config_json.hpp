// Keras JSON (get_config() dicts, model-file layer entries) to LayerConfig.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tconv3d/config.hpp"

namespace tconv3d {

LayerConfig config_from_json(const nlohmann::json& json, std::optional<Flavor> flavor,
                             std::vector<std::string>* warnings);

Initializer initializer_from_json(const nlohmann::json& json, const std::string& argument);
std::optional<Regularizer> regularizer_from_json(const nlohmann::json& json, const std::string& argument);
std::optional<Constraint> constraint_from_json(const nlohmann::json& json, const std::string& argument);
Activation activation_from_json(const nlohmann::json& json, Flavor flavor);

}  // namespace tconv3d
