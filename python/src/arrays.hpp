// NumPy arrays in and out of the bindings: float32, C-contiguous, on the CPU
// (the Python side makes a contiguous copy only when the caller's array is
// not already one, and rejects other dtypes with a TypeError).
#pragma once

#include <cstdint>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

namespace tconv3d::python {

using InArray = nanobind::ndarray<const float, nanobind::c_contig, nanobind::device::cpu>;
using OutArray = nanobind::ndarray<nanobind::numpy, float>;

inline std::vector<int64_t> shape_of(const InArray& a) {
  std::vector<int64_t> shape(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) shape[i] = static_cast<int64_t>(a.shape(i));
  return shape;
}

// A new NumPy array that owns `count` uninitialized floats.
inline OutArray new_array(const std::vector<int64_t>& shape) {
  size_t count = 1;
  std::vector<size_t> dims(shape.begin(), shape.end());
  for (size_t d : dims) count *= d;
  float* data = new float[count];
  nanobind::capsule owner(data, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  return OutArray(data, dims.size(), dims.data(), owner);
}

}  // namespace tconv3d::python
