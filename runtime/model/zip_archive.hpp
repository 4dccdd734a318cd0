// Reads the members of a zip archive (a `.keras` file) from memory with libzip.
#pragma once

#include <map>
#include <string>

namespace tconv3d::model {

// All members by name. Throws Error(name, ...) for a corrupt or truncated
// archive, a member whose checksum fails, or sizes that cannot be real.
std::map<std::string, std::string> read_zip_members(const std::string& bytes, const std::string& name);

}  // namespace tconv3d::model
