// The one argument of every generated tconv3d kernel: void kernel(const KernelArgs*).
// Generated code loads the fields with offsetof, so adding a field never
// breaks a kernel that does not read it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tconv3d::codegen {

// One call computes one output row (n, od, oh): every W voxel and channel.
struct KernelArgs {
  const float* input;         // batch item n of the channels_last input
  const int64_t* row_taps;    // row_tap_count pairs: (input byte offset of row (id, ih),
                              //                       packed-weight byte offset of tap (kd, kh))
  int64_t row_tap_count;      // D/H taps that reach this row; 0: bias + activation only
  const float* weights;       // packed weights (weight_pack.hpp)
  const float* bias;          // oc_vectors * lanes floats, zero-padded (zeros without bias)
  float* output;              // output row (n, od, oh, 0, 0), channels_last
};

using KernelFunction = void (*)(const KernelArgs*);

namespace args_offset {
inline constexpr int32_t kInput = offsetof(KernelArgs, input);
inline constexpr int32_t kRowTaps = offsetof(KernelArgs, row_taps);
inline constexpr int32_t kRowTapCount = offsetof(KernelArgs, row_tap_count);
inline constexpr int32_t kWeights = offsetof(KernelArgs, weights);
inline constexpr int32_t kBias = offsetof(KernelArgs, bias);
inline constexpr int32_t kOutput = offsetof(KernelArgs, output);
}  // namespace args_offset

}  // namespace tconv3d::codegen
