#include "runtime/model/keras_weights.hpp"

#include <algorithm>

#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

std::string join(const std::string& group, const std::string& child) {
  return group.empty() ? child : group + "/" + child;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

[[noreturn]] void missing(const Hdf5File& file, const KerasLayerSite& site, const std::string& what) {
  throw Error(file.name(), "layer '" + site.path() + "': " + what);
}

std::shared_ptr<const Float32Dataset> load(const Hdf5File& file, const KerasLayerSite& site, const std::string& path) {
  try {
    return std::make_shared<const Float32Dataset>(file.read_float32(path));
  } catch (const Error& e) {
    // read_float32 names the file; add the layer.
    const std::string message = e.what();
    const std::string prefix = file.name() + ": ";
    missing(file, site, message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message);
  }
}

// Saving-library layout: walk layers/<step>/... choosing, at each level, the
// child whose vars group is named after the layer (Keras 3), else the child
// with the saving library's own name (tf.keras 2.x records no names).
KerasLayerWeights saving_library_weights(const Hdf5File& file, const KerasLayerSite& site, bool use_bias) {
  std::string group;
  for (size_t level = 0; level < site.steps.size(); ++level) {
    const KerasPathStep& step = site.steps[level];
    if (step.saved_name.empty()) break;  // a bare layer config: weights at the root
    const std::string layers = join(group, "layers");
    if (!file.has_group(layers)) missing(file, site, "no weights group '" + layers + "'");
    std::string found;
    for (const std::string& child : file.children(layers)) {
      const auto name = file.string_attribute(join(join(layers, child), "vars"), "name");
      if (name && *name == step.name) {
        found = child;
        break;
      }
    }
    if (found.empty()) {
      if (!file.has_group(join(layers, step.saved_name)))
        missing(file, site, "no weights for '" + step.name + "' (no group named after it in '" + layers +
                                "', and no '" + join(layers, step.saved_name) + "')");
      // Keras 3 names every vars group: one named after another layer is not ours.
      const std::string fallback = join(layers, step.saved_name);
      const auto owner = file.string_attribute(join(fallback, "vars"), "name");
      if (owner && *owner != step.name)
        missing(file, site, "no weights for '" + step.name + "': '" + fallback + "' holds layer '" + *owner +
                                "' (weights file and config are from different models?)");
      found = step.saved_name;
    }
    group = join(layers, found);
  }
  const std::string vars = join(group, "vars");
  const std::string kernel_path = join(vars, "0"), bias_path = join(vars, "1");
  if (!file.has_dataset(kernel_path)) missing(file, site, "missing kernel '" + kernel_path + "'");
  KerasLayerWeights weights;
  weights.kernel = load(file, site, kernel_path);
  if (use_bias) {
    if (!file.has_dataset(bias_path)) missing(file, site, "use_bias is true but the bias '" + bias_path + "' is missing");
    weights.bias = load(file, site, bias_path);
  } else if (file.has_dataset(bias_path)) {
    missing(file, site, "use_bias is false but the file has a bias '" + bias_path + "'");
  }
  if (file.has_dataset(join(vars, "2")))
    missing(file, site, "unexpected extra weight '" + join(vars, "2") + "' (a Conv3DTranspose has a kernel and a bias)");
  return weights;
}

// Legacy layout: the top-level layer's group lists its weights by name.
KerasLayerWeights legacy_weights(const Hdf5File& file, const std::string& root, const KerasLayerSite& site,
                                 bool use_bias) {
  const std::string group = join(root, site.steps.front().name);
  if (!file.has_group(group)) missing(file, site, "no weights group '" + group + "'");
  const auto names = file.string_list_attribute(group, "weight_names");
  if (!names) missing(file, site, "weights group '" + group + "' has no weight_names attribute");
  const std::string leaf = site.steps.back().name;
  std::vector<std::string> enclosing;
  for (const auto& step : site.steps) enclosing.push_back(step.name);

  auto find = [&](const std::string& variable) -> std::string {
    std::vector<std::string> matches;
    for (const std::string& weight : *names) {
      std::vector<std::string> parts = split(weight, '/');
      std::string var = parts.back().substr(0, parts.back().find(':'));
      if (var != variable) continue;
      // A one-layer group may name its weights without the layer ("kernel:0").
      const std::string owner = parts.size() >= 2 ? parts[parts.size() - 2] : site.steps.front().name;
      if (owner != leaf) continue;
      bool inside = true;
      for (size_t i = 0; i + 2 < parts.size(); ++i)
        inside = inside && std::find(enclosing.begin(), enclosing.end(), parts[i]) != enclosing.end();
      if (inside) matches.push_back(weight);
    }
    if (matches.size() > 1)
      missing(file, site, "ambiguous " + variable + ": '" + matches[0] + "' and '" + matches[1] + "' in '" + group + "'");
    return matches.empty() ? "" : join(group, matches[0]);
  };
  const std::string kernel_path = find("kernel");
  if (kernel_path.empty()) missing(file, site, "no kernel for it among the weight_names of '" + group + "'");
  if (!file.has_dataset(kernel_path)) missing(file, site, "weight_names lists '" + kernel_path + "' but it is missing");
  KerasLayerWeights weights;
  weights.kernel = load(file, site, kernel_path);
  const std::string bias_path = find("bias");
  if (use_bias) {
    if (bias_path.empty()) missing(file, site, "use_bias is true but '" + group + "' has no bias for it");
    if (!file.has_dataset(bias_path)) missing(file, site, "weight_names lists '" + bias_path + "' but it is missing");
    weights.bias = load(file, site, bias_path);
  } else if (!bias_path.empty()) {
    missing(file, site, "use_bias is false but the file has a bias '" + bias_path + "'");
  }
  return weights;
}

}  // namespace

KerasLayerWeights find_keras_weights(const Hdf5File& file, const KerasLayerSite& site, bool use_bias) {
  if (file.has_group("layers") || file.has_group("vars")) return saving_library_weights(file, site, use_bias);
  if (file.has_group("model_weights")) return legacy_weights(file, "model_weights", site, use_bias);
  if (file.string_list_attribute("", "layer_names")) return legacy_weights(file, "", site, use_bias);
  throw Error(file.name(), "holds no Keras weights (no 'layers', 'model_weights' or layer_names)");
}

}  // namespace tconv3d::model
