// The data every benchmark of one suite layer shares: geometry, random
// weights and input (the same for every implementation), one output buffer,
// and the reference output (computed once, on one thread, and timed).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tconv3d/layer.hpp"
#include "tools/support/suite.hpp"

namespace tconv3d::bench {

struct LayerData {
  SuiteLayer entry;
  ConvGeometry geometry;
  std::vector<float> kernel, bias, input, output;
  double flops = 0;
  double useful_flops = 0;  // ConvGeometry::useful_flops()

  // The reference output and how long computing it took on one thread.
  const std::vector<float>& reference();
  double reference_seconds();

  // A Layer over this data's weights with the given backend and threads.
  Layer make_layer(Backend backend, int threads) const;
  // Same with any options and config (the backward benchmark's linear twin, bf16).
  Layer make_layer(const LayerOptions& options, const LayerConfig& config) const;

 private:
  void compute_reference();
  std::vector<float> reference_;
  double reference_seconds_ = 0;
};

// The suite loaded once, with deterministic random data per layer.
std::vector<std::unique_ptr<LayerData>> load_layers(const std::string& path);

}  // namespace tconv3d::bench
