#include "core/config_json.hpp"

#include <set>

#include "core/activation.hpp"
#include "core/json_values.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

using nlohmann::json;
using namespace json_values;

LayerConfig config_from_json(const json& input, std::optional<Flavor> forced_flavor,
                             std::vector<std::string>* warnings) {
  const json* body = &input;
  if (!input.is_object()) throw Error("config", "expected a JSON object, got " + input.dump());
  if (input.contains("class_name")) {
    const std::string class_name = input["class_name"].is_string() ? input["class_name"].get<std::string>() : "";
    if (class_name != "Conv3DTranspose" && class_name != "Convolution3DTranspose") {
      throw Error("class_name", "expected Conv3DTranspose, got '" + class_name + "'");
    }
    if (!input.contains("config") || !input["config"].is_object())
      throw Error("config", "a {\"class_name\": \"Conv3DTranspose\"} entry needs a \"config\" object");
    body = &input["config"];
  }
  const json& c = *body;
  const bool tf_keras2_dialect = c.contains("groups") && !c.contains("dilation_rate");
  LayerConfig config;
  config.flavor = forced_flavor ? *forced_flavor : (tf_keras2_dialect ? Flavor::kTfKeras2 : Flavor::kKeras3);
  if (!forced_flavor && tf_keras2_dialect && warnings) {
    warnings->push_back("config is in the tf.keras 2.x dialect (has `groups`, no `dilation_rate`): using flavor tf_keras2");
  }

  static const std::set<std::string> kUsed = {
      "filters", "kernel_size", "strides", "padding", "output_padding", "data_format",
      "dilation_rate", "activation", "use_bias", "kernel_initializer", "bias_initializer",
      "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
      "bias_constraint"};
  // Keys Keras accepts on a layer but that do not change this computation.
  static const std::set<std::string> kIgnored = {
      "name", "trainable", "dtype", "groups", "batch_input_shape", "batch_shape", "input_shape",
      "batch_size", "input_dim", "autocast", "dynamic", "build_config", "registered_name", "module"};
  for (const auto& [key, value] : c.items()) {
    if (!kUsed.count(key) && !kIgnored.count(key)) {
      throw Error(key, "unknown Conv3DTranspose argument '" + key + "' = " + value.dump());
    }
  }
  if (c.contains("groups") && !c["groups"].is_null() && integer_value(c["groups"], "groups") != 1) {
    throw Error("groups", "Conv3DTranspose has no groups; tf.keras 2.x writes groups=1, got " + c["groups"].dump());
  }
  if (c.contains("name") && c["name"].is_string()) config.name = c["name"].get<std::string>();

  if (!c.contains("filters") || c["filters"].is_null()) throw Error("filters", "missing: Conv3DTranspose needs `filters`");
  if (config.flavor == Flavor::kTfKeras2 && c["filters"].is_number_float()) {
    config.filters = static_cast<int64_t>(c["filters"].get<double>());  // tf.keras 2.x casts with int()
  } else {
    config.filters = integer_value(c["filters"], "filters");
  }
  if (!c.contains("kernel_size") || c["kernel_size"].is_null())
    throw Error("kernel_size", "missing: Conv3DTranspose needs `kernel_size`");
  config.kernel_size = triple_value(c["kernel_size"], "kernel_size");
  if (c.contains("strides") && !c["strides"].is_null()) config.strides = triple_value(c["strides"], "strides");
  if (c.contains("padding") && !c["padding"].is_null()) {
    const std::string text = c["padding"].is_string() ? c["padding"].get<std::string>() : c["padding"].dump();
    const std::string p = c["padding"].is_string() ? lower(text) : "";
    const bool tf_keras2 = config.flavor == Flavor::kTfKeras2;
    if (p == "valid") config.padding = Padding::kValid;
    else if (p == "same") config.padding = Padding::kSame;
    else if (p == "causal" && tf_keras2)
      throw Error("padding", "Causal padding is only supported for `Conv1D` and `SeparableConv1D`. Received: causal");
    else if (tf_keras2)
      throw Error("padding", "The `padding` argument must be a list/tuple or one of \"valid\", \"same\" (or "
                             "\"causal\", only for `Conv1D). Received: " + text);
    else
      throw Error("padding", "The `padding` argument must be a list/tuple or one of {'valid', 'same'}. Received: " + text);
  }
  if (c.contains("output_padding") && !c["output_padding"].is_null())
    config.output_padding = triple_value(c["output_padding"], "output_padding");
  if (c.contains("data_format") && !c["data_format"].is_null()) {
    const std::string text =
        c["data_format"].is_string() ? c["data_format"].get<std::string>() : c["data_format"].dump();
    const std::string f = c["data_format"].is_string() ? lower(text) : "";
    if (f == "channels_last") config.data_format = DataFormat::kChannelsLast;
    else if (f == "channels_first") config.data_format = DataFormat::kChannelsFirst;
    else if (config.flavor == Flavor::kTfKeras2)
      throw Error("data_format", "The `data_format` argument must be one of \"channels_first\", "
                                 "\"channels_last\". Received: " + text);
    else
      throw Error("data_format", "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                                 "Received: data_format=" + text);
  }
  if (c.contains("dilation_rate") && !c["dilation_rate"].is_null())
    config.dilation_rate = triple_value(c["dilation_rate"], "dilation_rate");
  if (c.contains("activation")) config.activation = activation_from_json(c["activation"], config.flavor);
  if (c.contains("use_bias") && !c["use_bias"].is_null()) {
    if (!c["use_bias"].is_boolean()) throw Error("use_bias", "expected true or false, got " + c["use_bias"].dump());
    config.use_bias = c["use_bias"].get<bool>();
  }
  if (c.contains("kernel_initializer") && !c["kernel_initializer"].is_null())
    config.kernel_initializer = initializer_from_json(c["kernel_initializer"], "kernel_initializer", config.flavor);
  if (c.contains("bias_initializer") && !c["bias_initializer"].is_null())
    config.bias_initializer = initializer_from_json(c["bias_initializer"], "bias_initializer", config.flavor);
  if (c.contains("kernel_regularizer"))
    config.kernel_regularizer = regularizer_from_json(c["kernel_regularizer"], "kernel_regularizer", config.flavor);
  if (c.contains("bias_regularizer"))
    config.bias_regularizer = regularizer_from_json(c["bias_regularizer"], "bias_regularizer", config.flavor);
  if (c.contains("activity_regularizer"))
    config.activity_regularizer = regularizer_from_json(c["activity_regularizer"], "activity_regularizer", config.flavor);
  if (c.contains("kernel_constraint"))
    config.kernel_constraint = constraint_from_json(c["kernel_constraint"], "kernel_constraint", config.flavor);
  if (c.contains("bias_constraint"))
    config.bias_constraint = constraint_from_json(c["bias_constraint"], "bias_constraint", config.flavor);
  validate(config);
  return config;
}

json parse_untrusted_json(const std::string& text, const std::string& where) {
  // The parser keeps its own stack; the callback stops it before the value
  // becomes deep enough to hurt the recursive code that uses it.
  const json::parser_callback_t limit_depth = [&](int depth, json::parse_event_t, json&) {
    if (depth > kMaxJsonDepth)
      throw Error(where, "invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  try {
    return json::parse(text, limit_depth);
  } catch (const json::exception& e) {
    throw Error(where, std::string("invalid JSON: ") + e.what());
  }
}

LayerConfig parse_layer_config(const std::string& json_text, std::optional<Flavor> flavor,
                               std::vector<std::string>* warnings) {
  const json parsed = parse_untrusted_json(json_text, "layer");
  try {
    return config_from_json(parsed, flavor, warnings);
  } catch (const json::exception& e) {
    // A value of the wrong JSON type deep inside a serialized object.
    throw Error("layer", std::string("malformed config: ") + e.what());
  }
}

}  // namespace tconv3d
