// tconv3d::Error: the one exception type of the C++ API. It names the argument
// at fault so a caller (or the CLI) can say exactly what was wrong.
#pragma once

#if __cplusplus < 201703L
#error "tconv3d's C++ API needs C++17 or later (-std=c++17)"
#endif

#include <stdexcept>
#include <string>
#include <utility>

#include "tconv3d/export.h"

namespace tconv3d {

// Exported so that its type_info is one object: a catch in the program
// matches what libtconv3d.so throws.
class TCONV3D_API Error : public std::runtime_error {
 public:
  Error(std::string argument, const std::string& message)
      : std::runtime_error(argument.empty() ? message : argument + ": " + message),
        argument_(std::move(argument)) {}

  // The argument, file or option at fault ("strides", "kernel", "--input"); may be empty.
  const std::string& argument() const { return argument_; }

 private:
  std::string argument_;
};

}  // namespace tconv3d
