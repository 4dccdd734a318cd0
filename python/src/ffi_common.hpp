// What the XLA FFI handlers share: the exception guard around their bodies,
// and the leading (jax.vmap) axes of their operands. With
// vmap_method="expand_dims" every operand carries them, of size 1 where that
// operand is not batched; the results carry them at full size.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "tconv3d/error.hpp"
#include "xla/ffi/api/ffi.h"

namespace tconv3d::python {

using FfiDims = xla::ffi::Span<const int64_t>;

inline int64_t product(FfiDims dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= dims[i];
  return p;
}

inline std::vector<int64_t> tail(FfiDims dims, size_t begin) {
  return std::vector<int64_t>(dims.begin() + begin, dims.end());
}

// Element offset of operand batch element `g` (counted over the output's
// leading axes), with size-1 axes broadcast.
inline int64_t broadcast_offset(int64_t g, FfiDims operand, FfiDims output, size_t lead, int64_t element_size) {
  int64_t offset = 0, stride = element_size;
  for (size_t i = lead; i-- > 0;) {
    const int64_t index = g % output[i];
    g /= output[i];
    if (operand[i] != 1) offset += index * stride;
    stride *= operand[i];
  }
  return offset;
}

inline void check_lead(const char* name, FfiDims operand, FfiDims output, size_t lead) {
  for (size_t i = 0; i < lead; ++i) {
    if (operand[i] != 1 && operand[i] != output[i]) {
      throw Error(name, "batch axis " + std::to_string(i) + " has size " + std::to_string(operand[i]) +
                            ", the output's has " + std::to_string(output[i]));
    }
  }
}

// Runs a handler's body so that no exception crosses into XLA: each becomes
// an FFI error, which JAX raises in Python with the library's message.
template <typename Body>
xla::ffi::Error guarded(Body&& body) {
  try {
    body();
    return xla::ffi::Error::Success();
  } catch (const Error& e) {
    return xla::ffi::Error::InvalidArgument(std::string("tconv3d: ") + e.what());
  } catch (const std::exception& e) {
    return xla::ffi::Error::Internal(std::string("tconv3d: ") + e.what());
  }
}

}  // namespace tconv3d::python
