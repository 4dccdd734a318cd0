// What a specialized layer runs, for Python's kernel_name/backend/isa.
#pragma once

#include <string>

#include "tconv3d/layer.hpp"

namespace tconv3d::python {

struct Description {
  std::string kernel_name, backend, isa;
};

inline Description describe(const Layer& layer) {
  return {layer.kernel_name(), to_string(layer.backend()), layer.isa()};
}

}  // namespace tconv3d::python
