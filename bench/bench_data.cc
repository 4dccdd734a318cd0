#include "bench/bench_data.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

namespace tconv3d::bench {
namespace {

std::vector<float> uniform(int64_t count, float scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = dist(rng);
  return values;
}

}  // namespace

std::vector<std::unique_ptr<LayerData>> load_layers(const std::string& path) {
  std::vector<std::unique_ptr<LayerData>> layers;
  uint64_t seed = 1;
  for (const SuiteLayer& entry : load_suite(path)) {
    auto data = std::make_unique<LayerData>();
    data->entry = entry;
    data->geometry = resolve_geometry(entry.config, entry.input_shape);
    const ConvGeometry& g = data->geometry;
    // Weights scaled like Glorot so outputs stay O(1) and errors comparable.
    const double fan_in = double(g.kernel_elements()) / double(g.out_channels);
    data->kernel = uniform(g.kernel_elements(), float(1.0 / std::sqrt(fan_in)), seed++);
    if (entry.config.use_bias) data->bias = uniform(g.out_channels, 0.5f, seed++);
    data->input = uniform(g.input_elements(), 1.0f, seed++);
    data->output.assign(static_cast<size_t>(g.output_elements()), 0.0f);  // >= any activated output
    data->flops = g.flops();
    data->useful_flops = g.useful_flops();
    layers.push_back(std::move(data));
  }
  return layers;
}

Layer LayerData::make_layer(Backend backend, int threads) const {
  LayerOptions options;
  options.backend = backend;
  options.threads = threads;
  return make_layer(options, entry.config);
}

Layer LayerData::make_layer(const LayerOptions& options, const LayerConfig& config) const {
  const ConvGeometry& g = geometry;
  const std::vector<int64_t> kshape = {g.axes[0].kernel, g.axes[1].kernel, g.axes[2].kernel, g.out_channels,
                                       g.in_channels};
  const ConstTensor bias_tensor =
      bias.empty() ? ConstTensor{} : ConstTensor{bias.data(), {g.out_channels}};
  return Layer::create(config, entry.input_shape, ConstTensor{kernel.data(), kshape}, bias_tensor, options);
}

void LayerData::compute_reference() {
  if (!reference_.empty()) return;
  const Layer layer = make_layer(Backend::kReference, 1);
  reference_.resize(static_cast<size_t>(layer.output_elements()));
  const auto start = std::chrono::steady_clock::now();
  layer.forward(input.data(), reference_.data());
  reference_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const std::vector<float>& LayerData::reference() {
  compute_reference();
  return reference_;
}

double LayerData::reference_seconds() {
  compute_reference();
  return reference_seconds_;
}


}  // namespace tconv3d::bench
