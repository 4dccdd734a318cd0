#include "tools/support/suite.hpp"

#include <fstream>
#include <sstream>

#include "core/config_json.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

std::vector<SuiteLayer> load_suite(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path, "cannot open for reading");
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("invalid JSON: ") + e.what());
  }
  if (!json.is_object() || !json.contains("layers") || !json["layers"].is_array())
    throw Error(path, "expected an object with a \"layers\" list");
  std::vector<SuiteLayer> layers;
  for (const auto& entry : json["layers"]) {
    SuiteLayer layer;
    try {
      layer.name = entry.at("name").get<std::string>();
      layer.input_shape = entry.at("input_shape").get<std::vector<int64_t>>();
      layer.config = config_from_json(entry.at("config"), std::nullopt, nullptr);
    } catch (const nlohmann::json::exception& e) {
      throw Error(path, std::string("malformed layer entry: ") + e.what());
    } catch (const Error& e) {
      throw Error(path, "layer '" + layer.name + "': " + e.what());
    }
    layer.config.name = layer.name;
    layers.push_back(std::move(layer));
  }
  if (layers.empty()) throw Error(path, "the suite has no layers");
  return layers;
}

}  // namespace tconv3d
