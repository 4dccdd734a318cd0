// What a specialized layer runs, for Python's kernel_name/backend/isa. The one
// place the bindings look at the executor, so a change of how Layer reports
// this touches only this file.
#pragma once

#include <string>

#include "tconv3d/layer.hpp"

namespace tconv3d::python {

struct Description {
  std::string kernel_name, backend, isa;
};

inline Description describe(const Layer& layer) {
  const Executor& executor = layer.executor();
  return {executor.kernel_name(), to_string(executor.backend()), executor.isa()};
}

}  // namespace tconv3d::python
