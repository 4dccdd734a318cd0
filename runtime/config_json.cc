#include "runtime/config_json.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "runtime/activation.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

using nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

int64_t integer_value(const json& v, const std::string& argument) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  throw Error(argument, "expected an integer, got " + v.dump());
}

double number_value(const json& v, const std::string& argument) {
  if (v.is_number()) return v.get<double>();
  throw Error(argument, "expected a number, got " + v.dump());
}

// An int or an iterable of exactly 3 integers, as Keras's standardize_tuple.
Triple triple_value(const json& v, const std::string& argument) {
  if (v.is_number()) {
    const int64_t x = integer_value(v, argument);
    return {x, x, x};
  }
  if (v.is_array() && v.size() == 3) {
    return {integer_value(v[0], argument), integer_value(v[1], argument), integer_value(v[2], argument)};
  }
  throw Error(argument, "The `" + argument + "` argument must be a tuple of 3 integers. Received " +
                            argument + "=" + v.dump());
}

// Keras serializes objects as {"class_name": ..., "config": {...}} (plus
// "module"/"registered_name" in Keras 3) or as a bare name string.
struct Serialized {
  std::string class_name;
  json config = json::object();
};

Serialized serialized_object(const json& v, const std::string& argument) {
  if (v.is_string()) return {v.get<std::string>(), json::object()};
  if (v.is_object() && v.contains("class_name") && v["class_name"].is_string()) {
    Serialized s{v["class_name"].get<std::string>(), json::object()};
    if (v.contains("config") && !v["config"].is_null()) s.config = v["config"];
    return s;
  }
  throw Error(argument, "expected a name or a {\"class_name\", \"config\"} object, got " + v.dump());
}

void check_known_keys(const json& config, const std::set<std::string>& known, const std::string& argument) {
  for (const auto& [key, value] : config.items()) {
    if (!known.count(key)) throw Error(argument, "unknown argument '" + key + "' = " + value.dump());
  }
}

std::optional<int64_t> optional_seed(const json& config, const std::string& argument) {
  if (!config.contains("seed") || config["seed"].is_null()) return std::nullopt;
  return integer_value(config["seed"], argument + ".seed");
}

std::string string_value(const json& v, const std::string& argument) {
  if (v.is_string()) return v.get<std::string>();
  throw Error(argument, "expected a string, got " + v.dump());
}

// Keras 3.15 initializers may name the fan axes explicitly (input_axes /
// output_axes, for einsum kernels); null means the convolution rule we use.
void require_default_axes(const json& config, const std::string& argument) {
  for (const char* key : {"input_axes", "output_axes"}) {
    if (config.contains(key) && !config[key].is_null()) {
      throw Error(argument + "." + key, std::string("explicit fan axes are not supported for the Conv3DTranspose "
                                                    "kernel (Keras's default rule applies when null), got ") +
                                            config[key].dump());
    }
  }
}

// Keras looks names up exactly (case-sensitive) in a table of class names,
// their snake_case forms and a few aliases; the tables differ between
// versions (scripts/make_keras_fixtures.py records both in objects.json).
const std::string* lookup_name(const std::map<std::string, std::string>& table, const std::string& name) {
  auto it = table.find(name);
  return it == table.end() ? nullptr : &it->second;
}

}  // namespace

Initializer initializer_from_json(const json& v, const std::string& argument, Flavor flavor) {
  const Serialized s = serialized_object(v, argument);
  static const std::map<std::string, std::string> kCommon = {
      {"Zeros", "Zeros"}, {"zeros", "Zeros"}, {"zero", "Zeros"}, {"Ones", "Ones"}, {"ones", "Ones"},
      {"one", "Ones"}, {"Constant", "Constant"}, {"constant", "Constant"},
      {"RandomNormal", "RandomNormal"}, {"random_normal", "RandomNormal"}, {"normal", "RandomNormal"},
      {"RandomUniform", "RandomUniform"}, {"random_uniform", "RandomUniform"}, {"uniform", "RandomUniform"},
      {"TruncatedNormal", "TruncatedNormal"}, {"truncated_normal", "TruncatedNormal"},
      {"VarianceScaling", "VarianceScaling"}, {"variance_scaling", "VarianceScaling"},
      {"GlorotUniform", "GlorotUniform"}, {"glorot_uniform", "GlorotUniform"},
      {"GlorotNormal", "GlorotNormal"}, {"glorot_normal", "GlorotNormal"},
      {"HeUniform", "HeUniform"}, {"he_uniform", "HeUniform"}, {"HeNormal", "HeNormal"},
      {"he_normal", "HeNormal"}, {"LecunUniform", "LecunUniform"}, {"lecun_uniform", "LecunUniform"},
      {"LecunNormal", "LecunNormal"}, {"lecun_normal", "LecunNormal"}, {"Orthogonal", "Orthogonal"},
      {"orthogonal", "Orthogonal"}, {"Identity", "Identity"}, {"identity", "Identity"},
  };
  // Keras 3 names its classes OrthogonalInitializer and IdentityInitializer.
  static const std::map<std::string, std::string> kKeras3Only = {
      {"OrthogonalInitializer", "Orthogonal"}, {"IdentityInitializer", "Identity"}};
  const std::string* found = lookup_name(kCommon, s.class_name);
  if (!found && flavor == Flavor::kKeras3) found = lookup_name(kKeras3Only, s.class_name);
  if (!found) {
    throw Error(argument, "Could not interpret initializer identifier: '" + s.class_name + "' (flavor " +
                              to_string(flavor) + ")");
  }
  if (*found == "Constant" && v.is_string() && flavor == Flavor::kKeras3) {
    // Keras 3's Constant has no default value: get("constant") fails there.
    throw Error(argument, "'" + s.class_name + "' needs a value in Keras 3: write "
                          "{\"class_name\": \"Constant\", \"config\": {\"value\": ...}}");
  }
  Initializer init;
  init.class_name = *found;
  const json& c = s.config;
  if (!c.is_object()) throw Error(argument, "initializer config must be an object, got " + c.dump());
  if (init.class_name == "Identity") {
    throw Error(argument, "Identity initializer can only be used for 2D matrices; the "
                          "Conv3DTranspose kernel is 5-D (as Keras reports)");
  }
  init.seed = optional_seed(c, argument);
  auto num = [&](const char* key, double& field) {
    if (c.contains(key) && !c[key].is_null()) field = number_value(c[key], argument + "." + key);
  };
  if (init.class_name == "Constant") {
    num("value", init.value);
    check_known_keys(c, {"value"}, argument);
  } else if (init.class_name == "RandomNormal" || init.class_name == "TruncatedNormal") {
    num("mean", init.mean);
    num("stddev", init.stddev);
    check_known_keys(c, {"mean", "stddev", "seed"}, argument);
  } else if (init.class_name == "RandomUniform") {
    num("minval", init.minval);
    num("maxval", init.maxval);
    check_known_keys(c, {"minval", "maxval", "seed"}, argument);
  } else if (init.class_name == "VarianceScaling") {
    num("scale", init.scale);
    if (c.contains("mode")) init.mode = lower(string_value(c["mode"], argument + ".mode"));
    if (c.contains("distribution"))
      init.distribution = lower(string_value(c["distribution"], argument + ".distribution"));
    if (init.distribution == "normal") init.distribution = "truncated_normal";
    if (init.scale <= 0) throw Error(argument, "VarianceScaling scale must be positive, got " + std::to_string(init.scale));
    if (init.mode != "fan_in" && init.mode != "fan_out" && init.mode != "fan_avg")
      throw Error(argument, "VarianceScaling mode must be fan_in, fan_out or fan_avg, got '" + init.mode + "'");
    if (init.distribution != "truncated_normal" && init.distribution != "untruncated_normal" &&
        init.distribution != "uniform")
      throw Error(argument, "VarianceScaling distribution must be truncated_normal, untruncated_normal or uniform, got '" +
                                init.distribution + "'");
    require_default_axes(c, argument);
    check_known_keys(c, {"scale", "mode", "distribution", "seed", "input_axes", "output_axes"}, argument);
  } else if (init.class_name == "Orthogonal") {
    num("gain", init.gain);
    check_known_keys(c, {"gain", "seed"}, argument);
  } else if (init.class_name == "Zeros" || init.class_name == "Ones") {
    check_known_keys(c, {}, argument);
  } else {
    // Glorot/He/Lecun: newer Keras adds input_axes/output_axes (null unless set by hand).
    require_default_axes(c, argument);
    check_known_keys(c, {"seed", "input_axes", "output_axes"}, argument);
  }
  return init;
}

std::optional<Regularizer> regularizer_from_json(const json& v, const std::string& argument, Flavor flavor) {
  if (v.is_null()) return std::nullopt;
  const Serialized s = serialized_object(v, argument);
  // Keras 3: L1/l1, L2/l2, L1L2/l1l2 (l1=l2=0). tf.keras 2.x: L1/l1, L2/l2, L1L2 (0, 0) and the
  // function name l1_l2, which means l1=l2=0.01 there; Keras 3 does not know "l1_l2".
  static const std::map<std::string, std::string> kKeras3 = {
      {"L1", "L1"}, {"l1", "L1"}, {"L2", "L2"}, {"l2", "L2"}, {"L1L2", "L1L2"}, {"l1l2", "L1L2"}};
  static const std::map<std::string, std::string> kTfKeras2 = {
      {"L1", "L1"}, {"l1", "L1"}, {"L2", "L2"}, {"l2", "L2"}, {"L1L2", "L1L2"}, {"l1_l2", "l1_l2"}};
  const std::string* found = lookup_name(flavor == Flavor::kKeras3 ? kKeras3 : kTfKeras2, s.class_name);
  if (!found) {
    throw Error(argument, "Could not interpret regularizer identifier: '" + s.class_name + "' (flavor " +
                              to_string(flavor) + "; supported: " +
                              (flavor == Flavor::kKeras3 ? "l1, l2, l1l2 / L1, L2, L1L2" : "l1, l2, l1_l2 / L1, L2, L1L2") +
                              ")");
  }
  Regularizer r;
  const json& c = s.config;
  if (!c.is_object()) throw Error(argument, "regularizer config must be an object, got " + c.dump());
  auto num = [&](const char* name, double& field) {
    if (c.contains(name) && !c[name].is_null()) field = number_value(c[name], argument + "." + name);
  };
  if (*found == "L1") {
    r.class_name = "L1";
    r.l1 = 0.01;
    num("l1", r.l1);
    check_known_keys(c, {"l1"}, argument);
  } else if (*found == "L2") {
    r.class_name = "L2";
    r.l2 = 0.01;
    num("l2", r.l2);
    check_known_keys(c, {"l2"}, argument);
  } else {
    r.class_name = "L1L2";
    if (*found == "l1_l2") r.l1 = r.l2 = 0.01;  // tf.keras 2.x regularizers.l1_l2(l1=0.01, l2=0.01)
    num("l1", r.l1);
    num("l2", r.l2);
    check_known_keys(c, {"l1", "l2"}, argument);
  }
  if (r.l1 < 0 || r.l2 < 0 || !std::isfinite(r.l1) || !std::isfinite(r.l2)) {
    throw Error(argument, "regularization factors must be finite and non-negative, got l1=" +
                              std::to_string(r.l1) + ", l2=" + std::to_string(r.l2));
  }
  return r;
}

std::optional<Constraint> constraint_from_json(const json& v, const std::string& argument, Flavor flavor) {
  if (v.is_null()) return std::nullopt;
  const Serialized s = serialized_object(v, argument);
  static const std::map<std::string, std::string> kKeras3 = {
      {"MaxNorm", "maxnorm"}, {"max_norm", "maxnorm"}, {"MinMaxNorm", "minmaxnorm"},
      {"min_max_norm", "minmaxnorm"}, {"NonNeg", "nonneg"}, {"non_neg", "nonneg"},
      {"UnitNorm", "unitnorm"}, {"unit_norm", "unitnorm"}};
  // tf.keras 2.x also keeps the Keras 1 lowercase aliases.
  static const std::map<std::string, std::string> kTfKeras2Extra = {
      {"maxnorm", "maxnorm"}, {"nonneg", "nonneg"}, {"unitnorm", "unitnorm"}};
  const std::string* found = lookup_name(kKeras3, s.class_name);
  if (!found && flavor == Flavor::kTfKeras2) found = lookup_name(kTfKeras2Extra, s.class_name);
  const std::string key = found ? *found : std::string();
  Constraint k;
  const json& c = s.config;
  auto num = [&](const char* name, double& field) {
    if (c.contains(name) && !c[name].is_null()) field = number_value(c[name], argument + "." + name);
  };
  auto axis = [&]() {
    if (!c.contains("axis")) return;
    k.axis.clear();
    if (c["axis"].is_array()) {
      for (const auto& a : c["axis"]) k.axis.push_back(integer_value(a, argument + ".axis"));
    } else {
      k.axis.push_back(integer_value(c["axis"], argument + ".axis"));
    }
  };
  if (key == "maxnorm") {
    k.class_name = "MaxNorm";
    num("max_value", k.max_value);
    axis();
    check_known_keys(c, {"max_value", "axis"}, argument);
  } else if (key == "minmaxnorm") {
    k.class_name = "MinMaxNorm";
    k.max_value = 1.0;
    num("min_value", k.min_value);
    num("max_value", k.max_value);
    num("rate", k.rate);
    axis();
    check_known_keys(c, {"min_value", "max_value", "rate", "axis"}, argument);
  } else if (key == "nonneg") {
    k.class_name = "NonNeg";
    check_known_keys(c, {}, argument);
  } else if (key == "unitnorm") {
    k.class_name = "UnitNorm";
    axis();
    check_known_keys(c, {"axis"}, argument);
  } else {
    throw Error(argument, "unsupported constraint '" + s.class_name +
                              "' (supported: max_norm, min_max_norm, non_neg, unit_norm)");
  }
  return k;
}

Activation activation_from_json(const json& v, Flavor flavor) {
  if (v.is_null()) return parse_activation_name("linear", flavor);
  if (v.is_string()) return parse_activation_name(v.get<std::string>(), flavor);
  if (v.is_object() && v.contains("class_name")) {
    const std::string class_name = v["class_name"].is_string() ? v["class_name"].get<std::string>() : "";
    const json config = v.value("config", json::object());
    // Keras 3 may serialize a built-in function as {"class_name": "function", "config": "relu"}.
    if (class_name == "function" && config.is_string()) return parse_activation_name(config.get<std::string>(), flavor);
    // tf.keras 2.x activation layers used as activations.
    if (class_name == "ReLU" || class_name == "LeakyReLU" || class_name == "ELU") {
      Activation act = parse_activation_name(class_name == "ReLU" ? "relu" : class_name == "ELU" ? "elu" : "leaky_relu",
                                             Flavor::kKeras3);
      if (class_name == "ReLU") {
        if (config.contains("max_value") && !config["max_value"].is_null())
          act.max_value = number_value(config["max_value"], "activation.max_value");
        if (config.contains("negative_slope")) act.alpha = number_value(config["negative_slope"], "activation.negative_slope");
        if (config.contains("threshold")) act.threshold = number_value(config["threshold"], "activation.threshold");
      } else if (class_name == "LeakyReLU") {
        act.alpha = 0.3;
        if (config.contains("alpha")) act.alpha = number_value(config["alpha"], "activation.alpha");
        if (config.contains("negative_slope")) act.alpha = number_value(config["negative_slope"], "activation.negative_slope");
      } else {
        if (config.contains("alpha")) act.alpha = number_value(config["alpha"], "activation.alpha");
      }
      return act;
    }
    return parse_activation_name(class_name, flavor);
  }
  throw Error("activation", "Could not interpret activation function identifier: " + v.dump());
}

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
