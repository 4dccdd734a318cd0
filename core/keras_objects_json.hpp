// Keras's serialized objects (initializers, regularizers, constraints,
// activations) from JSON, by the flavor's own name tables.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tconv3d/config.hpp"

namespace tconv3d {

// Names are looked up exactly as the flavor's Keras does (the tables differ).
Initializer initializer_from_json(const nlohmann::json& json, const std::string& argument,
                                  Flavor flavor = Flavor::kKeras3);
std::optional<Regularizer> regularizer_from_json(const nlohmann::json& json, const std::string& argument,
                                                 Flavor flavor = Flavor::kKeras3);
std::optional<Constraint> constraint_from_json(const nlohmann::json& json, const std::string& argument,
                                               Flavor flavor = Flavor::kKeras3);
Activation activation_from_json(const nlohmann::json& json, Flavor flavor);

}  // namespace tconv3d
