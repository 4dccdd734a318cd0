#include "core/keras_objects_json.hpp"

#include <cmath>
#include <map>
#include <set>

#include "core/activation.hpp"
#include "core/json_values.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

using nlohmann::json;
using namespace json_values;

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

}  // namespace tconv3d
