#include "runtime/model/keras_config_walk.hpp"

#include <cctype>
#include <map>

#include "core/config_json.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/geometry.hpp"

namespace tconv3d::model {
namespace {

using nlohmann::json;

std::string string_or(const json& object, const char* key, const std::string& fallback) {
  if (object.is_object() && object.contains(key) && object[key].is_string()) return object[key].get<std::string>();
  return fallback;
}

// A 5-D shape from JSON: null dimensions become -1; anything else gives {}.
std::vector<int64_t> shape_from_json(const json& value) {
  if (!value.is_array() || value.size() != 5) return {};
  std::vector<int64_t> shape;
  for (const json& dim : value) {
    if (dim.is_null()) shape.push_back(-1);
    else if (dim.is_number_integer() && dim.get<int64_t>() > 0) shape.push_back(dim.get<int64_t>());
    else return {};
  }
  return shape;
}

const json* layer_body(const json& entry) {
  if (entry.is_object() && entry.contains("config") && entry["config"].is_object()) return &entry["config"];
  return nullptr;
}

std::string layer_name(const json& entry) {
  const json* body = layer_body(entry);
  std::string name = body ? string_or(*body, "name", "") : "";
  return name.empty() ? string_or(entry, "name", "") : name;
}

bool is_model_entry(const json& entry) {
  const json* body = layer_body(entry);
  return body && body->contains("layers") && (*body)["layers"].is_array();
}

std::vector<int64_t> input_layer_shape(const json& entry) {
  const json* body = layer_body(entry);
  if (!body) return {};
  for (const char* key : {"batch_shape", "batch_input_shape"}) {
    if (body->contains(key)) {
      auto shape = shape_from_json((*body)[key]);
      if (!shape.empty()) return shape;
    }
  }
  return {};
}

// The name of the layer whose output feeds `entry`, in either dialect:
// Keras 3 {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}]}
// or tf.keras [[["name", 0, 0, {}]]].
std::string inbound_layer(const json& entry) {
  if (!entry.contains("inbound_nodes") || !entry["inbound_nodes"].is_array() || entry["inbound_nodes"].empty())
    return "";
  const json& node = entry["inbound_nodes"][0];
  if (node.is_object() && node.contains("args") && node["args"].is_array() && !node["args"].empty()) {
    const json& arg = node["args"][0];
    if (arg.is_object() && arg.contains("config") && arg["config"].is_object()) {
      const json& history = arg["config"].value("keras_history", json());
      if (history.is_array() && !history.empty() && history[0].is_string()) return history[0].get<std::string>();
    }
  }
  if (node.is_array() && !node.empty() && node[0].is_array() && !node[0].empty() && node[0][0].is_string())
    return node[0][0].get<std::string>();
  return "";
}

std::vector<int64_t> inbound_tensor_shape(const json& entry) {
  if (!entry.contains("inbound_nodes") || !entry["inbound_nodes"].is_array() || entry["inbound_nodes"].empty())
    return {};
  const json& node = entry["inbound_nodes"][0];
  if (node.is_object() && node.contains("args") && node["args"].is_array() && !node["args"].empty()) {
    const json& arg = node["args"][0];
    if (arg.is_object() && arg.contains("config") && arg["config"].is_object() && arg["config"].contains("shape"))
      return shape_from_json(arg["config"]["shape"]);
  }
  return {};
}

// Layers whose output has their input's shape.
bool keeps_shape(const std::string& class_name) {
  static const char* kinds[] = {"Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Dropout",
                                "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                                "BatchNormalization", "LayerNormalization", "GroupNormalization",
                                "UnitNormalization", "ActivityRegularization", "Identity"};
  for (const char* kind : kinds)
    if (class_name == kind) return true;
  return false;
}

// What the config tells about a layer's output shape, for the few layers
// that feed transposed convolutions in practice; {} when unknown.
std::vector<int64_t> output_shape_of(const std::string& class_name, const json& entry,
                                     const std::vector<int64_t>& input) {
  if (class_name == "InputLayer") return input_layer_shape(entry);
  if (keeps_shape(class_name)) return input;
  const json* body = layer_body(entry);
  if (class_name == "Reshape" && body && body->contains("target_shape") && (*body)["target_shape"].is_array()) {
    std::vector<int64_t> shape = {-1};
    for (const json& d : (*body)["target_shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() <= 0) return {};
      shape.push_back(d.get<int64_t>());
    }
    return shape;
  }
  if (is_conv3d_transpose_class(class_name) && input.size() == 5) {
    try {
      std::vector<std::string> ignored;
      const LayerConfig config = config_from_json(entry, std::nullopt, &ignored);
      std::vector<int64_t> concrete = input;
      if (concrete[0] < 0) concrete[0] = 1;
      const Shape5 out = activated_output_shape(resolve_geometry(config, concrete, &ignored), config.activation);
      std::vector<int64_t> shape(out.begin(), out.end());
      shape[0] = input[0];
      return shape;
    } catch (const std::exception&) {
      return {};  // the real error is reported when the layer itself loads
    }
  }
  return {};
}

void walk(const json& model, std::vector<KerasPathStep> prefix, std::vector<KerasLayerSite>& out) {
  const json* body = layer_body(model);
  if (!body || !body->contains("layers") || !(*body)["layers"].is_array()) {
    throw Error("config", "model '" + layer_name(model) + "' has no \"layers\" list");
  }
  const bool sequential = string_or(model, "class_name", "") == "Sequential";
  const json& layers = (*body)["layers"];

  std::map<std::string, int> used;
  std::map<std::string, std::vector<int64_t>> outputs;  // layer name -> output shape, where known
  std::vector<int64_t> previous;                         // a Sequential's running shape
  for (const json& entry : layers) {
    if (!entry.is_object()) throw Error("config", "a layer entry is not a JSON object: " + entry.dump());
    const std::string class_name = string_or(entry, "class_name", "");
    const std::string name = layer_name(entry);
    // The input shape, from the most to the least direct record.
    std::vector<int64_t> input;
    if (entry.contains("build_config") && entry["build_config"].is_object())
      input = shape_from_json(entry["build_config"].value("input_shape", json()));
    if (input.empty()) input = inbound_tensor_shape(entry);
    if (input.empty() && !sequential) {
      auto it = outputs.find(inbound_layer(entry));
      if (it != outputs.end()) input = it->second;
    }
    if (input.empty() && sequential) input = previous;
    if (input.empty()) input = input_layer_shape(entry);  // batch_input_shape on the first layer
    previous = output_shape_of(class_name, entry, input);
    if (!name.empty()) outputs[name] = previous;

    if (sequential && class_name == "InputLayer") continue;  // Sequential.layers hides it: never numbered
    std::string saved = keras_snake_case(is_conv3d_transpose_class(class_name) ? "Conv3DTranspose" : class_name);
    if (used.count(saved)) saved += "_" + std::to_string(++used[saved]);
    else used[saved] = 0;
    std::vector<KerasPathStep> steps = prefix;
    steps.push_back({name, saved});

    if (is_model_entry(entry)) {
      walk(entry, steps, out);
    } else if (is_conv3d_transpose_class(class_name)) {
      KerasLayerSite site;
      site.steps = steps;
      site.entry = entry;
      site.input_shape = input;
      out.push_back(std::move(site));
    }
  }
}

}  // namespace

std::string KerasLayerSite::path() const {
  std::string joined;
  for (const auto& step : steps) joined += (joined.empty() ? "" : "/") + step.name;
  return joined;
}

bool is_conv3d_transpose_class(const std::string& class_name) {
  return class_name == "Conv3DTranspose" || class_name == "Convolution3DTranspose";
}

std::string keras_snake_case(const std::string& class_name) {
  std::string word;
  for (char c : class_name)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') word += c;
  // (.)([A-Z][a-z]+) -> \1_\2
  std::string step1;
  for (size_t i = 0; i < word.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(word[i])) && i + 1 < word.size() &&
        std::islower(static_cast<unsigned char>(word[i + 1]))) {
      step1 += '_';
    }
    step1 += word[i];
  }
  // ([a-z])([A-Z]) -> \1_\2, then lower case.
  std::string out;
  for (size_t i = 0; i < step1.size(); ++i) {
    if (i > 0 && std::isupper(static_cast<unsigned char>(step1[i])) &&
        std::islower(static_cast<unsigned char>(step1[i - 1]))) {
      out += '_';
    }
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(step1[i])));
  }
  return out;
}

std::vector<KerasLayerSite> find_transposed_convolutions(const json& model_config) {
  if (!model_config.is_object()) throw Error("config", "the model config is not a JSON object");
  std::vector<KerasLayerSite> sites;
  if (is_conv3d_transpose_class(string_or(model_config, "class_name", ""))) {
    // A config of the layer alone (weights then sit at the file's root).
    KerasLayerSite site;
    site.steps.push_back({layer_name(model_config), ""});
    site.entry = model_config;
    sites.push_back(site);
    return sites;
  }
  walk(model_config, {}, sites);
  return sites;
}

}  // namespace tconv3d::model
