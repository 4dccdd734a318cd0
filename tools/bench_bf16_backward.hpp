// tconv3d bench --dtype bf16 --pass backward: the bf16 backward and the
// float32 backward of the same layer, timed in alternation.
#pragma once

#include <string>
#include <vector>

#include "tconv3d/layer.hpp"

namespace tconv3d::cli {

void bench_bf16_backward(const std::string& name, const LayerConfig& config, const std::vector<int64_t>& input_shape,
                         const LayerOptions& options, double min_seconds, bool json);

}  // namespace tconv3d::cli
