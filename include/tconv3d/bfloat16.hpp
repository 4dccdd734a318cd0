// bfloat16 as raw bits (uint16_t): the upper half of a float32. tconv3d's
// bf16 layers (LayerOptions::dtype = DataType::kBfloat16) take and return
// such arrays; these helpers convert the way Keras's cast to bfloat16 does
// (round to nearest, ties to even; NaN stays NaN).
#pragma once

#include <cstdint>
#include <cstring>

namespace tconv3d {

inline uint16_t float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float bf16_to_float(uint16_t value) {
  const uint32_t bits = uint32_t(value) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// value rounded to the nearest bf16, as a float.
inline float round_to_bf16(float value) { return bf16_to_float(float_to_bf16(value)); }

}  // namespace tconv3d
