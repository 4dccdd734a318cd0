// libFuzzer target: tconv3d's HDF5 reader on its own, many inputs a second:
// opens the file and walks every group it can reach, reading the string
// attributes Keras uses and every dataset, going on after each Error so that
// one damaged object does not hide the rest.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/model/hdf5_file.hpp"
#include "tconv3d/error.hpp"

namespace {

using tconv3d::model::Hdf5File;

constexpr int kMaxDepth = 6;
constexpr int kMaxObjects = 400;

void visit(const Hdf5File& file, const std::string& path, int depth, int& objects) {
  if (depth > kMaxDepth || ++objects > kMaxObjects) return;
  for (const char* attr : {"layer_names", "weight_names", "name", "model_config", "keras_version", "vlen_list",
                           "fixed_list", "split"}) {
    try {
      file.string_list_attribute(path, attr);
    } catch (const tconv3d::Error&) {
    }
  }
  try {
    if (file.has_dataset(path)) {
      file.read_float32(path);
      return;
    }
    if (!file.has_group(path)) return;
    for (const std::string& child : file.children(path))
      visit(file, path.empty() ? child : path + "/" + child, depth + 1, objects);
  } catch (const tconv3d::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const Hdf5File file = Hdf5File::open(std::string(reinterpret_cast<const char*>(data), size), "fuzz.h5");
    int objects = 0;
    visit(file, "", 0, objects);
  } catch (const tconv3d::Error&) {
  }
  return 0;
}
