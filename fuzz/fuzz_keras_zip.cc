// libFuzzer target: a .keras zip (libzip, config JSON, the weights inside).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.hpp"
#include "runtime/model/keras_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    tconv3d::fuzz::build_small_layers(tconv3d::model::load_keras_zip("fuzz.keras", bytes, {}));
  } catch (const tconv3d::Error&) {
  }
  return 0;
}
