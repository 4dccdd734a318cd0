// Keras JSON (get_config() dicts, model-file layer entries) to LayerConfig.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/keras_objects_json.hpp"
#include "tconv3d/config.hpp"

namespace tconv3d {

// Real Keras configs nest a few dozen levels (models inside models); this is far above.
inline constexpr int kMaxJsonDepth = 256;

// JSON from a file a user downloaded (a model or layer config), parsed with a
// nesting limit: a hostile file cannot then exhaust the stack in the
// recursive code that copies, compares or walks the value. Throws
// tconv3d::Error(where, "invalid JSON: ...").
nlohmann::json parse_untrusted_json(const std::string& text, const std::string& where);

LayerConfig config_from_json(const nlohmann::json& json, std::optional<Flavor> flavor,
                             std::vector<std::string>* warnings);

}  // namespace tconv3d
