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

// bf16 tensors as raw bits (NumPy has no bf16): read from '<u2' (uint16, e.g.
// x.astype(ml_dtypes.bfloat16).view(numpy.uint16)) or '<V2' / '|V2' (how
// NumPy saves an ml_dtypes bfloat16 array); written as '<u2'. Only where the
// caller declared bf16 (--dtype bf16): a float32 file is refused, as a
// bf16 file is where float32 is expected.
struct NpyBf16Array {
  std::vector<int64_t> shape;
  std::vector<uint16_t> data;
};
NpyBf16Array read_npy_bf16(const std::string& path);
NpyBf16Array parse_npy_bf16(const std::string& bytes, const std::string& name);
void write_npy_bf16(const std::string& path, const std::vector<int64_t>& shape, const uint16_t* data);

}  // namespace tconv3d
