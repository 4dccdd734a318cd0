#include "runtime/model/onnx_loader.hpp"

#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "runtime/memory_guard.hpp"
#include "runtime/model/file_bytes.hpp"
#include "runtime/model/onnx_conv_transpose.hpp"
#include "runtime/model/onnx_proto.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model {
namespace {

constexpr int kFloat = 1;

std::string dtype_name(int type) {
  static const char* names[] = {"undefined", "float32", "uint8", "int8", "uint16", "int16", "int32", "int64",
                                "string", "bool", "float16", "float64", "uint32", "uint64", "complex64",
                                "complex128", "bfloat16"};
  return type >= 0 && type < 17 ? names[type] : "type " + std::to_string(type);
}

int64_t element_count(const std::vector<int64_t>& dims, const std::string& what) {
  int64_t count = 1;
  for (int64_t d : dims) {
    if (d < 0) throw Error(what, "negative dimension in " + shape_to_string(dims));
    if (d > 0 && count > (int64_t(1) << 40) / d) throw Error(what, "too many elements: " + shape_to_string(dims));
    count *= d;
  }
  return count;
}

// External data must sit next to the model: no absolute paths, no "..".
std::string external_bytes(const OnnxTensor& t, const std::string& model_path, size_t bytes_needed) {
  const auto it = t.external_data.find("location");
  if (it == t.external_data.end() || it->second.empty()) throw Error(t.name, "external data without a location");
  const std::filesystem::path location(it->second);
  if (location.is_absolute()) throw Error(t.name, "external data location '" + it->second + "' must be relative");
  for (const auto& part : location)
    if (part == "..") throw Error(t.name, "external data location '" + it->second + "' leaves the model's folder");
  const std::filesystem::path file = std::filesystem::path(model_path).parent_path() / location;
  auto number = [&](const char* key, uint64_t fallback) -> uint64_t {
    auto e = t.external_data.find(key);
    if (e == t.external_data.end()) return fallback;
    try {
      size_t used = 0;
      const unsigned long long v = std::stoull(e->second, &used);
      if (used != e->second.size()) throw std::invalid_argument(key);
      return v;
    } catch (const std::exception&) {
      throw Error(t.name, std::string("external data ") + key + " '" + e->second + "' is not a number");
    }
  };
  const std::string content = read_file_bytes(file.string());
  const uint64_t offset = number("offset", 0);
  const uint64_t length = number("length", content.size() > offset ? content.size() - offset : 0);
  if (offset > content.size() || length > content.size() - offset)
    throw Error(t.name, "external data " + file.string() + " is too short for offset " + std::to_string(offset) +
                            " + length " + std::to_string(length));
  if (length != bytes_needed)
    throw Error(t.name, "external data length " + std::to_string(length) + " does not match its shape (" +
                            std::to_string(bytes_needed) + " bytes)");
  return content.substr(offset, length);
}

std::vector<float> tensor_values(const OnnxTensor& t, const std::string& model_path) {
  if (t.data_type != kFloat)
    throw Error(t.name, "holds " + dtype_name(t.data_type) + "; tconv3d needs float32 weights");
  const int64_t count = element_count(t.dims, t.name);
  check_allocatable(4.0 * double(count), t.name);
  std::vector<float> values(static_cast<size_t>(count));
  const size_t bytes = 4 * values.size();
  if (t.external || t.external_data.count("location")) {
    const std::string raw = external_bytes(t, model_path, bytes);
    std::memcpy(values.data(), raw.data(), bytes);  // little-endian, as is x86
  } else if (!t.raw_data.empty() || !t.has_float_data) {
    if (t.raw_data.size() != bytes)
      throw Error(t.name, "raw_data has " + std::to_string(t.raw_data.size()) + " bytes but its shape " +
                              shape_to_string(t.dims) + " needs " + std::to_string(bytes));
    if (bytes) std::memcpy(values.data(), t.raw_data.data(), bytes);
  } else {
    if (t.float_data.size() != values.size())
      throw Error(t.name, "float_data has " + std::to_string(t.float_data.size()) + " values but its shape " +
                              shape_to_string(t.dims) + " needs " + std::to_string(values.size()));
    values = t.float_data;
  }
  return values;
}

// The TensorProto holding `name`: an initializer or a Constant node's value.
std::string_view find_constant(const OnnxGraph& graph, const std::string& name) {
  if (auto it = graph.initializers.find(name); it != graph.initializers.end()) return it->second;
  for (const auto& node : graph.nodes) {
    if (node.op_type != "Constant" || node.outputs.empty() || node.outputs[0] != name) continue;
    if (const OnnxAttribute* value = node.attribute("value"); value && !value->tensor.empty()) return value->tensor;
  }
  return {};
}

std::string node_name(const OnnxNode& node, size_t index, std::set<std::string>& used) {
  std::string name = node.name.empty() ? node.op_type + "_" + std::to_string(index) : node.name;
  const std::string base = name;
  for (int k = 1; used.count(name); ++k) name = base + "_" + std::to_string(k);
  used.insert(name);
  return name;
}

// (Cin, Cout, kd, kh, kw) -> Keras's (kd, kh, kw, Cout, Cin).
std::vector<float> to_keras_layout(const std::vector<float>& w, const std::vector<int64_t>& dims) {
  const int64_t cin = dims[0], cout = dims[1], spatial = dims[2] * dims[3] * dims[4];
  std::vector<float> k(w.size());
  for (int64_t c = 0; c < cin; ++c)
    for (int64_t f = 0; f < cout; ++f)
      for (int64_t s = 0; s < spatial; ++s) k[(s * cout + f) * cin + c] = w[(c * cout + f) * spatial + s];
  return k;
}

}  // namespace

LoadedModel load_onnx(const std::string& path, const std::string& bytes, const ModelOptions&) {
  const OnnxGraph graph = parse_onnx_model(bytes, path);
  LoadedModel loaded;
  loaded.format = "onnx";
  std::set<std::string> used;
  for (const auto& node : graph.nodes)
    if (!node.name.empty()) used.insert(node.name);
  size_t other_rank = 0;
  for (size_t index = 0; index < graph.nodes.size(); ++index) {
    const OnnxNode& node = graph.nodes[index];
    if (node.op_type != "ConvTranspose" || !(node.domain.empty() || node.domain == "ai.onnx")) continue;
    const std::string name = node.name.empty() ? node_name(node, index, used) : node.name;
    try {
      if (node.inputs.size() < 2) throw Error("inputs", "ConvTranspose needs X and W");
      const std::string_view w_bytes = find_constant(graph, node.inputs[1]);
      if (w_bytes.empty())
        throw Error("W", "weight '" + node.inputs[1] + "' is not an initializer or Constant (computed at run time)");
      const OnnxTensor w = parse_onnx_tensor(w_bytes, path);
      if (w.dims.size() != 5) {
        ++other_rank;  // a 1D or 2D ConvTranspose: not ours
        continue;
      }
      const OnnxConvTranspose op = read_conv_transpose(node, w.dims);
      const auto kernel = std::make_shared<const std::vector<float>>(to_keras_layout(tensor_values(w, path), w.dims));
      std::shared_ptr<const std::vector<float>> bias;
      if (node.inputs.size() >= 3 && !node.inputs[2].empty()) {
        const std::string_view b_bytes = find_constant(graph, node.inputs[2]);
        if (b_bytes.empty())
          throw Error("B", "bias '" + node.inputs[2] + "' is not an initializer or Constant (computed at run time)");
        const OnnxTensor b = parse_onnx_tensor(b_bytes, path);
        if (b.dims != std::vector<int64_t>{op.out_channels})
          throw Error("B", "shape " + shape_to_string(b.dims) + " does not match the weight's " +
                               std::to_string(op.out_channels) + " output channels");
        bias = std::make_shared<const std::vector<float>>(tensor_values(b, path));
      }
      LayerRecipe recipe;
      recipe.info.name = name;
      recipe.info.op = "ConvTranspose";
      recipe.info.summary = op.summary();
      recipe.info.data_format = DataFormat::kChannelsFirst;
      recipe.info.weight_bytes = 4 * int64_t(kernel->size() + (bias ? bias->size() : 0));
      if (auto it = graph.shapes.find(node.inputs[0]); it != graph.shapes.end() && it->second.size() == 5)
        recipe.info.input_shape = it->second;
      const std::vector<int64_t> kernel_shape = {op.kernel[0], op.kernel[1], op.kernel[2], op.out_channels,
                                                 op.in_channels};
      recipe.build = [op, kernel, bias, kernel_shape](const std::vector<int64_t>& shape, const LayerOptions& options) {
        return Layer::create_from_geometry(onnx_geometry(op, shape), Activation{}, ConstTensor{kernel->data(), kernel_shape},
                                           bias ? ConstTensor{bias->data(), {op.out_channels}} : ConstTensor{},
                                           options);
      };
      loaded.layers.push_back(std::move(recipe));
    } catch (const Error& e) {
      fail(path, name, e.what());
    }
  }
  if (loaded.layers.empty()) {
    throw Error(path, "the model has no 3D transposed convolution (ConvTranspose with a 5-D weight)" +
                          (other_rank ? std::string(": only ") + std::to_string(other_rank) + " of other ranks"
                                      : std::string()));
  }
  return loaded;
}

}  // namespace tconv3d::model
