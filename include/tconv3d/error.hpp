// tconv3d::Error: the one exception type of the C++ API. It names the argument
// at fault so a caller (or the CLI) can say exactly what was wrong.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace tconv3d {

class Error : public std::runtime_error {
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
