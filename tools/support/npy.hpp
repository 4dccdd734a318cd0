// NumPy .npy files: float32, C order, little endian. Anything else is refused
// with an error naming the file and what it holds, never converted silently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tconv3d {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

NpyArray read_npy(const std::string& path);
// Writes atomically enough for a CLI: to path.tmp, then renames.
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

// Parses a .npy image already in memory; `name` is used in error messages.
NpyArray parse_npy(const std::string& bytes, const std::string& name);

}  // namespace tconv3d
