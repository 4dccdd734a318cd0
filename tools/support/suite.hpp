// Benchmark suites: files shaped like shared/bench/layers.json, a list of
// named Keras layer configs with batched input shapes.
#pragma once

#include <string>
#include <vector>

#include "tconv3d/config.hpp"

namespace tconv3d {

struct SuiteLayer {
  std::string name;
  std::vector<int64_t> input_shape;
  LayerConfig config;
};

std::vector<SuiteLayer> load_suite(const std::string& path);

}  // namespace tconv3d
