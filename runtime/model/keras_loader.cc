#include "runtime/model/keras_loader.hpp"

#include <sstream>

#include "core/config_json.hpp"
#include "runtime/model/file_bytes.hpp"
#include "runtime/model/hdf5_file.hpp"
#include "runtime/model/keras_config_walk.hpp"
#include "runtime/model/keras_weights.hpp"
#include "runtime/model/zip_archive.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

using nlohmann::json;

json parse_json(const std::string& text, const std::string& where) { return parse_untrusted_json(text, where); }

// "2.15.0" -> tf_keras2, "3.x" -> keras3; anything else: no opinion.
std::optional<Flavor> flavor_of_version(const std::string& version) {
  if (version.rfind("2", 0) == 0) return Flavor::kTfKeras2;
  if (version.rfind("3", 0) == 0) return Flavor::kKeras3;
  return std::nullopt;
}

std::string triple(const Triple& t) {
  return std::to_string(t[0]) + "x" + std::to_string(t[1]) + "x" + std::to_string(t[2]);
}

std::string summary_of(const LayerConfig& c) {
  std::ostringstream out;
  out << "f=" << c.filters << " k=" << triple(c.kernel_size) << " s=" << triple(c.strides) << " "
      << to_string(c.padding);
  if (c.output_padding) out << " op=" << triple(*c.output_padding);
  if (c.dilation_rate != Triple{1, 1, 1}) out << " d=" << triple(c.dilation_rate);
  out << " " << c.activation.name;
  if (!c.use_bias) out << " no-bias";
  if (c.data_format == DataFormat::kChannelsFirst) out << " NCDHW";
  return out.str();
}

std::optional<Flavor> flavor_for(const ModelOptions& options, const std::optional<std::string>& version,
                                 std::vector<std::string>& warnings, const std::string& path) {
  if (options.flavor) return options.flavor;
  if (!version) {
    warnings.push_back(path + ": no keras_version recorded; each layer's flavor follows its config's dialect");
    return std::nullopt;
  }
  auto flavor = flavor_of_version(*version);
  if (!flavor) warnings.push_back(path + ": unknown keras_version '" + *version + "'; flavor follows each config");
  return flavor;
}

// Turns every Conv3DTranspose of `model_config` into a recipe with its weights.
LoadedModel recipes_from(const std::string& path, const json& model_config, const Hdf5File& weights,
                         std::optional<Flavor> flavor, LoadedModel loaded) {
  std::vector<KerasLayerSite> sites;
  try {
    sites = find_transposed_convolutions(model_config);
  } catch (const Error& e) {
    throw Error(path, std::string("model config: ") + e.what());
  }
  if (sites.empty()) throw Error(path, "the model has no 3D transposed convolution (Conv3DTranspose)");
  for (const KerasLayerSite& site : sites) {
    const std::string name = site.path();
    std::vector<std::string> warnings;
    LayerConfig config;
    try {
      config = config_from_json(site.entry, flavor, &warnings);
    } catch (const Error& e) {
      fail(path, name, e.what());
    } catch (const json::exception& e) {
      fail(path, name, std::string("malformed config: ") + e.what());
    }
    config.name = name;
    const KerasLayerWeights w = find_keras_weights(weights, site, config.use_bias);
    LayerRecipe recipe;
    recipe.info.name = name;
    recipe.info.op = "Conv3DTranspose";
    recipe.info.summary = summary_of(config);
    recipe.info.input_shape = site.input_shape;
    recipe.info.data_format = config.data_format;
    recipe.info.weight_bytes = 4 * int64_t(w.kernel->data.size() + (w.bias ? w.bias->data.size() : 0));
    recipe.info.warnings = warnings;
    recipe.build = [config, w](const std::vector<int64_t>& shape, const LayerOptions& options) {
      return Layer::create(config, shape, ConstTensor{w.kernel->data.data(), w.kernel->shape},
                           w.bias ? ConstTensor{w.bias->data.data(), w.bias->shape} : ConstTensor{}, options);
    };
    loaded.layers.push_back(std::move(recipe));
  }
  return loaded;
}

std::optional<std::string> json_string(const json& object, const char* key) {
  if (object.is_object() && object.contains(key) && object[key].is_string()) return object[key].get<std::string>();
  return std::nullopt;
}

}  // namespace

LoadedModel load_keras_zip(const std::string& path, const std::string& bytes, const ModelOptions& options) {
  const auto members = read_zip_members(bytes, path);
  auto member = [&](const std::string& name) -> const std::string* {
    auto it = members.find(name);
    return it == members.end() ? nullptr : &it->second;
  };
  const std::string* config_text = member("config.json");
  const std::string* weights_image = member("model.weights.h5");
  if (!config_text) throw Error(path, "not a Keras .keras file: the zip has no config.json");
  if (!weights_image) throw Error(path, "the .keras zip has no model.weights.h5 (weights missing)");
  const json config = parse_json(*config_text, path + ":config.json");
  std::optional<std::string> version;
  if (const std::string* metadata = member("metadata.json"))
    version = json_string(parse_json(*metadata, path + ":metadata.json"), "keras_version");
  LoadedModel loaded;
  const auto flavor = flavor_for(options, version, loaded.warnings, path);
  loaded.format = (flavor == Flavor::kTfKeras2 ? "tf_keras2" : "keras3") + std::string(" .keras");
  const Hdf5File weights = Hdf5File::open(*weights_image, path + ":model.weights.h5");
  return recipes_from(path, config, weights, flavor, std::move(loaded));
}

LoadedModel load_keras_hdf5(const std::string& path, std::string bytes, const ModelOptions& options) {
  const Hdf5File file = Hdf5File::open(std::move(bytes), path);
  const auto model_config = file.string_attribute("", "model_config");
  LoadedModel loaded;
  json config;
  std::optional<std::string> version = file.string_attribute("", "keras_version");
  if (model_config && options.config_path.empty()) {
    config = parse_json(*model_config, path + ": model_config attribute");
    loaded.format = " .h5";
  } else {
    if (options.config_path.empty())
      throw Error(path, "holds weights only (no model_config attribute): give the model config too (--config FILE)");
    config = parse_json(read_file_bytes(options.config_path), options.config_path);
    // model.to_json() records the version; a .keras file's config.json does not.
    if (auto v = json_string(config, "keras_version")) version = v;
    // Otherwise the module of the model class tells the generation.
    if (!version) {
      const std::string module = json_string(config, "module").value_or("");
      if (module.rfind("tf_keras", 0) == 0) version = "2 (from module " + module + ")";
      else if (module.rfind("keras.src", 0) == 0) version = "3 (from module " + module + ")";
    }
    loaded.format = " weights + config";
  }
  if (!version && file.has_group("model_weights"))
    version = file.string_attribute("model_weights", "keras_version");
  const auto flavor = flavor_for(options, version, loaded.warnings, path);
  loaded.format = (flavor == Flavor::kTfKeras2 ? "tf_keras2" : "keras3") + loaded.format;
  return recipes_from(path, config, file, flavor, std::move(loaded));
}

}  // namespace tconv3d::model
