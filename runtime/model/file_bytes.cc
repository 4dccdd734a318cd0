#include "runtime/model/file_bytes.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>

#include "runtime/memory_guard.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d::model {

std::string read_file_bytes(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw Error(path, "no such file");
  if (!std::filesystem::is_regular_file(status)) throw Error(path, "not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path, "cannot read its size: " + ec.message());
  check_allocatable(double(size), path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  std::string bytes;
  try {
    bytes.resize(size);
  } catch (const std::bad_alloc&) {
    throw Error(path, "out of memory reading " + std::to_string(size) + " bytes");
  }
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size) throw Error(path, "could not read the whole file");
  return bytes;
}

}  // namespace tconv3d::model
