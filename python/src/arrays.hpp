// NumPy arrays in and out of the bindings: float32, C-contiguous, on the CPU
// (the Python side makes a contiguous copy only when the caller's array is
// not already one, and rejects other dtypes with a TypeError). bf16 crosses
// as uint16 bits: NumPy has no bf16, and the Python side views an
// ml_dtypes.bfloat16 array as uint16 (no copy) and the result back.
#pragma once

#include <cstdint>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

namespace tconv3d::python {

using InArray = nanobind::ndarray<const float, nanobind::c_contig, nanobind::device::cpu>;
using OutArray = nanobind::ndarray<nanobind::numpy, float>;
using InBits = nanobind::ndarray<const uint16_t, nanobind::c_contig, nanobind::device::cpu>;  // bf16
using OutBits = nanobind::ndarray<nanobind::numpy, uint16_t>;

template <typename Array>
inline std::vector<int64_t> shape_of(const Array& a) {
  std::vector<int64_t> shape(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) shape[i] = static_cast<int64_t>(a.shape(i));
  return shape;
}

// A new NumPy array that owns its uninitialized elements (float, or uint16_t for bf16).
template <typename Element = float>
inline nanobind::ndarray<nanobind::numpy, Element> new_array(const std::vector<int64_t>& shape) {
  size_t count = 1;
  std::vector<size_t> dims(shape.begin(), shape.end());
  for (size_t d : dims) count *= d;
  Element* data = new Element[count];
  nanobind::capsule owner(data, [](void* p) noexcept { delete[] static_cast<Element*>(p); });
  return nanobind::ndarray<nanobind::numpy, Element>(data, dims.size(), dims.data(), owner);
}

}  // namespace tconv3d::python
