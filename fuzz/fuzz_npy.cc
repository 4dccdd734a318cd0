// libFuzzer target: a NumPy .npy array (CLI inputs, kernels and biases).
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/support/npy.hpp"
#include "tconv3d/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    tconv3d::parse_npy(bytes, "fuzz.npy");
  } catch (const tconv3d::Error&) {
  }
  return 0;
}
