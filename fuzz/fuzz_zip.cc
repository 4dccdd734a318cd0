// libFuzzer target: the zip reader alone (libzip behind our size checks), so
// that damage to the archive's own structures is explored without the
// config and weights checks that follow in a .keras file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/model/zip_archive.hpp"
#include "tconv3d/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    tconv3d::model::read_zip_members(bytes, "fuzz.zip");
  } catch (const tconv3d::Error&) {
  }
  return 0;
}
