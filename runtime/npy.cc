#include "runtime/npy.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "runtime/memory_guard.hpp"
#include "tconv3d/error.hpp"

namespace tconv3d {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

std::string header_field(const std::string& header, const std::string& key, const std::string& name) {
  const std::regex pattern("['\"]" + key + "['\"]\\s*:\\s*([^,}]*\\)|[^,}]*)");
  std::smatch match;
  if (!std::regex_search(header, match, pattern)) {
    throw Error(name, "not a valid .npy file: header has no '" + key + "'");
  }
  std::string value = match[1].str();
  while (!value.empty() && (value.back() == ' ')) value.pop_back();
  while (!value.empty() && (value.front() == ' ')) value.erase(value.begin());
  return value;
}

}  // namespace

NpyArray parse_npy(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0) {
    throw Error(name, "not a .npy file (missing the \\x93NUMPY magic)");
  }
  const unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(name, "truncated .npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw Error(name, "unsupported .npy format version " + std::to_string(major));
  }
  if (offset + header_len > bytes.size()) throw Error(name, "truncated .npy header");
  const std::string header = bytes.substr(offset, header_len);
  const std::string descr = header_field(header, "descr", name);
  const std::string fortran = header_field(header, "fortran_order", name);
  const std::string shape_text = header_field(header, "shape", name);
  if (descr != "'<f4'" && descr != "\"<f4\"") {
    throw Error(name, "dtype " + descr + " is not float32 ('<f4'); convert it explicitly, e.g. "
                      "numpy.asarray(x, dtype=numpy.float32)");
  }
  if (fortran != "False") throw Error(name, "array is in Fortran order; only C order is accepted");
  NpyArray array;
  static const std::regex number("-?[0-9]+");
  for (auto it = std::sregex_iterator(shape_text.begin(), shape_text.end(), number); it != std::sregex_iterator(); ++it) {
    const std::string text = it->str();
    if (text.size() > 15) throw Error(name, "dimension " + text + " is too large");
    const int64_t dim = std::stoll(text);
    if (dim < 0) throw Error(name, "negative dimension in shape " + shape_text);
    array.shape.push_back(dim);
  }
  if (shape_text.front() != '(') throw Error(name, "malformed shape " + shape_text);
  int64_t count = 1;
  for (int64_t d : array.shape) {
    if (d != 0 && count > (int64_t{1} << 40) / d) throw Error(name, "shape " + shape_text + " is too large");
    count *= d;
  }
  const size_t data_offset = offset + header_len;
  const size_t expected = size_t(count) * 4;
  if (bytes.size() - data_offset != expected) {
    throw Error(name, "data size " + std::to_string(bytes.size() - data_offset) + " bytes does not match shape " +
                          shape_text + " (" + std::to_string(expected) + " bytes expected): file truncated or corrupt");
  }
  array.data.resize(size_t(count));
  if (count) std::memcpy(array.data.data(), bytes.data() + data_offset, expected);
  return array;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(path, "cannot read");
  check_allocatable(double(size), path);
  in.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (!in.read(bytes.data(), size)) throw Error(path, "read failed");
  return parse_npy(bytes, path);
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict << shape[i] << (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    if (i + 1 < shape.size()) dict << " ";
    count *= shape[i];
  }
  dict << "), }";
  std::string header = dict.str();
  // Pad so that the data starts on a 64-byte boundary, newline-terminated.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path, "cannot open for writing");
    out.write(kMagic, 6);
    const char version[2] = {1, 0};
    out.write(version, 2);
    const uint16_t len = static_cast<uint16_t>(header.size());
    const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
    out.write(len_bytes, 2);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(data), std::streamsize(count * 4));
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw Error(path, "write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path, "cannot write");
  }
}

}  // namespace tconv3d
