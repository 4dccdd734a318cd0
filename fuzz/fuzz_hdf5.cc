// libFuzzer target: an HDF5 model or weights file, read by tconv3d's own
// HDF5 reader (runtime/model/hdf5_*). Odd sizes are read with a fixed model
// config, so weights-only layouts are reached too.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.hpp"
#include "runtime/model/keras_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  tconv3d::ModelOptions options;
  if (size % 2) options.config_path = TCONV3D_FUZZ_CONFIG;
  try {
    tconv3d::fuzz::build_small_layers(tconv3d::model::load_keras_hdf5("fuzz.h5", std::move(bytes), options));
  } catch (const tconv3d::Error&) {
  }
  return 0;
}
