// Writing files so that readers never see half of one.
#pragma once

#include <cstddef>
#include <string>

namespace tconv3d {

// Writes `bytes` to `path` through a temporary file in the same folder and a
// rename, so a failure never leaves a partial file at `path`. Throws
// tconv3d::Error naming `argument` (e.g. "-o") and the path on failure.
void write_file_atomically(const std::string& path, const std::string& argument, const void* data,
                           size_t size);

}  // namespace tconv3d
