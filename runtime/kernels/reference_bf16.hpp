// The bf16 reference (Keras mixed_bfloat16 semantics, for tests and
// `--backend reference --dtype bf16`): input and weights rounded to bf16
// (nearest even), products accumulated in double from the float32 bias,
// the elementwise activation in double, the result rounded to bf16.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/problem.hpp"
#include "runtime/executor.hpp"

namespace tconv3d {

// kernel: Keras layout (kd, kh, kw, filters, in_channels), float32 (rounded
// to bf16 here); bias: (filters,) float32 or null; input / output: bf16 bits.
void reference_forward_bf16(const Problem& problem, const float* kernel, const float* bias, const uint16_t* input,
                            uint16_t* output);

std::unique_ptr<Executor> make_reference_bf16_executor(const Problem& problem, const std::vector<float>& kernel,
                                                       std::vector<float> bias);

}  // namespace tconv3d
