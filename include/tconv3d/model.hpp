// tconv3d::Model: every 3D transposed convolution of a trained model file,
// specialized while the file loads. Reads Keras 3 `.keras`, tf.keras 2.x
// `.h5` and `.keras`, bare `.weights.h5` with a model config, and ONNX
// `ConvTranspose` nodes with 5-D inputs. Only in builds with HDF5 and libzip
// (TCONV3D_HAVE_MODELS).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tconv3d/config.hpp"
#include "tconv3d/error.hpp"
#include "tconv3d/export.h"
#include "tconv3d/layer.hpp"

namespace tconv3d {

struct ModelOptions {
  LayerOptions layer;             // backend, ISA, threads of every layer
  std::optional<Flavor> flavor;   // forces a Keras flavor; default: the file's own version record
  // The model config (JSON: model.to_json() or a .keras file's config.json)
  // for a bare `.weights.h5` file.
  std::string config_path;
  // Input shapes by layer name (in the layer's data format), for layers the
  // file gives none, or to override the file's. -1 marks the batch as free.
  std::map<std::string, std::vector<int64_t>> input_shapes;
  // Threads that specialize layers at load; 0: one per hardware thread.
  int load_threads = 0;
  // false: specialize nothing at load (every layer waits for its first call).
  bool specialize_at_load = true;
};

// One transposed convolution of the model.
class TCONV3D_API ModelLayer {
 public:
  struct Info {
    std::string name;     // path: enclosing models joined by '/', e.g. "decoder/up1"
    std::string op;       // "Conv3DTranspose" or "ConvTranspose"
    std::string summary;  // the config in one line
    // The shape the file (or the options) give; -1 for an unknown dimension,
    // empty when nothing is known. In the layer's data format.
    std::vector<int64_t> input_shape;
    DataFormat data_format = DataFormat::kChannelsLast;
    int64_t weight_bytes = 0;
    std::vector<std::string> warnings;
  };
  // What the load-time specialization chose (absent: none at load).
  struct Specialization {
    std::vector<int64_t> input_shape, output_shape;
    std::string backend, isa, kernel_name;
    double compile_ms = 0;
  };

  ModelLayer(ModelLayer&&) noexcept;
  ModelLayer& operator=(ModelLayer&&) noexcept;
  ~ModelLayer();

  const Info& info() const;
  const std::string& name() const;
  std::optional<Specialization> specialization() const;

  // Runs the layer on an input of `input_shape` (the layer's data format);
  // resizes `output` and sets `output_shape`. A shape not seen before is
  // specialized on this call and kept; a batch that is a multiple of the
  // specialized one reuses that kernel sample group by sample group, so a new
  // batch size does not compile anything. Thread-safe.
  void forward(const float* input, const std::vector<int64_t>& input_shape, std::vector<float>& output,
               std::vector<int64_t>& output_shape) const;
  // The specialized layer for exactly this shape (compiled on first request).
  const Layer& layer_for(const std::vector<int64_t>& input_shape) const;
  // The input shapes specialized so far, in the order they were compiled.
  std::vector<std::vector<int64_t>> specialized_shapes() const;
  // A fresh layer with other options (e.g. the generic backend for a benchmark).
  Layer build(const std::vector<int64_t>& input_shape, const LayerOptions& options) const;

  struct Impl;
  explicit ModelLayer(std::unique_ptr<Impl> impl);

 private:
  friend class Model;
  std::unique_ptr<Impl> impl_;
};

class TCONV3D_API Model {
 public:
  // Throws tconv3d::Error naming the file, the layer and the problem.
  static Model load(const std::string& path, const ModelOptions& options = {});

  const std::vector<ModelLayer>& layers() const { return layers_; }
  // Throws tconv3d::Error listing the names there are.
  const ModelLayer& layer(const std::string& name) const;
  const std::string& path() const { return path_; }
  // "keras3 .keras", "tf_keras2 .h5", "onnx" ...: what the file was read as.
  const std::string& format() const { return format_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  double load_ms() const { return load_ms_; }

 private:
  std::string path_, format_;
  std::vector<ModelLayer> layers_;
  std::vector<std::string> warnings_;
  double load_ms_ = 0;
};

}  // namespace tconv3d
