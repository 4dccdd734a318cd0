// tconv3d::Model: picks the loader for a file, then specializes every layer
// in parallel through the kernel cache.
#include "tconv3d/model.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "runtime/model/file_bytes.hpp"
#include "runtime/model/keras_loader.hpp"
#include "runtime/model/layer_recipe.hpp"
#include "runtime/model/onnx_loader.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {

namespace model {

void fail(const std::string& file, const std::string& layer, const std::string& problem) {
  throw Error(file, "layer '" + layer + "': " + problem);
}

}  // namespace model

struct ModelLayer::Impl {
  model::LayerRecipe recipe;
  LayerOptions options;
  mutable std::mutex mutex;
  mutable std::map<std::vector<int64_t>, std::unique_ptr<Layer>> layers;
  mutable std::vector<std::vector<int64_t>> order;  // keys of `layers`, oldest first
  std::optional<Specialization> specialization;
};

namespace {

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

void check_concrete(const std::vector<int64_t>& shape, const std::string& layer) {
  if (shape.size() != 5)
    throw Error(layer, "expected a 5-D input shape, got " + shape_to_string(shape));
  for (int64_t d : shape)
    if (d <= 0) throw Error(layer, "input shape " + shape_to_string(shape) + " has a non-positive dimension");
}

// The shape to specialize at load: a free batch becomes 1 (larger batches
// reuse it sample by sample); any other unknown dimension means "wait".
std::optional<std::vector<int64_t>> load_shape(const std::vector<int64_t>& known) {
  if (known.size() != 5) return std::nullopt;
  std::vector<int64_t> shape = known;
  if (shape[0] < 0) shape[0] = 1;
  for (int64_t d : shape)
    if (d <= 0) return std::nullopt;
  return shape;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

model::LoadedModel load_any(const std::string& path, const ModelOptions& options) {
  std::string bytes = model::read_file_bytes(path);
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0)
    return model::load_keras_zip(path, bytes, options);
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), "\x89HDF\r\n\x1a\n", 8) == 0)
    return model::load_keras_hdf5(path, std::move(bytes), options);
  if (ends_with(path, ".onnx")) return model::load_onnx(path, bytes, options);
  if (ends_with(path, ".keras")) throw Error(path, "not a zip archive, so not a .keras file (corrupt or truncated?)");
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5"))
    throw Error(path, "not an HDF5 file (no HDF5 signature; corrupt or truncated?)");
  throw Error(path, "unrecognized model file: expected a .keras zip, an HDF5 .h5 file or an .onnx file");
}

}  // namespace

ModelLayer::ModelLayer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelLayer::ModelLayer(ModelLayer&&) noexcept = default;
ModelLayer& ModelLayer::operator=(ModelLayer&&) noexcept = default;
ModelLayer::~ModelLayer() = default;

const ModelLayer::Info& ModelLayer::info() const { return impl_->recipe.info; }
const std::string& ModelLayer::name() const { return impl_->recipe.info.name; }
std::optional<ModelLayer::Specialization> ModelLayer::specialization() const { return impl_->specialization; }

std::vector<std::vector<int64_t>> ModelLayer::specialized_shapes() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->order;
}

Layer ModelLayer::build(const std::vector<int64_t>& input_shape, const LayerOptions& options) const {
  check_concrete(input_shape, name());
  try {
    return impl_->recipe.build(input_shape, options);
  } catch (const Error& e) {
    throw Error("layer '" + name() + "'", e.what());
  }
}

const Layer& ModelLayer::layer_for(const std::vector<int64_t>& input_shape) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto it = impl_->layers.find(input_shape);
  if (it != impl_->layers.end()) return *it->second;
  auto layer = std::make_unique<Layer>(build(input_shape, impl_->options));
  impl_->order.push_back(input_shape);
  return *impl_->layers.emplace(input_shape, std::move(layer)).first->second;
}

void ModelLayer::forward(const float* input, const std::vector<int64_t>& input_shape, std::vector<float>& output,
                         std::vector<int64_t>& output_shape) const {
  check_concrete(input_shape, name());
  // A layer made for a batch that divides this one runs it group by group:
  // both data formats keep each sample contiguous.
  const Layer* reuse = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto exact = impl_->layers.find(input_shape);
    if (exact != impl_->layers.end()) {
      reuse = exact->second.get();
    } else {
      for (const auto& [shape, layer] : impl_->layers) {
        if (std::equal(shape.begin() + 1, shape.end(), input_shape.begin() + 1) && input_shape[0] % shape[0] == 0) {
          reuse = layer.get();
          break;
        }
      }
    }
  }
  const Layer& layer = reuse ? *reuse : layer_for(input_shape);
  const Shape5 in = layer.input_shape();
  Shape5 out = layer.output_shape();
  const int64_t groups = input_shape[0] / in[0];
  const int64_t in_elements = in[0] * in[1] * in[2] * in[3] * in[4];
  const int64_t out_elements = layer.output_elements();
  output.resize(static_cast<size_t>(out_elements * groups));
  for (int64_t g = 0; g < groups; ++g) layer.forward(input + g * in_elements, output.data() + g * out_elements);
  out[0] = input_shape[0];
  output_shape.assign(out.begin(), out.end());
}

Model Model::load(const std::string& path, const ModelOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  model::LoadedModel loaded = load_any(path, options);
  Model m;
  m.path_ = path;
  m.format_ = loaded.format;
  m.warnings_ = loaded.warnings;
  for (const auto& given : options.input_shapes) {
    const std::string& name = given.first;  // not a structured binding: clang 14 cannot capture those
    const std::vector<int64_t>& shape = given.second;
    auto it = std::find_if(loaded.layers.begin(), loaded.layers.end(),
                           [&](const model::LayerRecipe& r) { return r.info.name == name; });
    if (it == loaded.layers.end()) throw Error(path, "input shape given for '" + name + "', which is not a layer here");
    if (shape.size() != 5) throw Error(path, "layer '" + name + "': input shape must be 5-D, got " + shape_to_string(shape));
    it->info.input_shape = shape;
  }
  for (auto& recipe : loaded.layers) {
    auto impl = std::make_unique<ModelLayer::Impl>();
    impl->recipe = std::move(recipe);
    impl->options = options.layer;
    m.layers_.emplace_back(std::move(impl));
  }

  if (options.specialize_at_load) {
    std::vector<size_t> todo;
    for (size_t i = 0; i < m.layers_.size(); ++i)
      if (load_shape(m.layers_[i].info().input_shape)) todo.push_back(i);
    const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
    const size_t workers =
        std::min(todo.size(), size_t(options.load_threads > 0 ? unsigned(options.load_threads) : hardware));
    std::atomic<size_t> next{0};
    std::vector<std::exception_ptr> errors(todo.size());
    auto work = [&] {
      for (size_t k; (k = next++) < todo.size();) {
        ModelLayer& layer = m.layers_[todo[k]];
        try {
          const std::vector<int64_t> shape = *load_shape(layer.info().input_shape);
          const auto t0 = std::chrono::steady_clock::now();
          const Layer& built = layer.layer_for(shape);
          ModelLayer::Specialization s;
          s.compile_ms = elapsed_ms(t0);
          s.input_shape = shape;
          const Shape5 out = built.output_shape();
          s.output_shape.assign(out.begin(), out.end());
          s.backend = to_string(built.backend());
          s.isa = built.isa();
          s.kernel_name = built.kernel_name();
          layer.impl_->specialization = s;
        } catch (...) {
          errors[k] = std::current_exception();
        }
      }
    };
    std::vector<std::thread> threads;
    for (size_t t = 1; t < workers; ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
    for (size_t k = 0; k < todo.size(); ++k) {
      if (!errors[k]) continue;
      try {
        std::rethrow_exception(errors[k]);
      } catch (const Error& e) {
        throw Error(path, e.what());
      }
    }
  }
  m.load_ms_ = elapsed_ms(start);
  return m;
}

const ModelLayer& Model::layer(const std::string& name) const {
  for (const auto& l : layers_)
    if (l.name() == name) return l;
  std::string names;
  for (const auto& l : layers_) names += (names.empty() ? "" : ", ") + l.name();
  throw Error("--layer", "no layer '" + name + "' in " + path_ + " (its layers: " + names + ")");
}

}  // namespace tconv3d
