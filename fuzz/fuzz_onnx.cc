// libFuzzer target: an ONNX model (the protobuf wire reader, ConvTranspose
// attributes, initializers). External data paths point nowhere.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.hpp"
#include "runtime/model/onnx_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    tconv3d::fuzz::build_small_layers(tconv3d::model::load_onnx("/nonexistent-tconv3d-fuzz/fuzz.onnx", bytes, {}));
  } catch (const tconv3d::Error&) {
  }
  return 0;
}
