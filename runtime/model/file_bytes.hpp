// Whole files into memory, with a clear error for what cannot be read.
#pragma once

#include <string>

namespace tconv3d::model {

// Throws Error(path, ...) when the file is missing, unreadable or not a regular file.
std::string read_file_bytes(const std::string& path);

}  // namespace tconv3d::model
